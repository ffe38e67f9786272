"""Fix ``fix_mask_emb_dtype``: masking in a forward under bf16 autocast (``+common.bf16_mixed=true``).

Breaks without it:
    a wav2vec 2.0 / SEW / SEW-D forward with masking under ``torch.autocast(..., torch.bfloat16)`` dies in
    ``Wav2Vec2Model.apply_mask`` with ``RuntimeError: Index put requires the source and destination dtypes match, got
    BFloat16 for the destination and Float for the source``.
Why:
    ``apply_mask`` writes the fp32 parameter ``mask_emb`` into the features with ``index_put`` (``x[mask] = value``);
    under autocast the features come out of a bf16 ``linear`` (``post_extract_proj``), and indexed assignment does not
    cast. (fairseq's fp16 path casts the whole model, mask_emb included, so it never met this.)
Versions:
    fairseq 0.12.2 and fairseq-fixed 0.12.3.1 (``fairseq.models.wav2vec.wav2vec2.index_put``), any torch.
Fix:
    ``fairseq.models.wav2vec.wav2vec2.index_put`` (the name apply_mask and compute_preds call) casts a tensor value to
    the destination's dtype first (:func:`index_put`); the cast is differentiable, so mask_emb still learns in fp32.
Test:
    ``tests/test_compat.py::test_mask_emb_dtype``.
"""
from __future__ import annotations

import importlib
from typing import Any

import torch

from ._patching import ALREADY_APPLIED, APPLIED, NOT_NEEDED, replace_attribute, unpatched

WAV2VEC2 = "fairseq.models.wav2vec.wav2vec2"


def index_put(tensor: torch.Tensor, indices: Any, value: Any) -> torch.Tensor:
    """fairseq's ``utils.index_put`` with a tensor ``value`` cast to ``tensor.dtype``."""
    if torch.is_tensor(value) and value.dtype != tensor.dtype:
        value = value.to(tensor.dtype)
    return unpatched(WAV2VEC2, "index_put")(tensor, indices, value)


def has_mask_emb_dtype_bug() -> bool:
    """Whether fairseq's index_put refuses an fp32 value for a bf16 tensor."""
    try:
        unpatched(WAV2VEC2, "index_put")(torch.zeros(2, 3, dtype=torch.bfloat16), torch.tensor([True, False]),
                                         torch.ones(3))
    except RuntimeError:
        return True
    return False


def fix_mask_emb_dtype() -> str:
    """apply_mask under bf16 autocast."""
    if importlib.import_module(WAV2VEC2).index_put is index_put:
        return ALREADY_APPLIED
    if not has_mask_emb_dtype_bug():
        return NOT_NEEDED
    replace_attribute(WAV2VEC2, "index_put", index_put)
    return APPLIED
