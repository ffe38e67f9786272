"""Fix ``fix_broadcast_object_weights_only``: ranks other than 0 decode a broadcast checkpoint on torch >= 2.6.

Breaks without it:
    resuming data-parallel training (world size > 1) from a checkpoint fails on every rank but 0 in
    ``fairseq.distributed.utils.broadcast_object`` with ``_pickle.UnpicklingError: Weights only load failed ...
    Unsupported global: GLOBAL ...`` (``fairseq.distributed.utils._TensorPlaceholder``, the ``DictConfig``, the
    ``Dictionary``).
Why:
    rank 0 loads the checkpoint and sends it with ``torch.save`` (``_broadcast_object_slow``); the receivers decode
    it with ``torch.load(buffer, map_location="cpu")``, which torch 2.6 made ``weights_only=True`` by default.
Versions:
    fairseq 0.12.2 and fairseq-fixed 0.12.3.1 with torch >= 2.6, any backend (gloo or NCCL).
Fix:
    the receiving side of ``_broadcast_object_slow`` decodes with
    :func:`sew_fairseq.checkpoints.safe_load.safe_load`, the allow-list of ``fix_checkpoint_weights_only`` plus
    ``_TensorPlaceholder``; the sending side is fairseq's.
Test:
    ``tests/test_compat.py::test_broadcast_object_weights_only`` (two gloo processes: fairseq's original fails on
    rank 1, the fixed one delivers the state).
"""
from __future__ import annotations

import importlib
import io
from typing import Any

import torch

from ._patching import ALREADY_APPLIED, APPLIED, DIST_UTILS, NOT_NEEDED, replace_attribute, unpatched
from .checkpoint_weights_only import calls_torch_load_without_weights_only, torch_load_defaults_to_weights_only


def _broadcast_object_slow(
    obj: Any, src_rank: int, group: object, dist_device: torch.device
) -> Any:
    """fairseq's ``_broadcast_object_slow`` with the receiving side decoded by ``safe_load``."""
    from ..checkpoints.safe_load import safe_load

    dist_utils = importlib.import_module(DIST_UTILS)
    if dist_utils.get_rank(group) == src_rank:
        return unpatched(DIST_UTILS, "_broadcast_object_slow")(obj, src_rank, group, dist_device)
    length = torch.LongTensor([0]).to(dist_device)
    dist_utils.broadcast(length, src=src_rank, group=group)
    buffer = torch.ByteTensor(int(length.item())).to(dist_device)
    dist_utils.broadcast(buffer, src=src_rank, group=group)
    data = io.BytesIO(buffer.cpu().numpy().tobytes())
    return safe_load(data, map_location="cpu", extra_globals=[dist_utils._TensorPlaceholder])


def fix_broadcast_object_weights_only() -> str:
    """Decode ``broadcast_object`` payloads on receiving ranks with ``safe_load``."""
    dist_utils = importlib.import_module(DIST_UTILS)
    if dist_utils._broadcast_object_slow is _broadcast_object_slow:
        return ALREADY_APPLIED
    if not (
        torch_load_defaults_to_weights_only()
        and calls_torch_load_without_weights_only(dist_utils._broadcast_object_slow)
    ):
        return NOT_NEEDED
    replace_attribute(DIST_UTILS, "_broadcast_object_slow", _broadcast_object_slow)
    return APPLIED
