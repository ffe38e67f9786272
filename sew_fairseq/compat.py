"""Fixes for fairseq (fairseq-fixed 0.12.3.1) on Python 3.11, torch >= 2.6 and numpy >= 1.24.

:func:`apply_patches` applies every fix below; ``sew_fairseq/__init__.py`` calls it on import.
Each fix first checks that the installed fairseq/torch/numpy really has the bug (by calling the
original code on a small input, or by reading its source) and does nothing otherwise; calling
:func:`apply_patches` again changes nothing. The replaced objects are kept in :data:`ORIGINALS`.

Fixes (each a function of this module):

``fix_mask_no_overlap``
    Symptom: ``compute_mask_indices(..., no_overlap=True)`` (``no_mask_overlap`` /
    ``no_mask_channel_overlap``) raises ``AttributeError: module 'numpy' has no attribute 'int'``,
    and ``mask_type="uniform"`` raises ``AttributeError: ... Generator ... no attribute 'randint'``.
    Why: numpy >= 1.24 removed ``np.int``; fairseq-fixed also calls ``randint`` (a legacy
    ``RandomState`` method) on a ``numpy.random.Generator``, whose method is ``integers``.
``fix_mask_zero_static_masks``
    Symptom: ``ValueError: this should never happens`` from ``compute_mask_indices`` when a row
    draws zero static spans, e.g. channel masking with ``mask_channel_prob * channels /
    mask_channel_length < 1`` (shape (B, 128), prob 0.1, length 16: 0.8 spans expected, 0 drawn
    one time in five). Why: fairseq-fixed treats an empty span list as impossible; with
    ``min_masks=0`` it is a legitimate draw, meaning "mask nothing in this row".

    Both mask fixes install one replacement, :func:`compute_mask_indices` below (same signature and
    same random draws in the same order as fairseq's, so it returns the very same masks wherever
    fairseq's works), into ``fairseq.data.data_utils`` and into every loaded module that imported
    the original by name (``fairseq.models.wav2vec.wav2vec2``, ``fairseq.models.hubert.hubert``, ...).
    numpy itself is not touched (no global ``np.int``).
``fix_checkpoint_weights_only``
    Symptom: ``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` fails with ``UnpicklingError:
    Weights only load failed ... GLOBAL fairseq.data.dictionary.Dictionary`` (fine-tuned models),
    ``argparse.Namespace`` (legacy ``args``), ``omegaconf...DictConfig`` (older ``cfg``).
    Why: torch >= 2.6 defaults ``torch.load`` to ``weights_only=True`` and fairseq does not pass
    ``weights_only``. Fix: inside ``fairseq.checkpoint_utils`` only, the name ``torch`` is bound to
    a stand-in whose ``load`` is :func:`sew_fairseq.checkpoint.safe_load` (restricted unpickler
    plus an allow-list, never full unpickling); every other ``torch.*`` attribute is torch's own.
``fix_all_gather_list_cpu``
    Symptom: data-parallel training on CPU (gloo) fails in
    ``fairseq.distributed.utils.all_gather_list`` (used to sync logging outputs) with
    ``torch.cuda.ByteTensor`` / ``pin_memory`` errors ("Torch not compiled with CUDA enabled").
    Why: it always allocates its buffer on CUDA. Fix: without CUDA, the same algorithm runs with
    CPU buffers; with CUDA available the original function runs unchanged.
``fix_broadcast_object_weights_only``
    Symptom: resuming data-parallel training (world size > 1) from a checkpoint fails on the
    ranks other than 0 in ``fairseq.distributed.utils.broadcast_object`` with ``UnpicklingError``
    (``fairseq.distributed.utils._TensorPlaceholder``, the ``DictConfig``, the Dictionary).
    Why: rank 0 loads the checkpoint and sends it with ``torch.save``; the receivers decode it with
    ``torch.load``, which now defaults to ``weights_only=True``. Fix: the receiving side of
    ``_broadcast_object_slow`` decodes with ``safe_load`` and the fairseq allow-list plus
    ``_TensorPlaceholder``; the sending side is fairseq's.
``fix_fp16_on_cpu``
    Symptom: a recipe with ``common.fp16: true`` (the release's GPU setting) run with
    ``common.cpu=true`` dies in ``FP16Optimizer.build_fp32_params`` with ``AssertionError: Torch not
    compiled with CUDA enabled``. Why: fairseq's fp16 optimizer always keeps its fp32 copy on CUDA.
    Fix: the trainer turns ``fp16`` / ``bf16`` / ``memory_efficient_*`` off, with a warning, when
    ``common.cpu`` is set.
``fix_root_logger_debug``
    Symptom: after ``import fairseq.models`` every library's DEBUG messages print in a user's script.
    Why: ``fairseq/models/wav2vec/wav2vec2_classification.py`` calls ``logging.basicConfig(level=DEBUG)``
    at import. Fix: if that module did so and the root logger is at DEBUG, put it back to Python's
    default WARNING (fairseq's command-line tools configure their own logging afterwards).
``fix_atomic_checkpoint_copy``
    Symptom: a run killed while fairseq copies its newest checkpoint to ``checkpoint_last.pt`` (or
    ``checkpoint_best.pt``) leaves a truncated file, and the restart fails on it. Why: fairseq writes
    the first checkpoint atomically (``.tmp`` + rename) but makes the others with a plain
    ``PathManager.copy``. Fix: inside ``fairseq.checkpoint_utils`` only, local copies go to
    ``<dst>.tmp`` and are renamed over ``<dst>`` (``os.replace``), so a kill leaves the old file whole.
``fix_batch_by_size_keeps_last_batch``
    Symptom: validation silently skips utterances, and a split with fewer utterances than
    ``dataset.required_batch_size_multiple`` (8 by default) fails with "The dataset is empty".
    Why: fairseq-fixed's ``data_utils.batch_by_size`` drops the last batch when its size is not a
    multiple of ``required_batch_size_multiple`` (fairseq 0.12.2 kept it). Fix: the last batch is kept.
``fix_hubert_ctc_autoregressive``
    Symptom: fine-tuning with fairseq's ``hubert_ctc`` model, or loading a fine-tuned HuBERT checkpoint with
    ``load_model_ensemble_and_task``, fails with ``ConfigAttributeError: Key 'autoregressive' not in
    'HubertCtcConfig'`` (fairseq issue #4916). Why: ``HubertEncoder`` reads ``cfg.autoregressive``, a field only
    its seq2seq config declares. Fix: ``hubert_ctc``'s registered dataclass gets the field (default False), as
    fairseq PR #4917 proposed; the model, the config store and ``hubert_asr.HubertCtcConfig`` use it.
``fix_cpu_data_parallel_spawn``
    Symptom: ``common.cpu=true distributed_training.distributed_world_size=2`` fails with
    ``AssertionError: world size is 2 but have 0 available devices``, and without that check fairseq
    would spawn ``min(cuda devices, world size)`` = 0 processes. Why: fairseq's single-node launcher
    counts CUDA devices. Fix: for CPU runs without a launcher (no torchrun environment, no SLURM)
    ``call_main`` spawns ``world_size`` processes on a free localhost port with the gloo backend.
    It must be patched before fairseq launches, so it takes effect with ``sew-train`` (which imports
    this package first), not with plain ``fairseq-hydra-train`` (which imports the user dir later).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import io
import logging
import pickle
import struct
import sys
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = [
    "ORIGINALS",
    "apply_patches",
    "compute_mask_indices",
    "all_gather_list",
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
]

#: What each patch replaced, keyed by ``"module.attribute"``; filled the first time it patches.
ORIGINALS: Dict[str, Any] = {}

_DATA_UTILS = "fairseq.data.data_utils"
_CHECKPOINT_UTILS = "fairseq.checkpoint_utils"
_DIST_UTILS = "fairseq.distributed.utils"
_TRAINER = "fairseq.trainer"

APPLIED = "applied"
ALREADY_APPLIED = "already applied"
NOT_NEEDED = "not needed"


def _replace(module_name: str, attr: str, new: Any) -> None:
    """Set ``module.attr = new``, remembering the first original in :data:`ORIGINALS`."""
    module = importlib.import_module(module_name)
    ORIGINALS.setdefault(f"{module_name}.{attr}", getattr(module, attr))
    setattr(module, attr, new)


def _original(module_name: str, attr: str) -> Any:
    """The unpatched ``module.attr`` (from :data:`ORIGINALS` once patched)."""
    key = f"{module_name}.{attr}"
    if key in ORIGINALS:
        return ORIGINALS[key]
    return getattr(importlib.import_module(module_name), attr)


# --------------------------------------------------------------------------------------------
# compute_mask_indices (fixes a and b)
# --------------------------------------------------------------------------------------------


def _span_lengths(
    rng: np.random.Generator, mask_type: str, num_spans: int, mask_length: int, mask_other: float
) -> List[int]:
    """Draw the length of each span for one row, as fairseq's mask_type options define them."""
    if mask_type == "static":
        return [mask_length] * num_spans
    if mask_type == "uniform":  # integers in [mask_other, 2 * mask_length]
        return [int(x) for x in rng.integers(mask_other, mask_length * 2 + 1, size=num_spans)]
    if mask_type == "normal":  # at least one element per span
        return [max(1, int(round(x))) for x in rng.normal(mask_length, mask_other, size=num_spans)]
    if mask_type == "poisson":
        return [int(round(x)) for x in rng.poisson(mask_length, size=num_spans)]
    raise ValueError(f"unknown mask selection {mask_type!r}")


def _place_spans(
    rng: np.random.Generator, size: int, lengths: Sequence[int], idc_select_ver: int
) -> np.ndarray:
    """Masked positions of spans with independently drawn starts (spans may overlap)."""
    num_spans = len(lengths)
    if idc_select_ver == 1:
        # Keep the shortest span inside the row, unless the row is too short for that.
        start_range = size - min(lengths)
        if start_range <= num_spans:
            start_range = num_spans + 1
        starts = rng.choice(start_range, num_spans, replace=False)
    elif idc_select_ver == 2:
        starts = rng.choice(size, num_spans, replace=False)
    else:
        raise ValueError(f"idc_select_ver must be 1 or 2, got {idc_select_ver}")
    positions = [start + offset for start, length in zip(starts, lengths) for offset in range(length)]
    return np.asarray(positions, dtype=np.int64)


def _place_spans_apart(
    rng: np.random.Generator, size: int, lengths: Sequence[int], min_space: int
) -> np.ndarray:
    """Masked positions of non-overlapping spans, at least ``min_space`` apart.

    Longest span first, each placed in a free interval picked with probability proportional to
    its length (among those it fits in); the interval is then split around it. Stops early when no
    interval has room left.
    """
    positions: List[int] = []
    free = [(0, size)]  # half-open intervals
    shortest = min(lengths)
    for length in sorted(lengths, reverse=True):
        room = np.array(
            [end - begin if end - begin >= length + min_space else 0 for begin, end in free],
            dtype=np.int64,
        )
        total = room.sum()
        if total == 0:
            break
        begin, end = free.pop(rng.choice(len(free), p=room / total))
        # fairseq draws start in [begin, end - length); when the interval is exactly `length`
        # long that range is empty (numpy raises), and `begin` is the one valid start.
        start = int(rng.integers(begin, max(end - length, begin + 1)))
        positions.extend(range(start, start + length))
        if start - begin - min_space >= shortest:
            free.append((begin, start - min_space + 1))
        if end - start - length - min_space > shortest:
            free.append((start + length + min_space, end))
    return np.asarray(positions, dtype=np.int64)


def compute_mask_indices(
    shape: Tuple[int, int],
    padding_mask: Optional[torch.Tensor],
    mask_prob: float,
    mask_length: int,
    mask_type: str = "static",
    mask_other: float = 0.0,
    min_masks: int = 0,
    no_overlap: bool = False,
    min_space: int = 0,
    require_same_masks: bool = True,
    mask_dropout: float = 0.0,
    add_masks: bool = False,
    seed: Optional[int] = None,
    epoch: Optional[int] = None,
    indices: Optional[torch.Tensor] = None,
    idc_select_ver: int = 1,
    num_mask_ver: int = 2,
) -> np.ndarray:
    """Random span masks of ``shape`` = (batch, length); drop-in for fairseq's function.

    Same arguments, meaning and random draws as ``fairseq.data.data_utils.compute_mask_indices``
    (fairseq-fixed 0.12.3.1), and the same result wherever that one works. Differences, all where
    fairseq's raises: ``no_overlap`` and ``mask_type="uniform"`` work on numpy >= 1.24 (no
    ``np.int``, ``Generator.integers`` instead of ``randint``); a row that draws no static span is
    left unmasked (with ``min_masks`` > 0 it always draws at least ``min_masks``); a non-static row
    whose lengths sum to 0 gets one span of ``min(mask_length, size - 1)``, as fairseq intends.

    Returns:
        Boolean array of ``shape``, True where masked.
    """
    if num_mask_ver not in (1, 2):
        raise ValueError(f"num_mask_ver must be 1 or 2, got {num_mask_ver}")
    bsz, all_sz = shape
    mask = np.full((bsz, all_sz), False)
    if bsz == 0:
        return mask

    def num_spans_for(size: int, draw: float) -> int:
        # expected mask_prob * size / mask_length spans, rounded up or down at random
        return max(min_masks, int(mask_prob * size / float(mask_length) + draw))

    if num_mask_ver == 1:
        batch_num_spans = num_spans_for(all_sz, np.random.rand())

    rows: List[np.ndarray] = []
    rng = np.random.default_rng()
    for i in range(bsz):
        seed_i = None
        if seed is not None and epoch is not None and indices is not None:
            seed_i = int(hash((seed, epoch, indices[i].item())) % 1e6)
        rng = np.random.default_rng(seed_i)

        size = all_sz
        if padding_mask is not None:
            size = all_sz - int(padding_mask[i].long().sum().item())
            if size < 0:
                raise ValueError(f"padding_mask row {i} pads more than the row length")

        if num_mask_ver == 2:
            num_spans = num_spans_for(size, rng.random())
        elif padding_mask is not None:
            num_spans = num_spans_for(size, np.random.rand())
        else:
            num_spans = batch_num_spans

        lengths = _span_lengths(rng, mask_type, num_spans, mask_length, mask_other)
        if sum(lengths) == 0:
            # static: zero spans drawn (or zero-length spans) -> nothing to mask in this row
            lengths = [] if mask_type == "static" else [min(mask_length, size - 1)]

        if not lengths:
            positions = np.zeros(0, dtype=np.int64)
        elif no_overlap:
            positions = _place_spans_apart(rng, size, lengths, min_space)
        else:
            positions = _place_spans(rng, size, lengths, idc_select_ver)

        positions = np.unique(positions[positions < size])
        if size > 0 and len(positions) >= size:
            raise ValueError(
                f"the entire sequence is masked: size={size}, masked={len(positions)}, "
                f"index={indices[i] if indices is not None else None}"
            )
        rows.append(positions)

    target_len = None
    if require_same_masks:
        counts = [len(p) for p in rows]
        target_len = max(counts) if add_masks else min(counts)

    # As in fairseq, the equalising and dropout draws use the last row's generator.
    for i, positions in enumerate(rows):
        if target_len is not None and len(positions) > target_len:
            positions = rng.choice(positions, target_len, replace=False)
        mask[i, positions] = True
        if target_len is not None and len(positions) < target_len:
            unmasked = np.flatnonzero(~mask[i])
            mask[i, rng.choice(unmasked, target_len - len(positions), replace=False)] = True
        if mask_dropout > 0:
            masked = np.flatnonzero(mask[i])
            num_holes = int(np.rint(len(masked) * mask_dropout))
            mask[i, rng.choice(masked, num_holes, replace=False)] = False
    return mask


def _install_compute_mask_indices() -> bool:
    """Put :func:`compute_mask_indices` wherever fairseq's original is bound. True if it changed."""
    data_utils = importlib.import_module(_DATA_UTILS)
    original = _original(_DATA_UTILS, "compute_mask_indices")
    if data_utils.compute_mask_indices is compute_mask_indices:
        return False
    _replace(_DATA_UTILS, "compute_mask_indices", compute_mask_indices)
    # Modules that did `from fairseq.data.data_utils import compute_mask_indices` hold their own
    # reference. vars() avoids triggering lazy module __getattr__ hooks.
    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict) and namespace.get("compute_mask_indices") is original:
            ORIGINALS.setdefault(f"{name}.compute_mask_indices", original)
            module.compute_mask_indices = compute_mask_indices  # type: ignore[attr-defined]
            logger.debug("compute_mask_indices replaced in %s", name)
    return True


def _mask_indices_patched() -> bool:
    data_utils = importlib.import_module(_DATA_UTILS)
    return data_utils.compute_mask_indices is compute_mask_indices


def has_mask_no_overlap_bug() -> bool:
    """True if fairseq's original ``compute_mask_indices(no_overlap=True)`` raises AttributeError."""
    original = _original(_DATA_UTILS, "compute_mask_indices")
    try:
        original((1, 20), None, 0.5, 2, no_overlap=True, seed=1, epoch=1, indices=torch.zeros(1))
    except AttributeError:
        return True
    return False


def has_mask_zero_static_masks_bug() -> bool:
    """True if fairseq's original ``compute_mask_indices`` raises when no static span is drawn.

    ``mask_prob=0`` makes the drawn span count 0 deterministically.
    """
    original = _original(_DATA_UTILS, "compute_mask_indices")
    try:
        original((1, 20), None, 0.0, 2)
    except (ValueError, IndexError):
        return True
    return False


def fix_mask_no_overlap() -> str:
    """Fix (a): ``compute_mask_indices`` with ``no_overlap=True`` on numpy >= 1.24."""
    if _mask_indices_patched():
        return ALREADY_APPLIED
    if not has_mask_no_overlap_bug():
        return NOT_NEEDED
    _install_compute_mask_indices()
    return APPLIED


def fix_mask_zero_static_masks() -> str:
    """Fix (b): ``compute_mask_indices`` raising when a row draws zero static spans."""
    if _mask_indices_patched():
        return ALREADY_APPLIED
    if not has_mask_zero_static_masks_bug():
        return NOT_NEEDED
    _install_compute_mask_indices()
    return APPLIED


# --------------------------------------------------------------------------------------------
# torch.load(weights_only=True) default (fixes c and e)
# --------------------------------------------------------------------------------------------


def torch_load_defaults_to_weights_only() -> bool:
    """True if a plain ``torch.load(f)`` refuses a pickled ``argparse.Namespace``."""
    buffer = io.BytesIO()
    torch.save(argparse.Namespace(probe=1), buffer)
    buffer.seek(0)
    try:
        with warnings.catch_warnings():  # torch 2.4/2.5 warn about the coming default
            warnings.simplefilter("ignore", FutureWarning)
            torch.load(buffer)
    except pickle.UnpicklingError:
        return True
    return False


def _calls_torch_load_without_weights_only(function: Callable[..., Any]) -> bool:
    """True if ``function``'s source calls ``torch.load`` and never mentions ``weights_only``."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        logger.warning("cannot read the source of %r; leaving it unpatched", function)
        return False
    return "torch.load(" in source and "weights_only" not in source


class _TorchWithSafeLoad:
    """Stand-in for the ``torch`` module inside ``fairseq.checkpoint_utils``.

    ``load`` is :func:`sew_fairseq.checkpoint.safe_load`; every other attribute is torch's.
    """

    def __init__(self, torch_module: Any) -> None:
        self._torch = torch_module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._torch, name)

    def __repr__(self) -> str:
        return f"<torch with sew_fairseq safe_load: {self._torch!r}>"

    @staticmethod
    def load(f: Any, map_location: Any = None, **kwargs: Any) -> Any:
        from .checkpoint import safe_load

        if kwargs:
            logger.debug("torch.load arguments %s ignored; loading with safe_load", sorted(kwargs))
        return safe_load(f, map_location=map_location)


def fix_checkpoint_weights_only() -> str:
    """Fix (c): route ``fairseq.checkpoint_utils``' ``torch.load`` calls through ``safe_load``."""
    checkpoint_utils = importlib.import_module(_CHECKPOINT_UTILS)
    if isinstance(checkpoint_utils.torch, _TorchWithSafeLoad):
        return ALREADY_APPLIED
    if not (
        torch_load_defaults_to_weights_only()
        and _calls_torch_load_without_weights_only(checkpoint_utils.load_checkpoint_to_cpu)
    ):
        return NOT_NEEDED
    _replace(_CHECKPOINT_UTILS, "torch", _TorchWithSafeLoad(checkpoint_utils.torch))
    return APPLIED


def _broadcast_object_slow(
    obj: Any, src_rank: int, group: object, dist_device: torch.device
) -> Any:
    """fairseq's ``_broadcast_object_slow`` with the receiving side decoded by ``safe_load``."""
    from .checkpoint import safe_load

    dist_utils = importlib.import_module(_DIST_UTILS)
    if dist_utils.get_rank(group) == src_rank:
        return _original(_DIST_UTILS, "_broadcast_object_slow")(obj, src_rank, group, dist_device)
    length = torch.LongTensor([0]).to(dist_device)
    dist_utils.broadcast(length, src=src_rank, group=group)
    buffer = torch.ByteTensor(int(length.item())).to(dist_device)
    dist_utils.broadcast(buffer, src=src_rank, group=group)
    data = io.BytesIO(buffer.cpu().numpy().tobytes())
    return safe_load(data, map_location="cpu", extra_globals=[dist_utils._TensorPlaceholder])


def fix_broadcast_object_weights_only() -> str:
    """Fix (e): decode ``broadcast_object`` payloads on receiving ranks with ``safe_load``."""
    dist_utils = importlib.import_module(_DIST_UTILS)
    if dist_utils._broadcast_object_slow is _broadcast_object_slow:
        return ALREADY_APPLIED
    if not (
        torch_load_defaults_to_weights_only()
        and _calls_torch_load_without_weights_only(dist_utils._broadcast_object_slow)
    ):
        return NOT_NEEDED
    _replace(_DIST_UTILS, "_broadcast_object_slow", _broadcast_object_slow)
    return APPLIED


# --------------------------------------------------------------------------------------------
# all_gather_list on CPU (fix d)
# --------------------------------------------------------------------------------------------


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
        return _original(_DIST_UTILS, "all_gather_list")(data, group=group, max_size=max_size)

    from fairseq import utils as fairseq_utils

    dist_utils = importlib.import_module(_DIST_UTILS)
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
    original = _original(_DIST_UTILS, "all_gather_list")
    try:
        source = inspect.getsource(original)
    except (OSError, TypeError):
        logger.warning("cannot read the source of fairseq's all_gather_list; leaving it alone")
        return False
    return "torch.cuda.ByteTensor" in source


def fix_all_gather_list_cpu() -> str:
    """Fix (d): ``all_gather_list`` without CUDA (CPU data-parallel training with gloo)."""
    dist_utils = importlib.import_module(_DIST_UTILS)
    if dist_utils.all_gather_list is all_gather_list:
        return ALREADY_APPLIED
    if not has_all_gather_list_cuda_bug():
        return NOT_NEEDED
    _replace(_DIST_UTILS, "all_gather_list", all_gather_list)
    return APPLIED


# --------------------------------------------------------------------------------------------
# launching on CPU (fixes f and g)
# --------------------------------------------------------------------------------------------

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
    """Fix (f): recipes with ``common.fp16: true`` run with ``common.cpu=true``."""
    trainer = importlib.import_module(_TRAINER)
    init = trainer.Trainer.__init__
    if getattr(init, "_sew_fairseq_patch", False):
        return ALREADY_APPLIED
    ORIGINALS.setdefault(f"{_TRAINER}.Trainer.__init__", init)

    def __init__(self, cfg, *args, **kwargs):  # noqa: N807
        if not isinstance(cfg, argparse.Namespace):
            cpu_without_half_precision(cfg)
        init(self, cfg, *args, **kwargs)

    __init__._sew_fairseq_patch = True  # type: ignore[attr-defined]
    trainer.Trainer.__init__ = __init__
    return APPLIED


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call_main(cfg: Any, main: Callable[..., Any], **kwargs: Any) -> Any:
    """fairseq's ``call_main``, plus single-node data-parallel training on CPU (gloo processes)."""
    import os

    from omegaconf import open_dict

    dist_cfg = cfg.distributed_training
    launched = all(k in os.environ for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")) or any(
        k in os.environ for k in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"))
    original = ORIGINALS[f"{_DIST_UTILS}.call_main"]
    if not (cfg.common.cpu and dist_cfg.distributed_world_size > 1 and dist_cfg.distributed_init_method is None
            and not launched and not dist_cfg.pipeline_model_parallel):
        return original(cfg, main, **kwargs)
    dist_utils = importlib.import_module(_DIST_UTILS)
    cpu_without_half_precision(cfg)
    with open_dict(dist_cfg):
        if dist_cfg.distributed_port <= 0:
            dist_cfg.distributed_port = _free_port()
        dist_cfg.distributed_init_method = f"tcp://localhost:{dist_cfg.distributed_port}"
        if dist_cfg.distributed_backend == "nccl":
            dist_cfg.distributed_backend = "gloo"
        kwargs["start_rank"] = dist_cfg.distributed_rank
        dist_cfg.distributed_rank = None  # assigned per spawned process
    logger.info("CPU data-parallel training: spawning %d gloo processes on %s", dist_cfg.distributed_world_size,
                dist_cfg.distributed_init_method)
    torch.multiprocessing.spawn(fn=dist_utils.distributed_main, args=(main, cfg, kwargs),
                                nprocs=dist_cfg.distributed_world_size, join=True)


def fix_cpu_data_parallel_spawn() -> str:
    """Fix (g): ``common.cpu=true distributed_training.distributed_world_size=N`` spawns N processes."""
    dist_utils = importlib.import_module(_DIST_UTILS)
    if dist_utils.call_main is call_main:
        return ALREADY_APPLIED
    try:
        source = inspect.getsource(_original(_DIST_UTILS, "_infer_single_node_init"))
    except (OSError, TypeError, AttributeError):
        return NOT_NEEDED
    if "torch.cuda.device_count()" not in source:
        return NOT_NEEDED
    _replace(_DIST_UTILS, "call_main", call_main)
    return APPLIED


class _AtomicCopyPathManager:
    """fairseq's ``PathManager`` with an atomic ``copy`` for local files; everything else is fairseq's."""

    def __init__(self, path_manager: Any):
        self._path_manager = path_manager

    def __getattr__(self, name: str) -> Any:
        return getattr(self._path_manager, name)

    def copy(self, src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        import os
        import shutil

        if self._path_manager.path_requires_pathmanager(dst_path):  # remote storage: fairseq's own copy
            return self._path_manager.copy(src_path, dst_path, overwrite=overwrite)
        if os.path.exists(dst_path) and not overwrite:
            return False
        tmp = f"{dst_path}.tmp"
        shutil.copyfile(src_path, tmp)
        os.replace(tmp, dst_path)
        return True


def fix_atomic_checkpoint_copy() -> str:
    """Fix (i): copies to ``checkpoint_last.pt`` / ``checkpoint_best.pt`` are atomic."""
    checkpoint_utils = importlib.import_module(_CHECKPOINT_UTILS)
    if isinstance(checkpoint_utils.PathManager, _AtomicCopyPathManager):
        return ALREADY_APPLIED
    if "PathManager.copy(" not in inspect.getsource(checkpoint_utils.save_checkpoint):
        return NOT_NEEDED
    _replace(_CHECKPOINT_UTILS, "PathManager", _AtomicCopyPathManager(checkpoint_utils.PathManager))
    return APPLIED


def batch_by_size(indices: Any, num_tokens_fn: Any, num_tokens_vec: Any = None, max_tokens: Any = None,
                  max_sentences: Any = None, required_batch_size_multiple: int = 1,
                  fixed_shapes: Any = None) -> List[np.ndarray]:
    """fairseq's ``data_utils.batch_by_size`` without dropping the last, smaller batch."""
    if not isinstance(indices, np.ndarray):
        indices = np.fromiter(indices, dtype=np.int64, count=-1)
    batches = ORIGINALS[f"{_DATA_UTILS}.batch_by_size"](
        indices, num_tokens_fn, num_tokens_vec=num_tokens_vec, max_tokens=max_tokens, max_sentences=max_sentences,
        required_batch_size_multiple=required_batch_size_multiple, fixed_shapes=fixed_shapes)
    # batches are consecutive slices of ``indices``; what the original dropped is the tail
    covered = sum(len(b) for b in batches)
    if fixed_shapes is None and covered < len(indices):
        batches.append(indices[covered:])
    return batches


def fix_batch_by_size_keeps_last_batch() -> str:
    """Fix (j): ``batch_by_size`` keeps the last batch whatever its size."""
    data_utils = importlib.import_module(_DATA_UTILS)
    if data_utils.batch_by_size is batch_by_size:
        return ALREADY_APPLIED
    if "b = b[:-1]" not in inspect.getsource(data_utils.batch_by_size):
        return NOT_NEEDED
    _replace(_DATA_UTILS, "batch_by_size", batch_by_size)
    return APPLIED


_HUBERT_ASR = "fairseq.models.hubert.hubert_asr"


def has_hubert_ctc_autoregressive_bug() -> bool:
    """True if fairseq's ``HubertEncoder`` reads ``cfg.autoregressive`` and ``HubertCtcConfig`` lacks it."""
    try:
        module = importlib.import_module(_HUBERT_ASR)
        source = inspect.getsource(module.HubertEncoder.__init__)
    except (ImportError, AttributeError, OSError, TypeError):
        return False
    config = _original(_HUBERT_ASR, "HubertCtcConfig")
    return "cfg.autoregressive" in source and "autoregressive" not in config.__dataclass_fields__


def fix_hubert_ctc_autoregressive() -> str:
    """Fix (k): give ``hubert_ctc``'s config the ``autoregressive`` field its encoder reads (default False)."""
    import dataclasses

    from fairseq.models import MODEL_DATACLASS_REGISTRY, MODEL_REGISTRY
    from hydra.core.config_store import ConfigStore

    module = importlib.import_module(_HUBERT_ASR)
    if getattr(module.HubertCtcConfig, "_sew_fairseq_fixed", False):
        return ALREADY_APPLIED
    if not has_hubert_ctc_autoregressive_bug():
        return NOT_NEEDED
    original = module.HubertCtcConfig
    fixed = dataclasses.make_dataclass(
        original.__name__, [("autoregressive", bool, dataclasses.field(default=False, metadata={
            "help": "decoders that take previous tokens (seq2seq); always false for CTC"}))],
        bases=(original,), namespace={"_sew_fairseq_fixed": True, "__module__": original.__module__})
    _replace(_HUBERT_ASR, "HubertCtcConfig", fixed)
    # what register_model("hubert_ctc", dataclass=HubertCtcConfig) set up, with the fixed class
    MODEL_DATACLASS_REGISTRY["hubert_ctc"] = fixed
    setattr(MODEL_REGISTRY["hubert_ctc"], "__dataclass", fixed)
    node = fixed()
    node._name = "hubert_ctc"
    ConfigStore.instance().store(name="hubert_ctc", group="model", node=node, provider="fairseq")
    return APPLIED


def fix_root_logger_debug() -> str:
    """Fix (h): undo fairseq's ``logging.basicConfig(level=logging.DEBUG)`` at import."""
    import logging as _logging

    try:
        module = importlib.import_module("fairseq.models.wav2vec.wav2vec2_classification")
        source = inspect.getsource(module)
    except (ImportError, OSError, TypeError):
        return NOT_NEEDED
    global _ROOT_LOGGER_FIXED
    if _ROOT_LOGGER_FIXED:
        return ALREADY_APPLIED
    root = _logging.getLogger()
    if "basicConfig(level=logging.DEBUG)" not in source or root.level != _logging.DEBUG:
        return NOT_NEEDED
    root.setLevel(_logging.WARNING)
    _ROOT_LOGGER_FIXED = True
    return APPLIED


_ROOT_LOGGER_FIXED = False


# --------------------------------------------------------------------------------------------

_FIXES: Tuple[Callable[[], str], ...] = (
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
)


def apply_patches() -> Dict[str, str]:
    """Apply every fix whose bug is present; safe to call more than once.

    Returns:
        For each fix name, ``"applied"``, ``"already applied"`` or ``"not needed"``.
    """
    status = {fix.__name__: fix() for fix in _FIXES}
    applied = [name for name, state in status.items() if state == APPLIED]
    if applied:
        logger.debug("sew_fairseq.compat applied: %s", ", ".join(applied))
    return status
