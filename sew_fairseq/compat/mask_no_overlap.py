"""Fix ``fix_mask_no_overlap``: span masks with ``no_overlap=True`` or ``mask_type="uniform"`` on numpy >= 1.24.

Breaks without it:
    ``compute_mask_indices(..., no_overlap=True)``, i.e. training with ``model.no_mask_overlap=true`` or
    ``model.no_mask_channel_overlap=true``, raises ``AttributeError: module 'numpy' has no attribute 'int'``;
    ``mask_type="uniform"`` (``model.mask_selection=uniform``) raises ``AttributeError:
    'numpy.random._generator.Generator' object has no attribute 'randint'``.
Why:
    fairseq builds the no-overlap interval lengths with ``np.fromiter(..., np.int)``, and numpy 1.24 removed the
    ``np.int`` alias. fairseq-fixed also draws uniform span lengths and no-overlap starts with ``rng.randint``,
    a method of the legacy ``RandomState``, on a ``numpy.random.Generator``, whose method is ``integers``.
Versions:
    ``np.int``: fairseq 0.12.2 and fairseq-fixed 0.12.3.1 with numpy >= 1.24. ``randint``: fairseq-fixed 0.12.3.1
    with any numpy (fairseq 0.12.2 drew from the global ``np.random``, which has ``randint``).
Fix:
    installs the replacement :func:`~sew_fairseq.compat.mask_indices.compute_mask_indices` (shared with
    ``fix_mask_zero_static_masks``), which uses ``int`` and ``Generator.integers``.
Test:
    ``tests/test_compat.py::test_mask_no_overlap`` (fairseq's original raises both errors, the fixed function masks
    5 spans of 10 apart), ``test_mask_no_overlap_uniform_lengths``.
"""
from __future__ import annotations

import torch

from ._patching import ALREADY_APPLIED, APPLIED, DATA_UTILS, NOT_NEEDED, unpatched
from .mask_indices import install_compute_mask_indices, mask_indices_patched


def has_mask_no_overlap_bug() -> bool:
    """True if fairseq's original ``compute_mask_indices(no_overlap=True)`` raises AttributeError."""
    original = unpatched(DATA_UTILS, "compute_mask_indices")
    try:
        original((1, 20), None, 0.5, 2, no_overlap=True, seed=1, epoch=1, indices=torch.zeros(1))
    except AttributeError:
        return True
    return False


def fix_mask_no_overlap() -> str:
    """``compute_mask_indices`` with ``no_overlap=True`` (and ``mask_type="uniform"``) on numpy >= 1.24."""
    if mask_indices_patched():
        return ALREADY_APPLIED
    if not has_mask_no_overlap_bug():
        return NOT_NEEDED
    install_compute_mask_indices()
    return APPLIED
