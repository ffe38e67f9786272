"""Fix ``fix_contrastive_logits_fp32``: the contrastive logits of a pretraining forward under bf16 autocast stay fp32.

Breaks without it:
    under ``torch.autocast(..., torch.bfloat16)`` (``+common.bf16_mixed=true``) ``Wav2Vec2Model.compute_preds``
    returns the contrastive logits (cosine similarity / ``logit_temp``, up to +-10 at temperature 0.1) rounded to
    bf16 (8 significant bits: steps of 0.03 to 0.06 near +-10) before the InfoNCE cross-entropy reads them.
Why:
    ``compute_preds`` computes the cosine similarity in fp32 (``x.float()``) and then casts the logits back with
    ``logits.type_as(x)``: under fp16 training ``x`` is fp16 by design; under autocast ``x`` is the bf16 output of
    ``final_proj`` (a ``linear``), so the loss would see bf16 logits.
Versions:
    fairseq 0.12.2 and fairseq-fixed 0.12.3.1 (every model built on ``Wav2Vec2Model``: wav2vec2, w2v2_mlp, sew,
    sew_d), any torch with autocast.
Fix:
    ``Wav2Vec2Model.compute_preds`` is called with ``x.float()`` while autocast is on (:func:`compute_preds`): the
    same fp32 cosine similarity, and ``type_as`` keeps it fp32. Without autocast (fp32, fairseq's fp16) it is
    fairseq's unchanged.
Test:
    ``tests/test_compat.py::test_contrastive_logits_fp32``.
"""
from __future__ import annotations

import importlib
import inspect

import torch

from ._patching import ALREADY_APPLIED, APPLIED, NOT_NEEDED, ORIGINALS

WAV2VEC2 = "fairseq.models.wav2vec.wav2vec2"
KEY = f"{WAV2VEC2}.Wav2Vec2Model.compute_preds"


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def compute_preds(self, x: torch.Tensor, y: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """x [B, M, F], y [B, M, F], negatives [N, B, M, F] -> logits [1 + N, B, M], fp32 under autocast."""
    original = ORIGINALS.get(KEY) or importlib.import_module(WAV2VEC2).Wav2Vec2Model.compute_preds
    if x.dtype != torch.float32 and _autocast_on(x.device.type):
        x = x.float()
    return original(self, x, y, negatives)


def fix_contrastive_logits_fp32() -> str:
    """fp32 contrastive logits under autocast."""
    model = importlib.import_module(WAV2VEC2).Wav2Vec2Model
    if model.compute_preds is compute_preds:
        return ALREADY_APPLIED
    if "type_as(x)" not in inspect.getsource(model.compute_preds):
        return NOT_NEEDED
    ORIGINALS.setdefault(KEY, model.compute_preds)
    model.compute_preds = compute_preds
    return APPLIED
