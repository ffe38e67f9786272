"""Numerical parity with Hugging Face transformers' SEW / SEW-D ports (no downloads).

Small random HF models (every weight randomised, LayerNorm / GroupNorm affine and the relative table
included, so a misplaced norm or a wrong name cannot pass) are converted with the declarative
``HF_TO_OURS`` table of ``sew_fairseq.checkpoints.hf`` (what sew-convert uses), loaded into our models with
``strict=True`` and compared on single utterances of several lengths (odd and even frame counts).
"""
from __future__ import annotations

import math
from typing import Dict

import pytest
import torch
import torch.nn as nn

transformers = pytest.importorskip("transformers")

from sew_fairseq.checkpoints.hf import hf_to_ours_state, to_ours  # noqa: E402
from sew_fairseq.modules.disentangled_attention import log_bucket_position  # noqa: E402
from sew_fairseq.modules.feature_extractor import conv_output_lengths, wfe_c_layers  # noqa: E402
from sew_fairseq.models.presets import build_preset  # noqa: E402

TOL = 1e-4
DIM, HEADS, FFN, LAYERS = 128, 2, 256, 2  # head size 64, as in every released model
WFE_C = 8  # WFE-C base width: 8 -> final 64 channels, so post_extract_proj (64 -> 128) is exercised
CONV_POS, CONV_POS_GROUPS = 31, 16

def convert(hf_state: Dict[str, torch.Tensor], layer_mode: bool) -> Dict[str, torch.Tensor]:
    """HF names -> ours with the converter's table (sew_fairseq.checkpoints.hf.HF_TO_OURS, the single source)."""
    return hf_to_ours_state(hf_state, layer_mode)


def randomise_(model: nn.Module, seed: int) -> None:
    """Overwrite every parameter with seeded random values of sensible scale."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if name.endswith("original0") or name.endswith("weight_g"):  # weight-norm magnitude
                p.copy_(0.5 + r.abs())
            elif p.dim() == 1 and name.endswith("weight"):  # LayerNorm / GroupNorm scale
                p.copy_(1.0 + 0.3 * r)
            elif p.dim() == 1:  # biases, masked_spec_embed
                p.copy_(0.2 * r)
            elif "rel_embeddings" in name:
                p.copy_(r)
            else:  # linear / conv weights: unit-variance outputs
                p.copy_(r / math.sqrt(p[0].numel()))


def hf_conv_kwargs() -> dict:
    layers = wfe_c_layers(WFE_C)
    return dict(conv_dim=[c for c, _, _ in layers], conv_kernel=[k for _, k, _ in layers],
                conv_stride=[s for _, _, s in layers], conv_bias=False)


def hf_common(layer_mode: bool) -> dict:
    return dict(hidden_size=DIM, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN,
                squeeze_factor=2, num_conv_pos_embeddings=CONV_POS, num_conv_pos_embedding_groups=CONV_POS_GROUPS,
                hidden_act="gelu", feat_extract_activation="gelu", feat_extract_norm="layer" if layer_mode else "group",
                mask_time_prob=0.05, **hf_conv_kwargs())


def ours_common(layer_mode: bool) -> dict:
    return dict(encoder_layers=LAYERS, encoder_embed_dim=DIM, encoder_ffn_embed_dim=FFN, encoder_attention_heads=HEADS,
                wfe_channels=WFE_C, conv_pos=CONV_POS, conv_pos_groups=CONV_POS_GROUPS, squeeze_factor=2,
                extractor_mode="layer_norm" if layer_mode else "default", conv_bias=False, activation_fn="gelu",
                quantize_targets=False, mlp_hidden_size=32)


def hf_model(kind: str, layer_mode: bool = False, buckets: int = 256, max_pos: int = 512) -> nn.Module:
    if kind == "sew":
        cfg = transformers.SEWConfig(layer_norm_eps=1e-5, **hf_common(layer_mode))
        cls = transformers.SEWModel
    else:
        cfg = transformers.SEWDConfig(layer_norm_eps=1e-7, feature_layer_norm_eps=1e-5, position_buckets=buckets,
                                      max_position_embeddings=max_pos, **hf_common(layer_mode))
        cls = transformers.SEWDModel
    cfg._attn_implementation = "eager"  # the reference maths, not a fused kernel
    model = cls(cfg)
    randomise_(model, seed=1234)
    return model.eval()


def our_model(kind: str, layer_mode: bool = False, buckets: int = 256, max_pos: int = 512) -> nn.Module:
    if kind == "sew":
        model = build_preset("sew_tiny", **ours_common(layer_mode))
    else:
        model = build_preset("sew_d_tiny", position_buckets=buckets, max_position_embeddings=max_pos,
                             layer_norm_eps=1e-7, **ours_common(layer_mode))
    model.remove_pretraining_modules()
    return model.eval()


def converted_pair(kind: str, layer_mode: bool = False, buckets: int = 256, max_pos: int = 512):
    hf = hf_model(kind, layer_mode, buckets, max_pos)
    ours = our_model(kind, layer_mode, buckets, max_pos)
    state = convert(hf.state_dict(), layer_mode)
    expected = ours.state_dict()
    assert sorted(state) == sorted(expected), (
        f"names only in converted HF: {sorted(set(state) - set(expected))}; "
        f"only in ours: {sorted(set(expected) - set(state))}")
    for k, v in state.items():
        assert v.shape == expected[k].shape, f"{k}: HF {tuple(v.shape)} vs ours {tuple(expected[k].shape)}"
    ours.load_state_dict(state, strict=True)
    return hf, ours


def audio(seconds: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(round(seconds * 16000))
    t = torch.arange(n) / 16000.0
    return (0.3 * torch.sin(2 * math.pi * 220.0 * t) + 0.1 * torch.randn(n, generator=g)).float()


def max_diff(hf: nn.Module, ours: nn.Module, wav: torch.Tensor) -> float:
    with torch.no_grad():
        ref = hf(wav[None]).last_hidden_state
        out = ours.extract_features(wav[None], None)["x"]
    assert out.shape == ref.shape, f"ours {tuple(out.shape)} vs HF {tuple(ref.shape)}"
    return (out - ref).abs().max().item()


SECONDS = (1.0, 1.37, 3.01)


def test_lengths_cover_odd_and_even_frame_counts():
    frames = conv_output_lengths(torch.tensor([int(round(s * 16000)) for s in SECONDS]), wfe_c_layers(WFE_C))
    assert {int(f) % 2 for f in frames} == {0, 1}, frames.tolist()


@pytest.mark.parametrize("kind,layer_mode", [("sew", False), ("sew", True), ("sew_d", False)])
def test_parity(kind, layer_mode):
    hf, ours = converted_pair(kind, layer_mode)
    diffs = {s: max_diff(hf, ours, audio(s, seed=i)) for i, s in enumerate(SECONDS)}
    assert max(diffs.values()) <= TOL, diffs


@pytest.mark.parametrize("buckets,max_pos,seconds", [
    (8, 32, 3.01),  # small bucket table: far (log) buckets and the clamp of the index reached at S = 75
    (256, 512, 6.0),  # the released table: S = 149 squeezed frames, distances past the log boundary (128)
])
def test_sew_d_parity_far_buckets(buckets, max_pos, seconds):
    hf, ours = converted_pair("sew_d", buckets=buckets, max_pos=max_pos)
    diff = max_diff(hf, ours, audio(seconds, seed=7))
    assert diff <= TOL, diff


@pytest.mark.parametrize("kind", ["sew", "sew_d"])
def test_norm_eps_match(kind):
    """LayerNorm / GroupNorm epsilons: a 1e-5 vs 1e-7 mix-up is below the output tolerance, so check directly."""
    hf, ours = hf_model(kind), our_model(kind)
    our_modules = dict(ours.named_modules())
    checked = 0
    for name, m in hf.named_modules():
        if isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
            ours_name = to_ours(name + ".weight", layer_mode=False)[: -len(".weight")]
            eps = our_modules[ours_name].eps
            assert eps == m.eps, f"{name} -> {ours_name}: {eps} vs {m.eps}"
            checked += 1
    assert checked >= 2 * LAYERS + 2


@pytest.mark.parametrize("buckets,max_pos", [(256, 512), (8, 32)])
def test_log_buckets_match_hf(buckets, max_pos):
    from transformers.models.sew_d.modeling_sew_d import make_log_bucket_position

    delta = torch.arange(-3000, 3001)
    ours = log_bucket_position(delta, buckets, max_pos)
    ref = make_log_bucket_position(delta, buckets, max_pos).long()
    assert torch.equal(ours, ref), delta[ours != ref][:10].tolist()
