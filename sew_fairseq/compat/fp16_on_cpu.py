"""Fix ``fix_fp16_on_cpu``: a recipe with ``common.fp16: true`` runs with ``common.cpu=true`` (in full precision).

Breaks without it:
    a recipe with ``common.fp16: true`` (the release's GPU setting, in every pretraining and fine-tuning recipe)
    run with ``common.cpu=true`` dies when the trainer builds its optimizer, in
    ``FP16Optimizer.build_fp32_params``, with ``AssertionError: Torch not compiled with CUDA enabled``.
Why:
    fairseq's fp16 / bf16 optimizers always keep their fp32 master copy on CUDA (``torch.cuda.current_device()``),
    and fairseq does not turn half precision off for CPU runs.
Versions:
    fairseq 0.12.2 and fairseq-fixed 0.12.3.1, any torch, on machines without CUDA.
Fix:
    ``fairseq.trainer.Trainer.__init__`` first calls :func:`cpu_without_half_precision`, which turns ``fp16`` /
    ``bf16`` / ``memory_efficient_fp16`` / ``memory_efficient_bf16`` off, with a warning, when ``common.cpu`` is set.
Test:
    ``tests/test_compat.py::test_fp16_on_cpu``; recipes with ``fp16: true`` trained with ``common.cpu=true``,
    ``tests/test_training.py::test_pretraining_logs_losses_and_saves_checkpoints``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
from typing import Any

from ._patching import ALREADY_APPLIED, APPLIED, ORIGINALS, TRAINER

logger = logging.getLogger(__name__)

_HALF_PRECISION_FLAGS = ("fp16", "bf16", "memory_efficient_fp16", "memory_efficient_bf16")


def cpu_without_half_precision(cfg: Any) -> None:
    """Turn fp16/bf16 off in ``cfg.common`` (in place, with a warning) when ``cfg.common.cpu`` is set."""
    from omegaconf import open_dict

    common = getattr(cfg, "common", None)
    if common is None or not getattr(common, "cpu", False):
        return
    on = [flag for flag in _HALF_PRECISION_FLAGS if getattr(common, flag, False)]
    if on:
        logger.warning("common.cpu=true: turning off %s (fairseq's half-precision optimizers need CUDA)",
                       ", ".join(on))
        with open_dict(common):
            for flag in on:
                setattr(common, flag, False)


def fix_fp16_on_cpu() -> str:
    """Recipes with ``common.fp16: true`` run with ``common.cpu=true``."""
    trainer = importlib.import_module(TRAINER)
    init = trainer.Trainer.__init__
    if getattr(init, "_sew_fairseq_patch", False):
        return ALREADY_APPLIED
    ORIGINALS.setdefault(f"{TRAINER}.Trainer.__init__", init)

    def __init__(self, cfg, *args, **kwargs):  # noqa: N807
        if not isinstance(cfg, argparse.Namespace):
            cpu_without_half_precision(cfg)
        init(self, cfg, *args, **kwargs)

    __init__._sew_fairseq_patch = True  # type: ignore[attr-defined]
    trainer.Trainer.__init__ = __init__
    return APPLIED
