"""``sew-bench longform``: long recordings, ``sew-transcribe`` against transformers' chunked ASR pipeline.

    sew-bench longform ckpt/checkpoint_best.pt --data corpus --split valid --minutes 1 10 --out-dir longform

The recordings are a split's utterances concatenated in manifest order (repeated until the length is reached),
with ``--gaps`` seconds of silence between them (one recording per gap) and, for each of ``--seeds`` but 0, a
leading silence of a random length below 10 s, which moves every chunk cut of both systems to another place in
the speech; the reference is their transcripts in the same order. For each length, gap and seed, in one run and on
the same machine:

* ours: the installed ``sew-transcribe`` command in a child process (greedy decoding): WER, forward seconds (from
  its summary.json: model forward only), forward seconds per audio second against the split's short utterances
  transcribed the same way, and the child's peak resident memory;
* transformers: the checkpoint exported with :func:`sew_fairseq.checkpoints.hf.to_hf`, run through
  ``pipeline("automatic-speech-recognition", chunk_length_s=...)`` (its stride default: chunk / 6 on each side) in
  a child process: WER, the seconds of the whole pipeline call, peak memory.

WER is over the whole recording (one reference, one hypothesis); the last row is the mean over the recordings.
Both children get ``--threads`` torch threads.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Sequence

import numpy as np

SAMPLE_RATE = 16000


def make_recording(utterances, minutes: float, gap: float, path: str, lead: float = 0.0) -> str:
    """Concatenate ``utterances`` (:class:`manifests.records.Utterance`) cyclically into a ``minutes``-long FLAC
    at ``path``, after ``lead`` seconds of silence; returns the reference transcript."""
    from manifests.audio import write_flac
    from ..evaluate.splits import load_audio

    target = int(minutes * 60 * SAMPLE_RATE)
    silence = np.zeros(int(gap * SAMPLE_RATE), np.float32)
    pieces: List[np.ndarray] = [np.zeros(int(lead * SAMPLE_RATE), np.float32)]
    words: List[str] = []
    total, i = 0, 0
    while total < target:
        u = utterances[i % len(utterances)]
        wave = load_audio(u, SAMPLE_RATE)
        pieces += [wave, silence]
        words.append(u.words or "")
        total += len(wave) + len(silence)
        i += 1
    write_flac(path, np.concatenate(pieces), SAMPLE_RATE, overwrite=True)
    return " ".join(" ".join(words).split())


# Peak memory is measured by a small launcher process: a child forked from this (large) process inherits its pages
# copy-on-write, and Linux counts them in the child's peak resident set (ru_maxrss) even after exec.
_LAUNCHER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:]); _, status, usage = os.wait4(p.pid, 0); "
             "sys.stderr.write(f'\\nPEAK_KIB {usage.ru_maxrss}\\n'); sys.exit(os.waitstatus_to_exitcode(status))")


def _run_measured(cmd: Sequence[str], threads: int) -> Dict[str, object]:
    """Run ``cmd`` as a child; (stdout, wall seconds, peak RSS of that child alone in GB)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit status {proc.returncode}: {proc.stderr[-2000:]}")
    peak = int(proc.stderr.rsplit("PEAK_KIB ", 1)[1].split()[0])
    return {"stdout": proc.stdout, "wall": wall, "peak_gb": peak / 1024 ** 2}  # ru_maxrss: KiB on Linux


def _sew_transcribe() -> List[str]:
    return [sys.executable, "-m", "sew_fairseq.cli.transcribe"]


def run_sew_transcribe(checkpoint: str, inputs: Sequence[str], out_dir: str, threads: int,
                       extra: Sequence[str] = ()) -> dict:
    """``sew-transcribe`` on ``inputs`` in a child process: its summary.json, the texts and the peak memory."""
    r = _run_measured(_sew_transcribe() + [checkpoint, *inputs, "--output-dir", out_dir, "--overwrite", "--quiet",
                                           "--formats", "txt", "json", *extra], threads)
    with open(os.path.join(out_dir, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    summary["peak_gb"] = r["peak_gb"]
    return summary


def hf_worker(hf_dir: str, audio: str, chunk_seconds: float, threads: int) -> dict:
    """In this process: transformers' ASR pipeline on ``audio``; the text and the seconds of the pipeline call."""
    import torch
    import transformers

    from manifests.audio import read_audio

    torch.set_num_threads(threads)
    pipe = transformers.pipeline("automatic-speech-recognition", model=hf_dir, device=-1)
    wave = read_audio(audio, SAMPLE_RATE).samples
    start = time.perf_counter()
    kwargs = {"chunk_length_s": chunk_seconds} if chunk_seconds > 0 else {}
    text = pipe({"raw": wave, "sampling_rate": SAMPLE_RATE}, **kwargs)["text"]
    return {"seconds": time.perf_counter() - start, "text": text}


def run_hf_pipeline(hf_dir: str, audio: str, chunk_seconds: float, threads: int) -> dict:
    """:func:`hf_worker` in a child process: its text, seconds and the child's peak memory."""
    r = _run_measured([sys.executable, "-m", "sew_fairseq.bench.longform", "--hf-worker", hf_dir, audio,
                       str(chunk_seconds), str(threads)], threads)
    result = json.loads(r["stdout"].strip().splitlines()[-1])
    result["peak_gb"] = r["peak_gb"]
    return result


def run_longform(checkpoint: str, data: str, split: str, minutes: Sequence[float], out_dir: str,
                 gaps: Sequence[float] = (0.25,), threads: int = 2, hf_chunk_seconds: float = 10.0, hf: bool = True,
                 extra: Sequence[str] = (), seeds: Sequence[int] = (0,)) -> List[dict]:
    """The rows of the table (see the module docstring; also written to ``<out_dir>/results.json``); the first row
    is the split's short utterances."""
    from manifests.atomic import atomic_open
    from manifests.error_rates import wer
    from ..evaluate.splits import read_split

    os.makedirs(out_dir, exist_ok=True)
    utterances = read_split(data, split)
    listing = os.path.join(out_dir, f"{split}.list")
    with open(listing, "w", encoding="utf-8") as f:
        f.writelines(u.audio + "\n" for u in utterances)
    short = run_sew_transcribe(checkpoint, ["@" + listing], os.path.join(out_dir, "short"), threads, extra)
    hyps = []
    for u in utterances:
        with open(os.path.join(out_dir, "short", os.path.splitext(os.path.basename(u.audio))[0] + ".txt"),
                  encoding="utf-8") as f:
            hyps.append(f.read().strip())
    short_rate = short["forward_seconds"] / short["audio_seconds"]
    rows = [{"input": f"{len(utterances)} utterances ({short['audio_seconds']:.0f} s)", "audio_seconds":
             short["audio_seconds"], "wer": 100 * wer([u.words for u in utterances], hyps).rate,
             "forward_seconds": short["forward_seconds"], "forward_per_audio_second": short_rate, "relative_rate": 1.0,
             "peak_gb": short["peak_gb"]}]
    hf_dir = os.path.join(out_dir, "hf")
    if hf and not os.path.isdir(hf_dir):
        from ..checkpoints.hf import to_hf

        to_hf(checkpoint, hf_dir)
    import random

    for m, gap, seed in [(m, g, k) for m in minutes for g in gaps for k in seeds]:
        name = f"long_{m:g}min_gap{gap:g}_seed{seed}"
        lead = random.Random(seed).uniform(0.0, 10.0) if seed else 0.0
        audio = os.path.join(out_dir, f"{name}.flac")
        reference = make_recording(utterances, m, gap, audio, lead)
        run_dir = os.path.join(out_dir, f"ours_{name}")
        o = run_sew_transcribe(checkpoint, [audio], run_dir, threads, extra)
        with open(os.path.join(run_dir, f"{name}.txt"), encoding="utf-8") as f:
            text = f.read().strip()
        rate = o["forward_seconds"] / o["audio_seconds"]
        row = {"input": f"{m:g} min, gap {gap:g} s, seed {seed}", "minutes": m, "gap": gap, "seed": seed,
               "lead_seconds": lead, "audio_seconds": o["audio_seconds"], "wer": 100 * wer([reference], [text]).rate,
               "forward_seconds": o["forward_seconds"], "forward_per_audio_second": rate,
               "relative_rate": rate / short_rate, "peak_gb": o["peak_gb"]}
        if hf:
            t = run_hf_pipeline(hf_dir, audio, hf_chunk_seconds, threads)
            row.update(hf_wer=100 * wer([reference], [" ".join(t["text"].split())]).rate, hf_seconds=t["seconds"],
                       hf_peak_gb=t["peak_gb"], forward_over_hf=o["forward_seconds"] / t["seconds"])
        rows.append(row)
    recordings = rows[1:]
    mean = {"input": f"mean of {len(recordings)} recordings",
            "wer": sum(r["wer"] for r in recordings) / len(recordings)}
    if hf:
        mean["hf_wer"] = sum(r["hf_wer"] for r in recordings) / len(recordings)
        mean["worst_wer_over_hf"] = max(r["wer"] - r["hf_wer"] for r in recordings)
    rows.append(mean)
    with atomic_open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2)
    return rows


def format_rows(rows: List[dict], hf_chunk_seconds: float) -> str:
    head = (f"{'input':32}{'WER':>7}{'fwd s':>8}{'fwd/s':>8}{'x short':>8}{'peak GB':>8}"
            f"{'HF WER':>8}{'HF s':>7}{'HF GB':>7}{'fwd/HF':>8}")
    lines = [f"# ours: sew-transcribe greedy; HF: transformers pipeline, chunk_length_s={hf_chunk_seconds:g}", head]
    for r in rows:
        if "forward_seconds" not in r:  # the mean
            line = f"{r['input']:32}{r['wer']:7.2f}{'':40}" + (f"{r['hf_wer']:8.2f}" if "hf_wer" in r else "")
            if "worst_wer_over_hf" in r:
                line += f"   (worst recording: ours - HF = {r['worst_wer_over_hf']:+.2f})"
            lines.append(line)
            continue
        line = (f"{r['input']:32}{r['wer']:7.2f}{r['forward_seconds']:8.2f}{r['forward_per_audio_second']:8.4f}"
                f"{r['relative_rate']:8.2f}{r['peak_gb']:8.2f}")
        if "hf_wer" in r:
            line += f"{r['hf_wer']:8.2f}{r['hf_seconds']:7.2f}{r['hf_peak_gb']:7.2f}{r['forward_over_hf']:8.2f}"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--hf-worker":
        print(json.dumps(hf_worker(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))))
    else:
        print("usage: sew-bench longform ... (this module's --hf-worker is internal)", file=sys.stderr)
        sys.exit(2)
