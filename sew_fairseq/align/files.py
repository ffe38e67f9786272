"""The many-recording job of ``sew-align``: which (audio, text) pairs the arguments name, where their outputs go,
what is redone or skipped, the training manifest, and ``summary.json``. Each recording is aligned by
:class:`.aligner.Aligner`.
"""
from __future__ import annotations

import json
import logging
import os
from typing import List, NamedTuple, Optional, Sequence

from manifests.audio import AudioError, audio_info

from ..transcribe.files import outputs_exist
from ..transcribe.inputs import InputError, list_entries, output_stems
from .aligner import Aligner
from .segments import Alignment, alignment_from_dict
from .text import Line, read_text

logger = logging.getLogger(__name__)

TEXT_SUFFIX = ".txt"


class Pair(NamedTuple):
    """A recording, its transcript (one segment a line) and the output stem both map to."""

    audio: str
    text: str
    stem: str


def resolve_pairs(inputs: Sequence[str], pairs: Optional[str] = None) -> List[Pair]:
    """The (audio, text) pairs of ``inputs`` (``AUDIO TEXT``, or folders in which ``x.flac`` pairs with ``x.txt``,
    searched recursively) and of the list ``pairs`` (lines ``AUDIO<TAB>TEXT``; blank lines and ``#`` comments
    ignored; relative paths are relative to the list's folder). Raises :class:`InputError` for arguments that name
    no pair."""
    from manifests.audio import find_audio_files

    found: List[tuple] = []  # (audio, text, relative name)
    if inputs and all(os.path.isdir(i) for i in inputs):
        for folder in inputs:
            audio = find_audio_files(folder)
            paired = [a for a in audio if os.path.exists(os.path.splitext(a)[0] + TEXT_SUFFIX)]
            for a in sorted(set(audio) - set(paired)):
                logger.warning("%s has no %s beside it: not aligned", a, os.path.splitext(a)[0] + TEXT_SUFFIX)
            if not paired:
                raise InputError(f"no audio file in {folder} has a transcript beside it (x.flac with x{TEXT_SUFFIX})")
            found.extend((a, os.path.splitext(a)[0] + TEXT_SUFFIX, os.path.relpath(a, folder)) for a in paired)
    elif len(inputs) == 2:
        found.append((inputs[0], inputs[1], os.path.basename(inputs[0])))
    elif inputs:
        raise InputError(f"give AUDIO TEXT, or folders of x.flac + x{TEXT_SUFFIX} pairs, or --pairs LIST; got "
                         f"{len(inputs)} argument(s) that are not all folders")
    if pairs:
        found.extend((a, t, os.path.basename(a)) for _, (a, t) in list_entries(pairs, 2, "AUDIO<TAB>TEXT"))
    if not found:
        raise InputError("nothing to align: give AUDIO TEXT, a folder, or --pairs LIST")
    stems = output_stems([(a, rel) for a, _, rel in found])
    return [Pair(a, t, stem) for (a, t, _), stem in zip(found, stems)]


def align_files(aligner: Aligner, pairs: Sequence[Pair], output_dir: str, formats: Sequence[str],
                skip_bad: bool = False, overwrite: bool = False, channel: Optional[int] = None, progress: bool = True,
                manifest_dir: Optional[str] = None, split: str = "train", max_seconds: Optional[float] = None,
                pad_seconds: Optional[float] = None, setup_seconds: float = 0.0, shard=None) -> dict:
    """Align ``pairs`` into ``output_dir`` (``<stem>.<format>`` each, written atomically as soon as a recording is
    done; ``summary.json`` at the end; with ``manifest_dir``, the kept segments as a training manifest). Every text
    is read and checked first, so that a character the model cannot spell stops the run before any audio is read
    (:class:`.text.TextError`). Recordings whose outputs exist are not redone unless ``overwrite``. An unreadable
    recording raises :class:`manifests.audio.AudioError` (what was done is kept), or with ``skip_bad`` is listed
    under ``bad_files``. ``shard`` (a :class:`sew_fairseq.transcribe.files.Shard`: ``pairs`` is already its part)
    names the summary ``summary.shard-K-of-N.json``. Returns the summary."""
    from tqdm import tqdm

    from manifests.atomic import atomic_open
    from .outputs import write_alignment

    texts: List[List[Line]] = [read_text(p.text, aligner.dictionary.symbols, aligner.keep_punctuation)
                               for p in pairs]
    per_file = list(dict.fromkeys(["json", *formats]))  # the json is what a re-run reads back
    summary = {"files": 0, "reused": 0, "segments": 0, "kept": 0, "skipped": [], "bad_files": [],
               "audio_seconds": 0.0, "forward_seconds": 0.0, "align_seconds": 0.0,
               "setup_seconds": round(setup_seconds, 4)}
    if shard is not None:
        summary["shard"] = str(shard)
    done: List[Alignment] = []
    done_pairs: List[Pair] = []
    error: Optional[AudioError] = None
    os.makedirs(output_dir, exist_ok=True)
    bar = tqdm(total=len(pairs), unit="file", disable=not progress, desc="aligning")
    try:
        for pair, lines in zip(pairs, texts):
            stem = os.path.join(output_dir, pair.stem)
            if not overwrite and outputs_exist(output_dir, pair.stem, per_file):
                with open(stem + ".json", encoding="utf-8") as f:
                    result = alignment_from_dict(json.load(f))
                summary["reused"] += 1
            else:
                try:
                    result = aligner.align(pair.audio, lines, channel=channel, info=audio_info(pair.audio))
                except AudioError as e:
                    if not skip_bad:
                        error = e
                        raise
                    logger.warning("skipped: %s", e)
                    summary["bad_files"].append({"audio": pair.audio, "reason": e.reason, "error": str(e)})
                    bar.update(1)
                    continue
                write_alignment(result, stem, per_file, recording=pair.stem)
                summary["files"] += 1
                summary["forward_seconds"] += result.forward_seconds
                summary["align_seconds"] += result.align_seconds
            summary["audio_seconds"] += result.duration
            summary["segments"] += len(result.segments)
            summary["kept"] += len(result.kept)
            summary["skipped"] += [{"audio": pair.audio, "line": s.line, "text": s.text, "score": s.to_dict()["score"],
                                    "reason": s.skipped} for s in result.segments if not s.kept]
            done.append(result)
            done_pairs.append(pair)
            bar.update(1)
    finally:
        bar.close()
        if error is not None:
            summary["error"] = str(error)
        for key in ("audio_seconds", "forward_seconds", "align_seconds"):
            summary[key] = round(summary[key], 4)
        if manifest_dir and error is None:
            from .manifest import write_manifest

            kwargs = {} if pad_seconds is None else {"pad_seconds": pad_seconds}
            report = write_manifest(done, manifest_dir, split, aligner.dictionary, max_seconds=max_seconds,
                                    stems=[p.stem for p in done_pairs], channel=channel, **kwargs)
            summary["manifest"] = {"tsv": report.tsv, "rows": report.rows, "seconds": round(report.seconds, 3),
                                   "rejected": [r._asdict() for r in report.rejected], "skipped": report.skipped}
        name = "summary.json" if shard is None else shard.file_name("summary.json")
        with atomic_open(os.path.join(output_dir, name), "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=2)
    return summary
