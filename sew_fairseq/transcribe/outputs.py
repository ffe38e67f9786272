"""Transcript files: plain text, JSON, SubRip (SRT), WebVTT and NIST CTM, from words with times.

A transcript here is anything with ``.text``, ``.words`` (each ``.word``, ``.start``, ``.end``, ``.confidence``,
seconds) and ``.to_dict()`` (:class:`sew_fairseq.transcribe.Transcript`). Every file is written atomically.

CTM (NIST sclite's time-marked conversation format), one word a line::

    <recording id> <channel> <start> <duration> <word> <confidence>
    talk_1 1 12.340 0.280 HELLO 0.97

Subtitles group consecutive words into cues of at most :data:`MAX_CUE_CHARS` characters and
:data:`MAX_CUE_SECONDS` seconds, and start a new cue at a pause longer than :data:`CUE_PAUSE_SECONDS`.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, List, Sequence, Tuple

from manifests.atomic import atomic_open
from manifests.records import PathLike
from manifests.trn import sanitize_utt_id

FORMATS = ("txt", "json", "srt", "vtt", "ctm")
MAX_CUE_CHARS = 84  # two subtitle lines of 42 characters
MAX_CUE_SECONDS = 7.0
CUE_PAUSE_SECONDS = 1.0


def cues(words: Sequence) -> List[Tuple[float, float, str]]:
    """``(start, end, text)`` subtitle cues over ``words``."""
    out: List[Tuple[float, float, str]] = []
    current: list = []
    for w in words:
        if current:
            text = " ".join(x.word for x in current + [w])
            if (len(text) > MAX_CUE_CHARS or w.end - current[0].start > MAX_CUE_SECONDS
                    or w.start - current[-1].end > CUE_PAUSE_SECONDS):
                out.append((current[0].start, current[-1].end, " ".join(x.word for x in current)))
                current = []
        current.append(w)
    if current:
        out.append((current[0].start, current[-1].end, " ".join(x.word for x in current)))
    return out


def timestamp(seconds: float, separator: str = ",") -> str:
    """``HH:MM:SS<separator>mmm`` (SRT: ``,``; WebVTT: ``.``), rounded to the millisecond."""
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


def srt_cues(spans: Iterable[Tuple[float, float, str]]) -> str:
    """SubRip text of ``(start, end, text)`` cues, numbered from 1 in the given order."""
    blocks = [f"{i}\n{timestamp(a, ',')} --> {timestamp(b, ',')}\n{text}\n" for i, (a, b, text) in enumerate(spans, 1)]
    return "\n".join(blocks)


def srt_text(words: Sequence) -> str:
    return srt_cues(cues(words))


def vtt_text(words: Sequence) -> str:
    blocks = [f"{timestamp(a, '.')} --> {timestamp(b, '.')}\n{text}\n" for a, b, text in cues(words)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def ctm_lines(recording: str, words: Iterable, channel: str = "1") -> List[str]:
    """CTM lines of one recording (id sanitised as for trn files: no spaces or parentheses)."""
    rid = sanitize_utt_id(recording)
    return [f"{rid} {channel} {w.start:.3f} {max(0.0, w.end - w.start):.3f} {w.word} {w.confidence:.4f}"
            for w in words]


def write_transcript(transcript, stem: PathLike, formats: Sequence[str]) -> List[str]:
    """Write ``<stem>.<format>`` for each of ``formats`` (``ctm`` excluded: it is one file for all recordings,
    :func:`write_ctm`); returns the paths written."""
    stem = os.fspath(stem)
    written = []
    for fmt in formats:
        if fmt == "ctm":
            continue
        path = f"{stem}.{fmt}"
        with atomic_open(path, "w", encoding="utf-8") as f:
            if fmt == "txt":
                f.write(transcript.text + "\n")
            elif fmt == "json":
                json.dump(transcript.to_dict(), f, indent=1, ensure_ascii=False)
                f.write("\n")
            elif fmt == "srt":
                f.write(srt_text(transcript.words))
            elif fmt == "vtt":
                f.write(vtt_text(transcript.words))
            else:
                raise ValueError(f"unknown transcript format {fmt!r}; choose from {', '.join(FORMATS)}")
        written.append(path)
    return written


def write_ctm(path: PathLike, recordings: Iterable[Tuple[str, Sequence]]) -> None:
    """One CTM file of ``(recording id, words)`` pairs, in the given order."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        for rid, words in recordings:
            f.writelines(line + "\n" for line in ctm_lines(rid, words))
