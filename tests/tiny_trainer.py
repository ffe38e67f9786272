"""fairseq's own Trainer, in this process, on a recipe composed as ``fairseq-hydra-train`` composes it
(``sew-bench train``'s :func:`~sew_fairseq.bench.train.compose_recipe` and ``build_trainer``): a tiny pretraining or
fine-tuning update in about a second (tests of bf16 mixed precision, which look inside the run).

    cfg = compose_recipe("pretraining", "sew_d_tiny", [f"task.data={corpus}", "+common.bf16_mixed=true"])
    task, trainer = build_trainer(cfg)
    trainer.train_step([batch(task)])
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from sew_fairseq.bench.train import build_trainer, compose_recipe  # noqa: F401  (the tests' way in, too)

REPO = Path(__file__).resolve().parents[1]

LETTERS = "E T A O N"


def write_letters_corpus(root: Path, count: int = 4, seed: int = 0) -> Path:
    """``count`` utterances (1-1.5 s of random tones, 16 kHz) with random letter transcripts: train/valid .tsv and
    .ltr (the same utterances) and dict.ltr.txt."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(count):
        n = int(rng.integers(16000, 24000))
        t = np.arange(n) / 16000
        wave = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 2000, size=3)) * 0.1 + rng.normal(0, 0.01, n)
        sf.write(root / f"u{i}.wav", wave.astype(np.float32), 16000, subtype="PCM_16")
        rows.append(f"u{i}.wav\t{n}")
        labels.append(" ".join(rng.choice(LETTERS.split(), size=6)) + " |")
    for split in ("train", "valid"):
        (root / f"{split}.tsv").write_text("\n".join([str(root)] + rows) + "\n")
        (root / f"{split}.ltr").write_text("\n".join(labels) + "\n")
    (root / "dict.ltr.txt").write_text("".join(f"{s} 1\n" for s in LETTERS.split() + ["|"]))
    return root


def batch(task: Any, count: int = 2) -> dict:
    """The first ``count`` utterances of the train split, collated."""
    dataset = task.dataset("train")
    return dataset.collater([dataset[i] for i in range(count)])
