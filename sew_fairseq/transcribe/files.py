"""The many-file job of ``sew-transcribe``: which of the files its INPUTs name (:mod:`.inputs`) a :class:`Shard`
takes, where their transcripts go, what is redone, skipped or scored, and ``summary.json``. Each file is transcribed by
:class:`.transcriber.Transcriber`.
"""
from __future__ import annotations

import logging
import os
import re
from typing import List, NamedTuple, Optional, Sequence, TypeVar

from manifests.audio import AudioError, AudioInfo, audio_info

from .inputs import InputFile
from .transcriber import Transcriber, Word

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Shard(NamedTuple):
    """Part ``index`` of ``count`` disjoint parts of a job's inputs (``--shard K/N``, K from 0 to N-1): every N-th
    input from the K-th, after :func:`.inputs.resolve_inputs` listed them, so that the N parts together hold every input
    once, and consecutive (similar) files go to different parts. ``--shard $SLURM_ARRAY_TASK_ID/N`` with
    ``#SBATCH --array=0-<N-1>`` (Slurm sets SLURM_ARRAY_TASK_ID to the task's index in ``--array``, from 0 here)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"3/8"`` -> ``Shard(3, 8)``; ValueError, saying what is wrong, for anything else."""
        m = re.fullmatch(r"\s*(-?\d+)\s*/\s*(-?\d+)\s*", text)
        if m is None:
            raise ValueError(f"{text!r} is not K/N (two whole numbers: part K, from 0, of N; e.g. 0/8)")
        index, count = int(m.group(1)), int(m.group(2))
        if count < 1:
            raise ValueError(f"{text!r}: N (the number of parts) must be at least 1")
        if not 0 <= index < count:
            raise ValueError(f"{text!r}: K must be 0 to {count - 1} (parts are numbered from 0; with Slurm, "
                             f"--array=0-{count - 1})")
        return cls(index, count)

    def select(self, items: Sequence[T]) -> List[T]:
        """This part of ``items``: ``items[index::count]``."""
        return list(items[self.index::self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def file_name(self, name: str) -> str:
        """``summary.json`` -> ``summary.shard-3-of-8.json``: a file every part writes, named for this part."""
        stem, ext = os.path.splitext(name)
        return f"{stem}.shard-{self.index}-of-{self.count}{ext}"


def outputs_exist(output_dir: str, stem: str, formats: Sequence[str]) -> bool:
    return all(os.path.exists(os.path.join(output_dir, f"{stem}.{fmt}")) for fmt in formats)


def _read_words(path: str) -> List[Word]:
    import json

    with open(path, encoding="utf-8") as f:
        return [Word(w["word"], w["start"], w["end"], w["confidence"]) for w in json.load(f)["words"]]


def _read_text(output_dir: str, stem: str) -> str:
    import json

    path = os.path.join(output_dir, stem)
    if os.path.exists(path + ".json"):
        with open(path + ".json", encoding="utf-8") as f:
            return json.load(f)["text"]
    with open(path + ".txt", encoding="utf-8") as f:
        return f.read().strip()


def score_transcripts(output_dir: str, files: Sequence[InputFile], references: dict, phones: bool) -> dict:
    """Error rates of the transcripts of ``files`` that have a reference (``references``: output stem -> text):
    ``scored`` (how many) and WER and CER, or for a phone model (``phones``) PER with ``sil`` not scored and with
    every symbol (those keys of :func:`manifests.error_rates.score_texts`)."""
    from manifests.error_rates import score_texts
    from manifests.trn import sanitize_utt_id

    pairs = [(references[sanitize_utt_id(f.stem)], _read_text(output_dir, f.stem)) for f in files
             if sanitize_utt_id(f.stem) in references]
    if not pairs:
        return {"scored": 0}
    scores = score_texts([" ".join(r.split()) for r, _ in pairs], [h for _, h in pairs], phones)
    keys = ("per", "per_with_sil") if phones else ("wer", "cer")  # summary.json's keys
    return {"scored": len(pairs), **{key: scores[key] for key in keys}}


def transcribe_files(transcriber: Transcriber, files: Sequence[InputFile], output_dir: str,
                     formats: Sequence[str], skip_bad: bool = False, overwrite: bool = False,
                     channel: Optional[int] = None, progress: bool = True, setup_seconds: float = 0.0,
                     references: Optional[dict] = None, shard: Optional[Shard] = None) -> dict:
    """Transcribe ``files`` into ``output_dir`` (``<stem>.<format>`` each, written atomically as soon as a file is
    done; ``transcripts.ctm`` and ``summary.json`` at the end). ``shard``: only that part of ``files``
    (:meth:`Shard.select`); its ``summary.json`` and ``transcripts.ctm`` are named for it
    (``summary.shard-3-of-8.json``), so that the parts of one job can share ``output_dir``; the summary says which
    part (``shard``: ``"3/8"``, ``inputs``: the files of all parts). Files whose outputs exist are not redone unless
    ``overwrite``. A file that gives no samples raises :class:`manifests.audio.AudioError` (what was done before it
    is kept, and ``summary.json`` says where it stopped), or with ``skip_bad`` is listed under ``skipped`` in
    ``summary.json``. ``references`` (output stem -> text) adds their error rates (:func:`score_transcripts`) to
    the summary. Returns the summary."""
    import json

    from tqdm import tqdm

    from manifests.atomic import atomic_open
    from ..decoding import is_phone_dictionary
    from .outputs import write_ctm, write_transcript

    inputs = len(files)
    if shard is not None:
        files = shard.select(files)
    per_file = [f for f in formats if f != "ctm"]
    if ("ctm" in formats or references) and "json" not in per_file:
        per_file.append("json")  # the CTM and the scores are assembled from every file's .json
    infos: List[Optional[AudioInfo]] = []
    for f in files:
        try:
            infos.append(audio_info(f.path))
        except AudioError:
            infos.append(None)  # reported when its turn comes
    summary = {"files": 0, "reused": 0, "audio_seconds": 0.0, "forward_seconds": 0.0, "decode_seconds": 0.0,
               "setup_seconds": round(setup_seconds, 4), "skipped": [], "shard": None if shard is None else str(shard),
               "inputs": inputs}
    total_h = sum(i.duration for i in infos if i is not None) / 3600
    bar = tqdm(total=round(total_h, 4), unit="h", disable=not progress, desc=f"files 0/{len(files)}",
               bar_format="{desc} |{bar}| {n:.3f}/{total:.3f} h of audio [{elapsed}<{remaining}]")
    done: List[InputFile] = []
    error: Optional[AudioError] = None
    try:
        for n, (f, info) in enumerate(zip(files, infos), 1):
            if not overwrite and outputs_exist(output_dir, f.stem, per_file):
                summary["reused"] += 1
                done.append(f)
            else:
                try:
                    t = transcriber.transcribe(f.path, channel=channel, info=info)
                except AudioError as e:
                    if not skip_bad:
                        error = e
                        raise
                    logger.warning("skipped: %s", e)
                    summary["skipped"].append({"audio": f.path, "reason": e.reason, "error": str(e)})
                else:
                    write_transcript(t, os.path.join(output_dir, f.stem), per_file)
                    done.append(f)
                    summary["files"] += 1
                    summary["audio_seconds"] += t.duration
                    summary["forward_seconds"] += t.forward_seconds
                    summary["decode_seconds"] += t.decode_seconds
            bar.set_description_str(f"files {n}/{len(files)}")
            bar.update(round(info.duration / 3600, 4) if info is not None else 0)
    finally:
        bar.close()
        if error is not None:
            summary["error"] = str(error)
        for key in ("audio_seconds", "forward_seconds", "decode_seconds"):
            summary[key] = round(summary[key], 4)
        os.makedirs(output_dir, exist_ok=True)
        if references is not None and error is None:
            phones = is_phone_dictionary(transcriber.dictionary)
            summary.update(score_transcripts(output_dir, done, references, phones))
        if "ctm" in formats:
            write_ctm(os.path.join(output_dir, shard.file_name("transcripts.ctm") if shard else "transcripts.ctm"),
                      [(f.stem, _read_words(os.path.join(output_dir, f"{f.stem}.json"))) for f in done])
        name = shard.file_name("summary.json") if shard else "summary.json"
        with atomic_open(os.path.join(output_dir, name), "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=2)
    return summary
