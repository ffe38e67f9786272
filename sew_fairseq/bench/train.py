"""``sew-bench train``: how fast a pretraining recipe trains on this machine, in fp32 or bf16 mixed precision
(``+common.bf16_mixed=true``), and how much of the time it waits for data.

    sew-bench train --preset sew_tiny --precision fp32 --max-tokens 250000 --updates 6 --generate 16
    sew-bench train --preset sew_tiny --precision bf16-mixed --data manifests --split train --workers 6

The recipe ``recipes/pretraining/<preset>.yaml`` is composed as ``fairseq-hydra-train`` composes it
(:func:`compose_recipe`), with one GPU-batch per update (``optimization.update_freq=[1]``) of ``--max-tokens``
samples (the recipe's own batch by default: scale it to fit the device), and trained by fairseq's own Trainer over
fairseq's batch iterator with ``--workers`` loader processes, on the device fairseq picks (CUDA unless ``--cpu``).
The first ``--warmup`` updates (allocator, oneDNN / cuDNN autotuning, worker start-up) are not counted. Reported over
the counted updates: updates per second, audio seconds per second (the samples of each batch after fairseq's
cropping) and the share of wall time spent waiting for the next batch. bf16 mixed precision on hardware without bf16
is refused (:func:`sew_fairseq.compat.check_bf16_mixed`), with the error training gives. ``--generate N`` writes N
utterances of 2 to 4 s of random tones (what the model computes does not depend on the audio) instead of ``--data``.
"""
from __future__ import annotations

import os
import tempfile
import time
from typing import Any, List, Optional, Sequence

from .loader import SAMPLE_RATE

REPO_RECIPES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "recipes")
PRECISIONS = {"fp32": [], "bf16-mixed": ["+common.bf16_mixed=true"]}


def compose_recipe(group: str, name: str, overrides: Sequence[str], recipes: str = REPO_RECIPES) -> Any:
    """``<recipes>/<group>/<name>.yaml`` with ``overrides`` as fairseq-hydra-train composes it: validated against
    FairseqConfig (its ConfigStore entry under the recipe's name), registry defaults added, a struct DictConfig."""
    from fairseq.dataclass.initialize import add_defaults, hydra_init
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import sew_fairseq  # noqa: F401  (registers the plugin and its fixes, as common.user_dir does)

    hydra_init(name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=os.path.join(recipes, group), version_base="1.1"):
        cfg = compose(name, overrides=list(overrides))
    add_defaults(cfg)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    OmegaConf.set_struct(cfg, True)
    return cfg


def build_trainer(cfg: Any, split: str = "train") -> tuple:
    """(task, fairseq Trainer) for ``cfg`` with ``split`` loaded, as fairseq_cli.train builds them."""
    from fairseq import tasks, utils
    from fairseq.trainer import Trainer

    utils.set_torch_seed(cfg.common.seed)
    task = tasks.setup_task(cfg.task)
    task.load_dataset(split)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return task, Trainer(cfg, task, model, criterion)


def generate_corpus(dest: str, count: int, seed: int = 0) -> str:
    """``count`` utterances of 2-4 s of random tones (16 kHz) and ``train.tsv`` in ``dest``; returns ``dest``."""
    import numpy as np
    import soundfile as sf

    os.makedirs(dest, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        n = int(rng.integers(2 * SAMPLE_RATE, 4 * SAMPLE_RATE))
        t = np.arange(n) / SAMPLE_RATE
        wave = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 2000, size=3)) * 0.1 + rng.normal(0, 0.01, n)
        sf.write(os.path.join(dest, f"u{i:04d}.wav"), wave.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        rows.append(f"u{i:04d}.wav\t{n}")
    with open(os.path.join(dest, "train.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join([dest] + rows) + "\n")
    return dest


def train_throughput(data: str, split: str = "train", preset: str = "sew_tiny", precision: str = "fp32",
                     updates: int = 5, warmup: int = 1, max_tokens: Optional[int] = None, workers: int = 0,
                     cpu: bool = False, overrides: Sequence[str] = ()) -> dict:
    """One row: ``updates`` timed updates (after ``warmup``) of ``preset``'s pretraining recipe in ``precision``."""
    import torch

    from ..compat import check_bf16_mixed

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    device = "cuda" if torch.cuda.is_available() and not cpu else "cpu"
    if precision == "bf16-mixed":
        check_bf16_mixed(device)  # before anything is built
    with tempfile.TemporaryDirectory() as save_dir:
        cfg = compose_recipe("pretraining", preset, [
            f"task.data={data}", f"dataset.train_subset={split}", f"dataset.num_workers={workers}",
            "optimization.update_freq=[1]", "distributed_training.distributed_world_size=1",
            f"checkpoint.save_dir={save_dir}", f"common.cpu={str(cpu or device == 'cpu').lower()}",
            *([f"dataset.max_tokens={max_tokens}"] if max_tokens else []), *PRECISIONS[precision], *overrides])
        task, trainer = build_trainer(cfg, split)
        epoch = trainer.get_train_iterator(epoch=1, load_dataset=False)
        batches, waited, audio, done, start = None, 0.0, 0.0, 0, None
        while done < warmup + updates:
            if batches is None or not batches.has_next():
                batches = epoch.next_epoch_itr(shuffle=True)
            t = time.perf_counter()
            sample = next(batches)
            if done >= warmup:
                waited += time.perf_counter() - t
                audio += sample["net_input"]["source"].numel() / SAMPLE_RATE
            trainer.train_step([sample])
            if device == "cuda":
                torch.cuda.synchronize()
            done += 1
            if done == warmup:
                start = time.perf_counter()
        seconds = time.perf_counter() - start
    return {"preset": preset, "precision": precision, "device": device, "max_tokens": int(cfg.dataset.max_tokens),
            "workers": workers, "updates": updates, "seconds": seconds, "updates_per_second": updates / seconds,
            "audio_seconds_per_second": audio / seconds, "data_wait_share": waited / seconds}


def format_rows(rows: List[dict]) -> str:
    out = [f"{'preset':12} {'precision':10} {'device':6} {'max_tokens':>10} {'workers':>7} {'updates':>7} "
           f"{'seconds':>8} {'updates/s':>9} {'audio s/s':>9} {'data wait':>9}"]
    for r in rows:
        out.append(f"{r['preset']:12} {r['precision']:10} {r['device']:6} {r['max_tokens']:>10} {r['workers']:>7} "
                   f"{r['updates']:>7} {r['seconds']:>8.2f} {r['updates_per_second']:>9.3f} "
                   f"{r['audio_seconds_per_second']:>9.2f} {r['data_wait_share']:>9.1%}")
    return "\n".join(out)
