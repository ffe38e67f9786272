"""Fix ``fix_mask_zero_static_masks``: a row of span masks that draws zero static spans is left unmasked.

Breaks without it:
    ``compute_mask_indices`` raises ``ValueError: this should never happens`` (fairseq-fixed 0.12.3.1) or
    ``IndexError: index 0 is out of bounds for axis 0 with size 0`` (fairseq 0.12.2) when a row draws no span.
    It happens in training whenever fewer than one span is expected per row: channel masking of wav2vec 2.0's
    (B, 128) channels with ``mask_channel_prob=0.1``, ``mask_channel_length=16`` expects 0.8 spans, and draws 0
    one time in five, so a run dies after a few updates.
Why:
    the number of spans is ``mask_prob * size / mask_length`` rounded up or down at random; fairseq treats an empty
    list of spans as impossible (fairseq-fixed raises, 0.12.2 writes to ``lengths[0]`` of an empty array). With
    ``min_masks=0`` it is a legitimate draw that means "mask nothing in this row".
Versions:
    fairseq 0.12.2 and fairseq-fixed 0.12.3.1, any numpy, any torch.
Fix:
    installs the replacement :func:`~sew_fairseq.compat.mask_indices.compute_mask_indices` (shared with
    ``fix_mask_no_overlap``), which leaves such a row unmasked (with ``min_masks`` > 0 a row always draws spans).
Test:
    ``tests/test_compat.py::test_mask_zero_static_masks`` (fairseq's original raises, the fixed function leaves the
    row empty), ``test_mask_zero_static_masks_wav2vec2_channel_masking_trains`` (fairseq's own ``Wav2Vec2Model``).
"""
from __future__ import annotations

from ._patching import ALREADY_APPLIED, APPLIED, DATA_UTILS, NOT_NEEDED, unpatched
from .mask_indices import install_compute_mask_indices, mask_indices_patched


def has_mask_zero_static_masks_bug() -> bool:
    """True if fairseq's original ``compute_mask_indices`` raises when no static span is drawn.

    ``mask_prob=0`` makes the drawn span count 0 deterministically.
    """
    original = unpatched(DATA_UTILS, "compute_mask_indices")
    try:
        original((1, 20), None, 0.0, 2)
    except (ValueError, IndexError):
        return True
    return False


def fix_mask_zero_static_masks() -> str:
    """``compute_mask_indices`` raising when a row draws zero static spans."""
    if mask_indices_patched():
        return ALREADY_APPLIED
    if not has_mask_zero_static_masks_bug():
        return NOT_NEEDED
    install_compute_mask_indices()
    return APPLIED
