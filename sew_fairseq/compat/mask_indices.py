"""The replacement ``compute_mask_indices`` that two fixes install: ``fix_mask_no_overlap``
(:mod:`.mask_no_overlap`) and ``fix_mask_zero_static_masks`` (:mod:`.mask_zero_static_masks`).

fairseq draws the span masks of wav2vec 2.0, HuBERT and this plugin's models (time masking with ``mask_prob`` /
``mask_length``, channel masking with ``mask_channel_prob`` / ``mask_channel_length``) with
``fairseq.data.data_utils.compute_mask_indices``. :func:`compute_mask_indices` below has the same signature and
makes the same random draws in the same order as fairseq-fixed 0.12.3.1's, so it returns the very same masks
wherever that one works (``tests/test_compat.py::test_replacement_masks_equal_fairseqs_where_fairseq_works``), and
masks where it raises. (fairseq 0.12.2 drew from the global ``np.random`` instead of one generator per row, so
there the masks are drawn as fairseq-fixed draws them.)

Whichever of the two fixes finds its bug first installs it, once, with :func:`install_compute_mask_indices`: into
``fairseq.data.data_utils`` and into every loaded module that imported the original by name
(``fairseq.models.wav2vec.wav2vec2``, ``fairseq.models.hubert.hubert``, ...). numpy itself is not touched (no
global ``np.int``).
"""
from __future__ import annotations

import importlib
import logging
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ._patching import DATA_UTILS, ORIGINALS, replace_attribute, unpatched

logger = logging.getLogger(__name__)


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


def install_compute_mask_indices() -> bool:
    """Put :func:`compute_mask_indices` wherever fairseq's original is bound. True if it changed."""
    data_utils = importlib.import_module(DATA_UTILS)
    original = unpatched(DATA_UTILS, "compute_mask_indices")
    if data_utils.compute_mask_indices is compute_mask_indices:
        return False
    replace_attribute(DATA_UTILS, "compute_mask_indices", compute_mask_indices)
    # Modules that did `from fairseq.data.data_utils import compute_mask_indices` hold their own
    # reference. vars() avoids triggering lazy module __getattr__ hooks.
    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict) and namespace.get("compute_mask_indices") is original:
            ORIGINALS.setdefault(f"{name}.compute_mask_indices", original)
            module.compute_mask_indices = compute_mask_indices  # type: ignore[attr-defined]
            logger.debug("compute_mask_indices replaced in %s", name)
    return True


def mask_indices_patched() -> bool:
    """True if fairseq's ``data_utils.compute_mask_indices`` is already :func:`compute_mask_indices`."""
    data_utils = importlib.import_module(DATA_UTILS)
    return data_utils.compute_mask_indices is compute_mask_indices
