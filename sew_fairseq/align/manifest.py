"""Training data from alignments: each kept line of each recording cut out as a 16 kHz mono FLAC, and a fairseq
manifest of the cuts (``<split>.tsv``, ``.ltr``, ``.wrd``, ``dict.ltr.txt``) that ``sew-train`` fine-tunes on.

    report = write_manifest(alignments, "data/aligned", split="train", dictionary=model_dictionary,
                            max_seconds=20)
    report.rows, report.rejected        # cuts written; lines left out, each with its reason

Layout of ``manifest_dir`` (the cut of line 7 of ``talk.mp3`` is ``audio/talk/talk_0007.flac``; a line split by
``max_seconds`` gives ``talk_0007_1.flac``, ``talk_0007_2.flac``, ...; a recording's stem may name sub-folders,
``sub/talk`` -> ``audio/sub/talk/talk_0007.flac``)::

    audio/<stem>/<base name of stem>_<line:04d>[_<piece>].flac
    <split>.tsv  <split>.ltr  <split>.wrd  <split>.report.json      (manifests.common.write_split)
    dict.ltr.txt                                                    (the model's dictionary, fairseq's format)

Each recording is read once, block by block (:func:`manifests.audio.stream_audio`, resampled to 16 kHz with a soxr
stream, channels averaged or ``channel``), and its cuts are taken in time order as the blocks go by: memory holds
the longest cut and a block, whatever the recording's length.

Where a cut starts and ends:

* a kept line spans its first to its last letter frame (or the ``|`` right after it, :mod:`.segments`); its cut
  adds ``pad_seconds`` (default :data:`DEFAULT_PAD_SECONDS`, 0.15 s: the onset and release of the first and last
  sounds, which CTC's peaky frames place late and early, and a little silence as in read-speech corpora) on each
  side, but never past the midpoint between it and its kept neighbour (so two cuts never share a sample, nor does a
  cut reach into another line's speech), nor before 0 or after the end of the recording;
* ``max_seconds``: a line longer than that (first to last letter) is split at the widest pause between its words,
  again in each part, until every piece fits (ties: the pause nearest the middle); each piece is padded as
  above, its neighbours being the pieces beside it, and its padding is shortened (evenly, as far as it goes) so
  that the cut fits too. A line with a single word longer than ``max_seconds`` is left out (``too_long_word``):
  such a word is most likely a misalignment.

Lines left out (the :class:`Rejected` of :attr:`CutReport.rejected`, also counted in ``<split>.report.json``):
``too_long_word``, ``too_short`` (a cut under 400 samples, the model's receptive field), ``no_words`` (a kept line
without words), ``outside_dictionary`` (a letter the dictionary lacks). The lines the alignment itself skipped are
counted by reason in :attr:`CutReport.skipped` and not cut.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from manifests.atomic import atomic_open
from manifests.audio import stream_audio, write_flac
from manifests.common import Report, write_split
from manifests.lexicon import to_letters
from manifests.records import PathLike, Utterance

from .segments import AlignedWord, Alignment

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DEFAULT_PAD_SECONDS = 0.15
#: the shortest cut kept (the receptive field of the models' feature extractor; ``too_short`` in the hints)
MIN_SAMPLES = 400


class Cut(NamedTuple):
    """One utterance to cut: ``line`` of the text (``piece``: 1-based when the line was split, else None),
    ``start`` / ``end`` in seconds of the recording (padding included), ``words`` its transcript."""

    id: str
    line: int
    piece: Optional[int]
    start: float
    end: float
    words: str


class Rejected(NamedTuple):
    """A kept line of an alignment that was not cut: its recording, 1-based ``line``, ``reason``, ``detail``."""

    audio: str
    line: int
    reason: str
    detail: str


@dataclass
class CutReport:
    """What :func:`write_manifest` did: ``rows`` of ``<split>.tsv``, their total ``seconds``, the ``rejected``
    lines, the lines the alignments ``skipped`` (count by reason) and the manifest's path ``tsv``."""

    tsv: str
    rows: int = 0
    seconds: float = 0.0
    rejected: List[Rejected] = field(default_factory=list)
    skipped: Dict[str, int] = field(default_factory=dict)


def split_at_pauses(words: Sequence[AlignedWord], max_seconds: float) -> List[List[AlignedWord]]:
    """``words`` in pieces of at most ``max_seconds`` (first word's start to last word's end), split at the widest
    pause between words, then again in each part (ties: the pause nearest the part's middle), in order. A single
    word longer than ``max_seconds`` stays a piece of its own, too long: the caller decides."""
    pieces: List[List[AlignedWord]] = []
    todo = [list(words)]
    while todo:
        part = todo.pop()
        if len(part) == 1 or part[-1].end - part[0].start <= max_seconds:
            pieces.append(part)
            continue
        middle = (part[0].start + part[-1].end) / 2
        widest = max(part[i + 1].start - part[i].end for i in range(len(part) - 1))
        at = min((i for i in range(len(part) - 1) if part[i + 1].start - part[i].end == widest),
                 key=lambda i: abs((part[i].end + part[i + 1].start) / 2 - middle))
        todo += [part[at + 1:], part[: at + 1]]  # the left part is taken first
    return pieces


def padded_spans(spans: Sequence[Tuple[float, float]], duration: float, pad: float,
            max_seconds: Optional[float]) -> List[Tuple[float, float]]:
    """Each of the time-ordered ``spans`` widened by up to ``pad`` on each side, up to the midpoint to the span
    beside it and within ``[0, duration]``; with ``max_seconds``, the padding cut back to fit."""
    out = []
    for i, (start, end) in enumerate(spans):
        left = (spans[i - 1][1] + start) / 2 if i else 0.0
        right = (end + spans[i + 1][0]) / 2 if i + 1 < len(spans) else duration
        a = min(start, max(start - pad, left, 0.0))
        b = max(end, min(end + pad, right, duration))
        if max_seconds is not None and b - a > max_seconds:
            room = max(0.0, max_seconds - (end - start))
            before = min(start - a, room / 2)
            after = min(b - end, room - before)
            before = min(start - a, room - after)
            a, b = start - before, end + after
        out.append((a, b))
    return out


def plan_cuts(alignment: Alignment, stem: str, pad_seconds: float = DEFAULT_PAD_SECONDS,
              max_seconds: Optional[float] = None, letters: Optional[Iterable[str]] = None
              ) -> Tuple[List[Cut], List[Rejected]]:
    """The cuts of one recording's kept lines, in time order, and the kept lines left out (see the module
    docstring); ``stem``: the recording's output stem (cut ids are its base name + ``_<line:04d>[_<piece>]``);
    ``letters``: the dictionary's symbols (a line spelled with others is left out)."""
    base = os.path.basename(stem)
    allowed = set(letters) if letters is not None else None
    audio = alignment.audio or "<wave>"
    rejected: List[Rejected] = []
    # every kept line is a neighbour (its speech is known to be there), those left out too
    spans: List[Tuple[float, float, Optional[Tuple[int, Optional[int], str]]]] = []
    for seg in sorted(alignment.kept, key=lambda s: (s.start, s.end)):
        if not seg.words:
            rejected.append(Rejected(audio, seg.line, "no_words", "a kept line without words"))
            spans.append((seg.start, seg.end, None))
            continue
        pieces = split_at_pauses(seg.words, max_seconds) if max_seconds is not None else [list(seg.words)]
        long_words = [w for p in pieces for w in p if max_seconds is not None and w.end - w.start > max_seconds]
        outside = sorted({c for w in seg.words for c in to_letters(w.word).split()} - allowed) if allowed else []
        if long_words:
            w = long_words[0]
            rejected.append(Rejected(audio, seg.line, "too_long_word",
                                     f"{w.word!r} lasts {w.end - w.start:.2f} s, over max_seconds {max_seconds:g}"))
        elif outside:
            rejected.append(Rejected(audio, seg.line, "outside_dictionary",
                                     f"letters {' '.join(outside)} are not in the dictionary"))
        if long_words or outside:
            spans.append((seg.start, seg.end, None))
            continue
        for n, p in enumerate(pieces):
            start = seg.start if n == 0 else p[0].start
            end = seg.end if n == len(pieces) - 1 else p[-1].end
            spans.append((start, end, (seg.line, n + 1 if len(pieces) > 1 else None, " ".join(w.word for w in p))))
    cuts = []
    for (start, end), (_, _, what) in zip(padded_spans([s[:2] for s in spans], alignment.duration, pad_seconds,
                                                  max_seconds), spans):
        if what is None:
            continue
        line, piece, words = what
        if (end - start) * SAMPLE_RATE < MIN_SAMPLES:
            rejected.append(Rejected(audio, line, "too_short", f"{end - start:.3f} s with its padding"))
            continue
        cut_id = f"{base}_{line:04d}" + (f"_{piece}" if piece is not None else "")
        cuts.append(Cut(cut_id, line, piece, start, end, words))
    bad = {r.line for r in rejected}
    return [c for c in cuts if c.line not in bad], rejected  # one piece too short: the whole line is left out


def cut_blocks(blocks: Iterable[np.ndarray], spans: Sequence[Tuple[int, int]]) -> Iterator[np.ndarray]:
    """The samples ``[start, end)`` of each of ``spans`` (sorted by start) from a stream of ``blocks``, in order,
    each as soon as its last sample has arrived; keeps only what the spans still to come need (a span past the
    stream's end gives what there is). Stops reading when the last span is out."""
    buffer, offset = np.zeros(0, np.float32), 0  # buffer[0] is sample `offset` of the stream
    stream = iter(blocks)
    ended = False
    for start, end in spans:
        while not ended and offset + len(buffer) < end:
            block = next(stream, None)
            if block is None:
                ended = True
            else:
                drop = max(0, min(start, offset + len(buffer)) - offset)  # nothing before `start` is needed again
                buffer, offset = np.concatenate([buffer[drop:], block]), offset + drop
        yield buffer[max(0, start - offset):max(0, end - offset)].copy()


def _write_dictionary(path: str, dictionary) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        dictionary.save(f)  # fairseq's format: the symbols after the specials, in index order, with their counts


def write_manifest(alignments: Iterable[Alignment], manifest_dir: PathLike, split: str = "train",
                   dictionary=None, pad_seconds: float = DEFAULT_PAD_SECONDS, max_seconds: Optional[float] = None,
                   stems: Optional[Sequence[str]] = None, channel: Optional[int] = None) -> CutReport:
    """Cut the kept lines of ``alignments`` into ``manifest_dir/audio/`` and write the ``split`` of their
    manifest, and ``dict.ltr.txt`` (see the module docstring).

    ``dictionary``: the model's fairseq ``Dictionary``, saved as ``dict.ltr.txt`` (its symbols in index order, so
    that a fine-tuned model keeps its output layer) and used to check the letters; None: neither.
    ``stems``: one output stem per alignment (e.g. ``sew_fairseq.transcribe.InputFile.stem``; default: the audio
    file's base name without extension); ``channel``: the channel that was aligned (default: the mean).
    Raises ValueError for a bad option, an alignment without an audio path or two that share a stem,
    :class:`manifests.audio.AudioError` for a recording that cannot be read again; the manifest files are
    written atomically (nothing half-written on any error; cuts already made are kept)."""
    alignments = list(alignments)
    if pad_seconds < 0 or (max_seconds is not None and max_seconds <= 0):
        raise ValueError(f"pad_seconds must be >= 0 and max_seconds > 0, got {pad_seconds} and {max_seconds}")
    if any(a.audio is None for a in alignments):
        raise ValueError("an alignment of a wave given in memory has no audio file to cut")
    stems = list(stems) if stems is not None else [os.path.splitext(os.path.basename(a.audio))[0] for a in alignments]
    if len(stems) != len(alignments):
        raise ValueError(f"{len(stems)} stems for {len(alignments)} alignments")
    seen: Dict[str, str] = {}
    for stem, a in zip(stems, alignments):
        if stem in seen:
            raise ValueError(f"{seen[stem]} and {a.audio} both have the stem {stem!r}: give stems (their paths "
                             f"relative to a common folder)")
        seen[stem] = a.audio
    manifest_dir = os.fspath(manifest_dir)
    audio_root = os.path.join(os.path.abspath(manifest_dir), "audio")
    letters = dictionary.symbols[dictionary.nspecial:] if dictionary is not None else None
    result = CutReport(tsv=os.path.join(manifest_dir, f"{split}.tsv"))
    report = Report(split)
    skipped: Counter = Counter(s.skipped for a in alignments for s in a.segments if not s.kept)
    result.skipped = dict(sorted(skipped.items()))

    def reject(r: Rejected) -> None:
        result.rejected.append(r)
        report.add(r.reason, f"{r.audio}:{r.line}", r.detail)

    def utterances() -> Iterator[Utterance]:
        for alignment, stem in zip(alignments, stems):
            cuts, rejected = plan_cuts(alignment, stem, pad_seconds, max_seconds, letters)
            for r in rejected:
                reject(r)
            if not cuts:
                continue
            spans = [(int(round(c.start * SAMPLE_RATE)), int(round(c.end * SAMPLE_RATE))) for c in cuts]
            blocks = stream_audio(alignment.audio, SAMPLE_RATE, channel)
            for cut, samples in zip(cuts, cut_blocks(blocks, spans)):
                if len(samples) < MIN_SAMPLES:  # past the end of a recording shorter than its alignment says
                    reject(Rejected(alignment.audio, cut.line, "too_short", f"{len(samples)} samples"))
                    continue
                path = os.path.join(audio_root, stem, f"{cut.id}.flac")
                write_flac(path, samples, SAMPLE_RATE, overwrite=True)
                result.rows += 1
                result.seconds += len(samples) / SAMPLE_RATE
                yield Utterance(cut.id, path, len(samples), cut.words)

    report.info.update(pad_seconds=pad_seconds, max_seconds=max_seconds, skipped_lines=result.skipped)
    write_split(manifest_dir, split, utterances(), report, audio_root=audio_root)
    if dictionary is not None:
        _write_dictionary(os.path.join(manifest_dir, "dict.ltr.txt"), dictionary)
    logger.info("%s: %d cuts (%.1f h), %d lines left out", result.tsv, result.rows, result.seconds / 3600,
                len(result.rejected))
    return result
