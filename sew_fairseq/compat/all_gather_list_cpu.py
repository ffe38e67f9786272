"""Fix ``fix_all_gather_list_cpu``: ``all_gather_list`` without CUDA, for data-parallel training on CPU (gloo).

Breaks without it:
    data-parallel training on CPU (``common.cpu=true``, world size > 1, gloo) fails in
    ``fairseq.distributed.utils.all_gather_list``, which the trainer uses to sync logging outputs that cannot be
    summed, with ``TypeError: type torch.cuda.ByteTensor not available. Torch not compiled with CUDA enabled.``
    (on a CPU-only torch; the ``pin_memory()`` that follows needs an accelerator too).
Why:
    it always allocates its exchange buffer with ``torch.cuda.ByteTensor`` and a pinned CPU staging buffer.
Versions:
    fairseq 0.12.2 and fairseq-fixed 0.12.3.1, any torch, on machines without CUDA.
Fix:
    :func:`all_gather_list` runs the same exchange with CPU buffers when CUDA is unavailable; with CUDA available
    it calls fairseq's original unchanged.
Test:
    ``tests/test_compat.py::test_all_gather_list_cpu`` (two gloo processes: fairseq's original fails, the fixed one
    gathers both ranks' outputs, also with a bigger ``max_size``); training end to end,
    ``tests/test_training.py::test_two_process_data_parallel_training_on_cpu``.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import pickle
import struct
from typing import Any, List, Optional

import torch

from ._patching import ALREADY_APPLIED, APPLIED, DIST_UTILS, NOT_NEEDED, replace_attribute, unpatched

logger = logging.getLogger(__name__)


class _CpuBuffers:
    """all_gather_list's reusable CPU buffers (the original keeps them on the function)."""

    gather: Optional[torch.Tensor] = None


def all_gather_list(data: Any, group: Any = None, max_size: int = 16384) -> List[Any]:
    """Gather a picklable object from every worker; fairseq's ``all_gather_list`` for CPU too.

    With CUDA available this calls fairseq's original unchanged. Without CUDA it runs the same
    exchange (each worker writes ``[4-byte big-endian length][pickle]`` into its ``max_size`` slot
    of a zeroed byte buffer, the buffers are summed with all-reduce, each slot is decoded) on a
    CPU buffer, which the gloo backend reduces.
    """
    if torch.cuda.is_available():
        return unpatched(DIST_UTILS, "all_gather_list")(data, group=group, max_size=max_size)

    from fairseq import utils as fairseq_utils

    dist_utils = importlib.import_module(DIST_UTILS)
    if group is None:
        group = dist_utils.get_global_group()
    rank = dist_utils.get_rank(group=group)
    world_size = dist_utils.get_world_size(group=group)

    encoded = pickle.dumps(fairseq_utils.move_to_cpu(data))
    header = struct.pack(">I", len(encoded))
    if len(header) + len(encoded) > max_size:
        raise ValueError(
            f"encoded data size ({len(header) + len(encoded)}) exceeds max_size ({max_size})"
        )

    needed = max_size * world_size
    if _CpuBuffers.gather is None or _CpuBuffers.gather.numel() != needed:
        _CpuBuffers.gather = torch.zeros(needed, dtype=torch.uint8)
    buffer = _CpuBuffers.gather
    buffer.zero_()
    payload = torch.frombuffer(bytearray(header + encoded), dtype=torch.uint8)
    buffer[rank * max_size : rank * max_size + payload.numel()] = payload

    dist_utils.all_reduce(buffer, group=group)

    gathered = buffer.numpy().tobytes()
    result = []
    try:
        for slot in range(world_size):
            chunk = gathered[slot * max_size : (slot + 1) * max_size]
            (size,) = struct.unpack(">I", chunk[: len(header)])
            if size > 0:
                result.append(pickle.loads(chunk[len(header) : len(header) + size]))
    except pickle.UnpicklingError as err:
        raise RuntimeError(
            "Unable to unpickle data from other workers: all_gather_list needs every worker to "
            "enter it together, so the workers are out of sync (one ran out of memory or finished "
            "its epoch early?). Try distributed_training.ddp_backend=legacy_ddp."
        ) from err
    return result


def has_all_gather_list_cuda_bug() -> bool:
    """True if fairseq's ``all_gather_list`` allocates its buffer with ``torch.cuda``."""
    original = unpatched(DIST_UTILS, "all_gather_list")
    try:
        source = inspect.getsource(original)
    except (OSError, TypeError):
        logger.warning("cannot read the source of fairseq's all_gather_list; leaving it alone")
        return False
    return "torch.cuda.ByteTensor" in source


def fix_all_gather_list_cpu() -> str:
    """``all_gather_list`` without CUDA (CPU data-parallel training with gloo)."""
    dist_utils = importlib.import_module(DIST_UTILS)
    if dist_utils.all_gather_list is all_gather_list:
        return ALREADY_APPLIED
    if not has_all_gather_list_cuda_bug():
        return NOT_NEEDED
    replace_attribute(DIST_UTILS, "all_gather_list", all_gather_list)
    return APPLIED
