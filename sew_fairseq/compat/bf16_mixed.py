"""Fix ``fix_bf16_mixed``: ``+common.bf16_mixed=true`` trains any recipe in bf16 mixed precision.

Breaks without it:
    fairseq has no bf16 mixed precision. ``common.bf16`` casts the whole model to bf16 (LayerNorms and softmaxes
    included) and keeps its fp32 master copy on CUDA only; ``common.amp`` is CUDA fp16 autocast with loss scaling;
    ``+common.bf16_mixed=true`` is accepted by Hydra and silently ignored (the run trains in fp32).
Why:
    fairseq's ``FairseqTask.train_step`` runs the forward under ``torch.cuda.amp.autocast`` only for its fp16
    ``AMPOptimizer`` (and with ``enabled=False`` otherwise, which also switches off a CUDA autocast entered around
    it), so a bf16 autocast must be entered inside, around the criterion call.
Versions:
    fairseq 0.12.2 and fairseq-fixed 0.12.3.1, torch >= 1.13 (``torch.autocast`` on CPU and CUDA).
Fix:
    ``fairseq.trainer.Trainer.__init__`` first resolves ``common.bf16_mixed`` (:func:`resolve_bf16_mixed`): on a
    device without bf16 (:func:`check_bf16_mixed`) it stops with a one-line :class:`UnsupportedPrecision`; otherwise
    it turns ``fp16`` / ``bf16`` / ``amp`` / ``memory_efficient_*`` off (the weights, their gradients and the
    optimizer state stay fp32, no loss scaling) and tells the task which device type to autocast
    (``task.bf16_mixed_device``). ``FairseqTask.train_step`` / ``valid_step`` then call the criterion through
    :class:`Bf16AutocastCriterion`: model forward and loss under :func:`bf16_autocast`, the backward outside it.
Test:
    ``tests/test_compat.py::test_bf16_mixed``; tiny pretraining and fine-tuning updates, resume in fp32, the
    hardware check: ``tests/test_bf16_mixed.py``.

What runs in bf16 under :func:`bf16_autocast`: autocast's lower-precision list (``linear``, ``matmul``, ``bmm``,
``conv1d``, ``scaled_dot_product_attention``, ...). What stays fp32: LayerNorm, GroupNorm, softmax, log-softmax and
cosine similarity (CUDA autocast's fp32 list; on a CPU, whose autocast lets them run in bf16, :func:`bf16_autocast`
casts their inputs to fp32, see :data:`CPU_FP32_OPS`), fairseq's attention softmax and the quantiser's Gumbel softmax
(both ``x.float()``), the contrastive logits (:mod:`.contrastive_logits_fp32`), the CTC loss and cross-entropy
(autocast's fp32 lists), and everything of the optimizer: master weights, gradients, Adam moments.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import threading
from typing import Any, Iterator, Optional

import torch

from ..hardware_probes import cpu_bf16
from ._patching import ALREADY_APPLIED, APPLIED, ORIGINALS, TRAINER

logger = logging.getLogger(__name__)

KEY = "bf16_mixed"  # the switch: +common.bf16_mixed=true
FAIRSEQ_TASK = "fairseq.tasks.fairseq_task"
_OTHER_PRECISIONS = ("fp16", "bf16", "memory_efficient_fp16", "memory_efficient_bf16", "amp")
#: ops CUDA autocast runs in fp32 but CPU autocast runs in the input's dtype: :func:`bf16_autocast` on a CPU casts
#: their bf16 inputs to fp32 (aten overloads)
CPU_FP32_OPS = ("layer_norm", "group_norm", "softmax.int", "log_softmax.int", "cosine_similarity")


class UnsupportedPrecision(ValueError):
    """bf16 mixed precision asked for on a device without bf16 (one-line message)."""


def check_bf16_mixed(device_type: str) -> None:
    """Raise :class:`UnsupportedPrecision` unless ``device_type`` ("cpu" / "cuda") has bf16 units."""
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise UnsupportedPrecision(f"bf16 mixed precision on cuda: no CUDA device (torch {torch.__version__} "
                                       f"sees none)")
        if not torch.cuda.is_bf16_supported():
            raise UnsupportedPrecision(f"bf16 mixed precision on cuda needs a GPU with bf16 (compute capability 8.0 "
                                       f"or newer); {torch.cuda.get_device_name()} has none: train with "
                                       f"common.fp16=true instead")
        return
    if device_type != "cpu":
        raise UnsupportedPrecision(f"bf16 mixed precision runs on cpu or cuda, not {device_type}")
    ok, detail = cpu_bf16()
    if not ok:
        raise UnsupportedPrecision(f"bf16 mixed precision on a CPU needs AVX512-BF16 or AMX-BF16 dot products "
                                   f"(without them bf16 is emulated, slower than fp32); {detail}: train in fp32")


def trainer_device_type(cfg: Any) -> str:
    """The device type fairseq's Trainer puts the model on for ``cfg`` (its own rule: CUDA unless common.cpu)."""
    common = cfg.common
    if getattr(common, "tpu", False):
        return "xla"
    return "cuda" if torch.cuda.is_available() and not getattr(common, "cpu", False) else "cpu"


def resolve_bf16_mixed(cfg: Any) -> Optional[str]:
    """With ``cfg.common.bf16_mixed``: check the hardware, turn the other precisions off (in place, with a warning)
    and return the device type to autocast; None without it."""
    from omegaconf import open_dict

    common = getattr(cfg, "common", None)
    if common is None or not getattr(common, KEY, False):
        return None
    device_type = trainer_device_type(cfg)
    try:
        check_bf16_mixed(device_type)
    except UnsupportedPrecision as e:
        raise UnsupportedPrecision(f"common.{KEY}=true: {e}") from None
    on = [flag for flag in _OTHER_PRECISIONS if getattr(common, flag, False)]
    if on:
        logger.warning("common.%s=true: turning off %s (weights and optimizer state stay fp32, forwards run under "
                       "bf16 autocast, no loss scaling)", KEY, ", ".join(on))
        with open_dict(common):
            for flag in on:
                setattr(common, flag, False)
    logger.info("bf16 mixed precision on %s: forward and loss under torch.autocast(bfloat16)", device_type)
    return device_type


_CPU_POLICY = threading.local()  # .on: the CPU fp32 kernels cast (only inside bf16_autocast)
_CPU_LIBRARY: list = []  # the torch.library registration, made once


def _fp32_on_cpu(op: Any) -> Any:
    def kernel(*args: Any, **kwargs: Any) -> Any:
        if getattr(_CPU_POLICY, "on", False):
            args = tuple(a.float() if isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 else a for a in args)
        with torch.autocast("cpu", enabled=False):  # below autocast: what it would have run without this kernel
            return op(*args, **kwargs)

    return kernel


def _register_cpu_fp32_ops() -> None:
    """CPU autocast kernels for :data:`CPU_FP32_OPS` that cast bf16 inputs to fp32 while ``_CPU_POLICY.on`` and
    otherwise run the op as CPU autocast does (it has no kernel of its own for these: they run in the input's dtype),
    so that bf16 inference elsewhere is unchanged."""
    if _CPU_LIBRARY:
        return
    library = torch.library.Library("aten", "IMPL")
    for name in CPU_FP32_OPS:
        base, _, overload = name.partition(".")
        library.impl(name, _fp32_on_cpu(getattr(getattr(torch.ops.aten, base), overload or "default")), "AutocastCPU")
    _CPU_LIBRARY.append(library)


@contextlib.contextmanager
def bf16_autocast(device_type: str) -> Iterator[None]:
    """``torch.autocast(device_type, torch.bfloat16)``, with :data:`CPU_FP32_OPS` in fp32 on a CPU as on CUDA."""
    with torch.autocast(device_type, dtype=torch.bfloat16):
        if device_type != "cpu":
            yield
            return
        _register_cpu_fp32_ops()
        before = getattr(_CPU_POLICY, "on", False)
        _CPU_POLICY.on = True
        try:
            yield
        finally:
            _CPU_POLICY.on = before


class Bf16AutocastCriterion:
    """``criterion(model, sample)`` (model forward and loss) under :func:`bf16_autocast`; any other attribute is the
    criterion's."""

    def __init__(self, criterion: Any, device_type: str):
        self.criterion, self.device_type = criterion, device_type

    def __call__(self, model: Any, sample: Any, *args: Any, **kwargs: Any) -> Any:
        with bf16_autocast(self.device_type):
            return self.criterion(model, sample, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.criterion, name)


def _autocast(task: Any, criterion: Any) -> Any:
    device_type = getattr(task, "bf16_mixed_device", None)
    return Bf16AutocastCriterion(criterion, device_type) if device_type else criterion


def fix_bf16_mixed() -> str:
    """``+common.bf16_mixed=true``: bf16 mixed-precision training with fairseq's trainer."""
    trainer = importlib.import_module(TRAINER)
    fairseq_task = importlib.import_module(FAIRSEQ_TASK)
    init = trainer.Trainer.__init__
    if getattr(init, "_sew_fairseq_bf16_mixed", False):
        return ALREADY_APPLIED
    task_cls = fairseq_task.FairseqTask
    train_step, valid_step = task_cls.train_step, task_cls.valid_step
    ORIGINALS.setdefault(f"{FAIRSEQ_TASK}.FairseqTask.train_step", train_step)
    ORIGINALS.setdefault(f"{FAIRSEQ_TASK}.FairseqTask.valid_step", valid_step)

    def __init__(self, cfg, task, *args, **kwargs):  # noqa: N807
        device_type = None if isinstance(cfg, argparse.Namespace) else resolve_bf16_mixed(cfg)
        init(self, cfg, task, *args, **kwargs)
        task.bf16_mixed_device = device_type

    def task_train_step(self, sample, model, criterion, *args, **kwargs):
        return train_step(self, sample, model, _autocast(self, criterion), *args, **kwargs)

    def task_valid_step(self, sample, model, criterion, *args, **kwargs):
        return valid_step(self, sample, model, _autocast(self, criterion), *args, **kwargs)

    __init__._sew_fairseq_bf16_mixed = True  # type: ignore[attr-defined]
    __init__._sew_fairseq_patch = getattr(init, "_sew_fairseq_patch", False)  # type: ignore[attr-defined]
    trainer.Trainer.__init__ = __init__
    task_cls.train_step, task_cls.valid_step = task_train_step, task_valid_step
    return APPLIED
