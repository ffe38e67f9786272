"""``sew-bench loader``: how fast fairseq's audio dataset feeds training, from a folder of audio files and from the
same split packed into zip shards (``sew-manifest pack``), so that ``dataset.num_workers`` can be sized.

    sew-manifest pack corpus --dest packed
    sew-bench loader --data corpus --packed packed --split train --workers 0 1 2

For each manifest and each worker count: fairseq's ``FileAudioDataset`` (what the pretraining and fine-tuning tasks
read audio with) batched by ``--max-tokens`` samples as fairseq batches it (``batch_by_size``), through a torch
``DataLoader`` with that many worker processes and the dataset's own collater, for ``--epochs`` passes (the first
one after a warm-up batch, so that worker start-up is not counted). Reported: audio hours delivered per second of
wall time, and per worker (one process for 0 workers), measured in one run on this machine. Files in the page cache
are read from memory: this measures decoding and per-file overhead, not a network file system's latency.
"""
from __future__ import annotations

import time
from typing import List, Sequence

SAMPLE_RATE = 16000


def loader_throughput(manifest: str, workers: int, max_tokens: int = 1_400_000, max_sample_size: int = 250_000,
                      epochs: int = 1) -> dict:
    """One row: ``audio_hours`` delivered in ``seconds`` by ``workers`` loader processes over ``manifest`` (a .tsv)."""
    import torch
    from fairseq.data.audio.raw_audio_dataset import FileAudioDataset

    dataset = FileAudioDataset(manifest, sample_rate=SAMPLE_RATE, max_sample_size=max_sample_size, min_sample_size=0,
                               shuffle=False, pad=False)
    batches = dataset.batch_by_size(dataset.ordered_indices(), max_tokens=max_tokens)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=list(batches) * (epochs + 1),
                                         collate_fn=dataset.collater, num_workers=workers)
    samples, start, n = 0, None, 0
    for batch in loader:
        n += 1
        if start is None:  # the first batch waits for the workers to start: not counted
            start = time.perf_counter()
            continue
        samples += batch["net_input"]["source"].numel()
    seconds = time.perf_counter() - start
    hours = samples / SAMPLE_RATE / 3600
    return {"manifest": manifest, "workers": workers, "batches": n - 1, "audio_hours": hours, "seconds": seconds,
            "hours_per_second": hours / seconds, "per_worker": hours / seconds / max(1, workers)}


def run_loader_bench(data: str, split: str, packed: str = None, workers: Sequence[int] = (0, 1, 2),
                     max_tokens: int = 1_400_000, epochs: int = 1) -> List[dict]:
    """Rows for ``<data>/<split>.tsv`` and, with ``packed``, ``<packed>/<split>.tsv``, each worker count, alternating
    the two manifests so that both see the same machine."""
    import os

    manifests = [("files", os.path.join(data, f"{split}.tsv"))]
    if packed:
        manifests.append(("packed", os.path.join(packed, f"{split}.tsv")))
    rows = []
    for w in workers:
        for kind, path in manifests:
            row = loader_throughput(path, w, max_tokens, epochs=epochs)
            row["kind"] = kind
            rows.append(row)
    return rows


def format_rows(rows: Sequence[dict]) -> str:
    out = [f"{'audio':8} {'workers':>7} {'batches':>7} {'audio h':>8} {'seconds':>8} {'audio h/s':>10} "
           f"{'h/s per worker':>15}"]
    for r in rows:
        out.append(f"{r['kind']:8} {r['workers']:>7} {r['batches']:>7} {r['audio_hours']:>8.3f} {r['seconds']:>8.2f} "
                   f"{r['hours_per_second']:>10.3f} {r['per_worker']:>15.3f}")
    return "\n".join(out)
