"""fairseq's own Trainer, in this process, on a recipe composed as ``fairseq-hydra-train`` composes it: a tiny
pretraining or fine-tuning update in about a second (tests of bf16 mixed precision, which look inside the run).

    cfg = compose_recipe("pretraining", "sew_d_tiny", [f"task.data={corpus}", "+common.bf16_mixed=true"])
    task, trainer = build_trainer(cfg)
    trainer.train_step([batch(task)])
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Tuple

import numpy as np
import soundfile as sf

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


def compose_recipe(group: str, name: str, overrides: List[str]) -> Any:
    """``recipes/<group>/<name>.yaml`` with ``overrides``, as fairseq-hydra-train composes it (the recipe validated
    against FairseqConfig, registry defaults added, then a struct config)."""
    from fairseq.dataclass.initialize import add_defaults, hydra_init
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import sew_fairseq  # noqa: F401  (registers the plugin, as common.user_dir does)

    hydra_init(name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "recipes" / group), version_base="1.1"):
        cfg = compose(name, overrides=overrides)
    add_defaults(cfg)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    OmegaConf.set_struct(cfg, True)
    return cfg


def build_trainer(cfg: Any) -> Tuple[Any, Any]:
    """(task, fairseq Trainer) for ``cfg``, with the train split loaded, as fairseq_cli.train builds them."""
    from fairseq import tasks, utils
    from fairseq.trainer import Trainer

    utils.set_torch_seed(cfg.common.seed)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return task, Trainer(cfg, task, model, criterion)


def batch(task: Any, count: int = 2) -> dict:
    """The first ``count`` utterances of the train split, collated."""
    dataset = task.dataset("train")
    return dataset.collater([dataset[i] for i in range(count)])
