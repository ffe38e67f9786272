"""``sew-bench align``: forced alignment of long recordings with known spans, ``sew-align``'s search against
ctc-segmentation (PyPI ``ctc-segmentation``) on the same emissions.

    sew-bench align ckpt/checkpoint_best.pt --data corpus --split valid --minutes 1 10 60 --out-dir align-bench

Each recording is a split's utterances drawn at random (seeded; repeated when the split is short, never twice in a
row) joined by pauses of random length (``--pauses``, default 0.3-1.5 s), with a pause before the first. Its text is
one utterance a line, plus ``--unspoken`` lines that are not in the recording (other utterances' text, inserted at
random places) and minus ``--untranscribed`` utterances whose audio stays but whose line is taken out (speech that
is not in the text). The true span of a line is its utterance's place in the recording, trimmed of the leading and
trailing silence below -40 dB of the utterance's peak (the synthetic speech has 0.03-0.2 s of it).

For each length and seed, in one run: ``sew-align`` in a child process (its forward and alignment seconds, its peak
resident memory), and ctc-segmentation on the emissions ``sew-align`` computed (its own child process; its segments
both as it pads them into the pauses and unpadded: the first and last character's times). ``sew-align``'s rows: its
segments (first and last letter frames, as its json gives them) and the cuts ``--manifest-dir`` would write (padded
by 0.15 s, never past the midpoint to a neighbour). Scores: the share of
spoken lines whose start and end are both within 0.1 s and 0.25 s of the true span (a spoken line left out counts
as a miss), the median start and end errors, and precision and recall of finding the unspoken lines (ctc-segmentation
does not leave lines out: its lowest-scoring lines, as many as are unspoken, count as its guesses).
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .longform import _run_measured

SAMPLE_RATE = 16000
TOLERANCES = (0.1, 0.25)


def speech_span(wave: np.ndarray, floor_db: float = -40.0) -> Tuple[int, int]:
    """[first, last + 1) samples louder than ``floor_db`` below the peak."""
    level = np.abs(wave)
    loud = np.flatnonzero(level > level.max() * 10 ** (floor_db / 20)) if level.max() > 0 else []
    return (int(loud[0]), int(loud[-1]) + 1) if len(loud) else (0, len(wave))


def build_recording(utterances, seconds: float, seed: int, pauses: Tuple[float, float] = (0.3, 1.5),
                    unspoken: int = 1, untranscribed: int = 0, foreign: Sequence[str] = ()
                    ) -> Tuple[np.ndarray, List[dict]]:
    """(the 16 kHz wave, its text lines as ``{"text", "truth": [start, end] seconds or None}``) of a recording built
    as the module docstring says from ``utterances`` (:class:`manifests.records.Utterance` with words); the unspoken
    lines come from ``foreign`` texts (default: the utterances' own)."""
    from ..evaluate.splits import load_audio

    rng = np.random.default_rng(seed)
    pieces: List[np.ndarray] = []
    lines: List[dict] = []
    total, last = 0, -1
    cache: Dict[int, np.ndarray] = {}
    while total < seconds * SAMPLE_RATE:
        pause = np.zeros(int(rng.uniform(*pauses) * SAMPLE_RATE), np.float32)
        pieces.append(pause)
        total += len(pause)
        k = int(rng.integers(len(utterances)))
        if len(utterances) > 1 and k == last:
            k = (k + 1) % len(utterances)
        last = k
        if k not in cache:
            cache[k] = load_audio(utterances[k], SAMPLE_RATE)
        wave = cache[k]
        a, b = speech_span(wave)
        lines.append({"text": utterances[k].words, "truth": [(total + a) / SAMPLE_RATE, (total + b) / SAMPLE_RATE]})
        pieces.append(wave)
        total += len(wave)
    pieces.append(np.zeros(int(rng.uniform(*pauses) * SAMPLE_RATE), np.float32))
    for _ in range(min(untranscribed, max(0, len(lines) - 2))):  # keep the first and the last line
        del lines[int(rng.integers(1, len(lines) - 1))]
    texts = list(foreign) or [u.words for u in utterances]
    for _ in range(unspoken):
        lines.insert(int(rng.integers(0, len(lines) + 1)), {"text": texts[int(rng.integers(len(texts)))],
                                                            "truth": None})
    return np.concatenate(pieces), lines


def score(lines: Sequence[dict], spans: Sequence[Optional[Tuple[float, float]]],
          guessed_unspoken: Sequence[int]) -> dict:
    """Boundary accuracy of ``spans`` (one per line; None = left out) against the lines' truths, and precision and
    recall of ``guessed_unspoken`` (line indices) against the lines without a truth."""
    starts, ends, hits = [], [], {tol: 0 for tol in TOLERANCES}
    spoken = [i for i, line in enumerate(lines) if line["truth"] is not None]
    for i in spoken:
        if spans[i] is None:
            continue
        ds, de = abs(spans[i][0] - lines[i]["truth"][0]), abs(spans[i][1] - lines[i]["truth"][1])
        starts.append(ds)
        ends.append(de)
        for tol in TOLERANCES:
            hits[tol] += ds <= tol and de <= tol
    truth = {i for i, line in enumerate(lines) if line["truth"] is None}
    guessed = set(guessed_unspoken)
    out = {f"within_{tol:g}": 100.0 * hits[tol] / max(1, len(spoken)) for tol in TOLERANCES}
    out.update(median_start_error=float(np.median(starts)) if starts else None,
               median_end_error=float(np.median(ends)) if ends else None,
               unspoken_precision=100.0 * len(truth & guessed) / len(guessed) if guessed else None,
               unspoken_recall=100.0 * len(truth & guessed) / len(truth) if truth else None)
    return out


# -- the two aligners, each in its own process ----------------------------------------------------------------------
def align_worker(checkpoint: str, audio: str, text: str, out_dir: str, threads: int) -> dict:
    """In this process: ``Aligner`` on ``audio`` / ``text``; writes ``<out_dir>/emissions.npy`` and returns the
    alignment's dict with ``labels`` and ``frame_seconds``."""
    import torch

    from ..align import Aligner

    torch.set_num_threads(threads)
    aligner = Aligner.from_checkpoint(checkpoint, min_score=None)
    with open(text, encoding="utf-8") as f:
        lines = aligner.lines(f.read().splitlines(), text)
    e = aligner.transcriber.emissions(audio)
    start = time.perf_counter()
    segments = aligner.align_emissions(e.log_probs, lines)
    align_s = time.perf_counter() - start
    np.save(os.path.join(out_dir, "emissions.npy"), e.log_probs.numpy())
    return {"segments": [s.to_dict() for s in segments], "forward_seconds": e.forward_seconds,
            "align_seconds": align_s, "labels": list(aligner.dictionary.symbols),
            "frame_seconds": aligner.frame_seconds}


def ctc_segmentation_worker(emissions: str, text: str, labels: Sequence[str], frame_seconds: float) -> dict:
    """In this process: ctc-segmentation on saved emissions, one line of ``text`` an utterance spelled as
    ``sew-align``'s search spells it (``|`` between words). Its segments padded (its own) and unpadded (first / last
    character)."""
    import ctc_segmentation as cs

    lp = np.load(emissions).astype(np.float32)
    # single-character stand-ins for the multi-character specials, so its text matrix stays one symbol wide
    chars = [s if len(s) == 1 else chr(0xE000 + i) for i, s in enumerate(labels)]
    with open(text, encoding="utf-8") as f:
        utts = ["|".join(line.split()) for line in f.read().splitlines() if line.strip()]
    config = cs.CtcSegmentationParameters(char_list=chars, blank=0, index_duration=frame_seconds)
    start = time.perf_counter()
    matrix, begins = cs.prepare_text(config, utts)
    timings, char_probs, _ = cs.ctc_segmentation(config, lp, matrix)
    padded = cs.determine_utterance_segments(config, begins, char_probs, timings, utts)
    seconds = time.perf_counter() - start
    unpadded = [(float(timings[begins[i] + 1]), float(timings[begins[i + 1] - 1]) + frame_seconds)
                for i in range(len(utts))]
    return {"padded": [[float(a), float(b), float(s)] for a, b, s in padded], "unpadded": unpadded,
            "seconds": seconds}


def _worker_cmd(*args: str) -> List[str]:
    return [sys.executable, "-m", "sew_fairseq.bench.align", *args]


def run_align_bench(checkpoint: str, data: str, split: str, minutes: Sequence[float], out_dir: str,
                    seeds: Sequence[int] = (0,), unspoken: int = 1, untranscribed: int = 0,
                    pauses: Tuple[float, float] = (0.3, 1.5), threads: int = 2, ctc_seg: bool = True,
                    foreign_split: Optional[str] = None) -> List[dict]:
    """The rows of the table (module docstring; also ``<out_dir>/results.json``)."""
    from manifests.atomic import atomic_open, atomic_write_text
    from manifests.audio import write_flac
    from ..align.manifest import DEFAULT_PAD_SECONDS, padded_spans
    from ..evaluate.splits import read_split

    utterances = read_split(data, split)
    foreign = [u.words for u in read_split(data, foreign_split)] if foreign_split else []
    rows = []
    for m in minutes:
        for seed in seeds:
            name = f"{m:g}min_seed{seed}"
            work = os.path.join(out_dir, name)
            os.makedirs(work, exist_ok=True)
            wave, lines = build_recording(utterances, m * 60, seed, pauses, unspoken, untranscribed, foreign)
            audio, text = os.path.join(work, "recording.flac"), os.path.join(work, "recording.txt")
            write_flac(audio, wave, SAMPLE_RATE, overwrite=True)
            atomic_write_text(text, [line["text"] for line in lines])
            ours = _run_measured(_worker_cmd("--align-worker", checkpoint, audio, text, work, str(threads)), threads)
            result = json.loads(ours["stdout"].strip().splitlines()[-1])
            segs = result["segments"]
            spans = [(s["start"], s["end"]) if "start" in s else None for s in segs]
            row = {"recording": name, "minutes": m, "seed": seed, "lines": len(lines),
                   "audio_seconds": len(wave) / SAMPLE_RATE, "system": "sew-align",
                   "forward_seconds": result["forward_seconds"], "align_seconds": result["align_seconds"],
                   "peak_gb": ours["peak_gb"],
                   **score(lines, spans, [i for i, s in enumerate(segs) if "skipped" in s])}
            row["scores"] = [s["score"] for s in segs]
            placed = [s for s in segs if "skipped" not in s]
            row["words_in_order"] = sum(all(s["start"] <= w["start"] < w["end"] <= s["end"] for w in s["words"])
                                        and all(a["end"] <= b["start"] for a, b in zip(s["words"], s["words"][1:]))
                                        and [w["word"] for w in s["words"]] == s["text"].split() for s in placed)
            row["kept"] = len(placed)
            row["skipped_lines"] = [{"line": i + 1, "text": s["text"], "reason": s["skipped"], "score": s["score"],
                                     "unspoken": lines[i]["truth"] is None} for i, s in enumerate(segs)
                                    if "skipped" in s]
            rows.append(row)
            kept = sorted((i for i, span in enumerate(spans) if span is not None), key=lambda i: spans[i])
            cut = padded_spans([spans[i] for i in kept], len(wave) / SAMPLE_RATE, DEFAULT_PAD_SECONDS, None)
            cuts: List[Optional[Tuple[float, float]]] = [None] * len(spans)
            for i, c in zip(kept, cut):
                cuts[i] = c
            rows.append({**{k: row[k] for k in ("recording", "minutes", "seed", "lines", "audio_seconds",
                                                "align_seconds", "peak_gb")},
                         "system": f"sew-align cuts (pad {DEFAULT_PAD_SECONDS:g} s)",
                         **score(lines, cuts, [i for i, s in enumerate(segs) if "skipped" in s])})
            if ctc_seg:
                theirs = _run_measured(_worker_cmd("--ctc-segmentation-worker", os.path.join(work, "emissions.npy"),
                                                   text, json.dumps(result["labels"]),
                                                   str(result["frame_seconds"])), threads)
                res = json.loads(theirs["stdout"].strip().splitlines()[-1])
                lowest = list(np.argsort([s for _, _, s in res["padded"]])[:unspoken])
                for kind in ("unpadded", "padded"):
                    spans = [tuple(x[:2]) for x in res[kind]]
                    rows.append({"recording": name, "minutes": m, "seed": seed, "lines": len(lines),
                                 "audio_seconds": len(wave) / SAMPLE_RATE, "system": f"ctc-segmentation {kind}",
                                 "align_seconds": res["seconds"], "peak_gb": theirs["peak_gb"],
                                 **score(lines, spans, [int(i) for i in lowest])})
    with atomic_open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    return rows


def format_rows(rows: Sequence[dict]) -> str:
    def num(x, fmt):
        return "-" if x is None else format(x, fmt)

    out = [f"{'recording':<18} {'system':<27} {'lines':>5} {'<=0.1s %':>8} {'<=0.25s %':>9} {'med start':>9} "
           f"{'med end':>8} {'unspoken P/R':>13} {'fwd s':>7} {'align s':>8} {'peak GB':>8}"]
    for r in rows:
        pr = f"{num(r['unspoken_precision'], '.0f')}/{num(r['unspoken_recall'], '.0f')}"
        out.append(f"{r['recording']:<18} {r['system']:<27} {r['lines']:>5} {r['within_0.1']:>8.1f} "
                   f"{r['within_0.25']:>9.1f} {num(r['median_start_error'], '.3f'):>9} "
                   f"{num(r['median_end_error'], '.3f'):>8} {pr:>13} {num(r.get('forward_seconds'), '.1f'):>7} "
                   f"{r['align_seconds']:>8.2f} {r['peak_gb']:>8.2f}")
    for r in rows:
        if "words_in_order" in r:
            out.append(f"{r['recording']}: {r['words_in_order']} of {r['kept']} placed lines have every word inside "
                       f"the line, in order")
        for k in r.get("skipped_lines", []):
            score = "-" if k["score"] is None else f"{k['score']:.2f}"
            out.append(f"{r['recording']}: sew-align left out line {k['line']} ({k['reason']}, score {score}; "
                       f"{'not spoken' if k['unspoken'] else 'SPOKEN'}): {k['text']}")
    return "\n".join(out)


if __name__ == "__main__":  # the child processes of run_align_bench
    if sys.argv[1] == "--align-worker":
        print(json.dumps(align_worker(*sys.argv[2:6], int(sys.argv[6]))))
    elif sys.argv[1] == "--ctc-segmentation-worker":
        print(json.dumps(ctc_segmentation_worker(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]),
                                                 float(sys.argv[5]))))
