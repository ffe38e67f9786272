"""Fixes for fairseq on current software: fairseq-fixed 0.12.3.1 (the fairseq that imports on Python >= 3.11;
fairseq 0.12.2 below it) with torch >= 2.6 and numpy >= 1.24.

:func:`apply_patches` applies every fix of :data:`FIXES`, in that order; ``sew_fairseq/__init__.py`` calls it on
import, before the models and tasks are registered. Each fix first checks that the installed fairseq / torch /
numpy really has its bug (by calling the original code on a small input, or by reading its source) and does
nothing otherwise; calling :func:`apply_patches` again changes nothing. The replaced objects are kept in
:data:`ORIGINALS`, keyed ``"module.attribute"``.

One module per fix, named after it; its docstring gives the error without the fix, why, the fairseq versions it
concerns and its test in ``tests/test_compat.py``. In the order they are applied:

- ``fix_root_logger_debug`` (:mod:`.root_logger_debug`): fairseq's ``logging.basicConfig(level=DEBUG)`` at import;
- ``fix_mask_no_overlap`` (:mod:`.mask_no_overlap`): span masks with ``no_overlap`` or ``mask_type="uniform"``
  (``np.int``, ``Generator.randint``);
- ``fix_mask_zero_static_masks`` (:mod:`.mask_zero_static_masks`): a mask row that draws zero spans;
- ``fix_checkpoint_weights_only`` (:mod:`.checkpoint_weights_only`): fairseq's checkpoint loader on torch >= 2.6,
  through an allow-list;
- ``fix_all_gather_list_cpu`` (:mod:`.all_gather_list_cpu`): ``all_gather_list`` without CUDA (gloo);
- ``fix_broadcast_object_weights_only`` (:mod:`.broadcast_object_weights_only`): ranks other than 0 decode a
  broadcast checkpoint on torch >= 2.6;
- ``fix_fp16_on_cpu`` (:mod:`.fp16_on_cpu`): fp16 recipes run with ``common.cpu=true``;
- ``fix_cpu_data_parallel_spawn`` (:mod:`.cpu_data_parallel_spawn`): CPU data-parallel training (with
  ``sew-train``);
- ``fix_atomic_checkpoint_copy`` (:mod:`.atomic_checkpoint_copy`): atomic copies to ``checkpoint_last.pt`` /
  ``checkpoint_best.pt``;
- ``fix_batch_by_size_keeps_last_batch`` (:mod:`.batch_by_size_keeps_last_batch`): ``batch_by_size`` keeps the last
  batch;
- ``fix_hubert_ctc_autoregressive`` (:mod:`.hubert_ctc_autoregressive`): fairseq's own ``hubert_ctc`` (fairseq issue
  #4916);
- ``fix_mask_emb_dtype`` (:mod:`.mask_emb_dtype`): masking under bf16 autocast (``apply_mask``'s fp32 mask_emb);
- ``fix_contrastive_logits_fp32`` (:mod:`.contrastive_logits_fp32`): fp32 contrastive logits under autocast;
- ``fix_bf16_mixed`` (:mod:`.bf16_mixed`): ``+common.bf16_mixed=true``, bf16 mixed-precision training (forward and
  loss under bf16 autocast, weights and optimizer fp32).

The two mask fixes install one replacement ``compute_mask_indices`` (:mod:`.mask_indices`); what every fix module
shares (:data:`ORIGINALS`, the status strings) is in :mod:`._patching`.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, Tuple

from ._patching import ALREADY_APPLIED, APPLIED, NOT_NEEDED, ORIGINALS
from .all_gather_list_cpu import all_gather_list, fix_all_gather_list_cpu, has_all_gather_list_cuda_bug
from .atomic_checkpoint_copy import fix_atomic_checkpoint_copy
from .batch_by_size_keeps_last_batch import batch_by_size, fix_batch_by_size_keeps_last_batch
from .bf16_mixed import UnsupportedPrecision, bf16_autocast, check_bf16_mixed, fix_bf16_mixed
from .broadcast_object_weights_only import fix_broadcast_object_weights_only
from .checkpoint_weights_only import fix_checkpoint_weights_only, torch_load_defaults_to_weights_only
from .contrastive_logits_fp32 import fix_contrastive_logits_fp32
from .cpu_data_parallel_spawn import call_main, fix_cpu_data_parallel_spawn
from .fp16_on_cpu import cpu_without_half_precision, fix_fp16_on_cpu
from .hubert_ctc_autoregressive import fix_hubert_ctc_autoregressive, has_hubert_ctc_autoregressive_bug
from .mask_emb_dtype import fix_mask_emb_dtype, has_mask_emb_dtype_bug
from .mask_indices import compute_mask_indices
from .mask_no_overlap import fix_mask_no_overlap, has_mask_no_overlap_bug
from .mask_zero_static_masks import fix_mask_zero_static_masks, has_mask_zero_static_masks_bug
from .root_logger_debug import fix_root_logger_debug

logger = logging.getLogger(__name__)

__all__ = [
    "ORIGINALS",
    "APPLIED",
    "ALREADY_APPLIED",
    "NOT_NEEDED",
    "FIXES",
    "apply_patches",
    "compute_mask_indices",
    "all_gather_list",
    "batch_by_size",
    "call_main",
    "cpu_without_half_precision",
    "has_mask_no_overlap_bug",
    "has_mask_zero_static_masks_bug",
    "has_all_gather_list_cuda_bug",
    "has_hubert_ctc_autoregressive_bug",
    "torch_load_defaults_to_weights_only",
    "fix_mask_no_overlap",
    "fix_mask_zero_static_masks",
    "fix_checkpoint_weights_only",
    "fix_all_gather_list_cpu",
    "fix_broadcast_object_weights_only",
    "fix_fp16_on_cpu",
    "fix_cpu_data_parallel_spawn",
    "fix_root_logger_debug",
    "fix_atomic_checkpoint_copy",
    "fix_batch_by_size_keeps_last_batch",
    "fix_hubert_ctc_autoregressive",
    "fix_mask_emb_dtype",
    "fix_contrastive_logits_fp32",
    "fix_bf16_mixed",
    "has_mask_emb_dtype_bug",
    "UnsupportedPrecision",
    "bf16_autocast",
    "check_bf16_mixed",
]

#: Every fix, in the order :func:`apply_patches` applies them.
FIXES: Tuple[Callable[[], str], ...] = (
    fix_root_logger_debug,  # first: importing fairseq's models is what sets the root logger to DEBUG
    fix_mask_no_overlap,
    fix_mask_zero_static_masks,
    fix_checkpoint_weights_only,
    fix_all_gather_list_cpu,
    fix_broadcast_object_weights_only,
    fix_fp16_on_cpu,
    fix_cpu_data_parallel_spawn,
    fix_atomic_checkpoint_copy,
    fix_batch_by_size_keeps_last_batch,
    fix_hubert_ctc_autoregressive,
    fix_mask_emb_dtype,
    fix_contrastive_logits_fp32,
    fix_bf16_mixed,  # after fix_fp16_on_cpu: its Trainer.__init__ wraps that one
)


def apply_patches() -> Dict[str, str]:
    """Apply every fix whose bug is present; safe to call more than once.

    Returns:
        For each fix name, ``"applied"``, ``"already applied"`` or ``"not needed"``.
    """
    status = {fix.__name__: fix() for fix in FIXES}
    applied = [name for name, state in status.items() if state == APPLIED]
    if applied:
        logger.debug("sew_fairseq.compat applied: %s", ", ".join(applied))
    return status
