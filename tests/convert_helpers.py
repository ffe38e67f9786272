"""Shared by the tests/test_convert_*.py files: reduced presets, random-weight models on both sides, audio.

Every weight is randomised (norm scales, biases and the relative table included), so a misplaced norm or a
wrong name cannot pass a parity check.
"""
from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
import torch.nn as nn

from sew_fairseq.interop.common import checkpoint_dict, finetuning_cfg, pretraining_cfg
from sew_fairseq.modules.feature_extractor import wfe_c_layers, wfe_o_layers
from sew_fairseq.presets import build_preset

TOL = 1e-4
LETTERS = list("|ETAONIHSRDLUMWCFGYPBVKXJQZ'")

# reduced presets: (family, our model overrides); HF configs are derived from the same numbers
REDUCED: Dict[str, Tuple[str, Dict[str, Any]]] = {
    # SEW-tiny's layout (WFE-C, group-norm extractor, squeeze 2, conv_pos 31) at width 128
    "sew_c": ("sew", dict(wfe_channels=8, encoder_layers=2, encoder_embed_dim=128, encoder_ffn_embed_dim=256,
                          encoder_attention_heads=2)),
    # WFE-O extractor with LayerNorms in every block, squeeze 3, even positional kernel
    "sew_o_layer_sq3": ("sew", dict(wfe_type="O", wfe_channels=64, extractor_mode="layer_norm", squeeze_factor=3,
                                    conv_pos=16, encoder_layers=2, encoder_embed_dim=128,
                                    encoder_ffn_embed_dim=256, encoder_attention_heads=2)),
    # SEW-D-tiny's layout at width 128
    "sew_d_c": ("sew_d", dict(wfe_channels=8, encoder_layers=2, encoder_embed_dim=128, encoder_ffn_embed_dim=256,
                              encoder_attention_heads=2)),
    # SEW-D with k127 positional conv, squeeze 4, WFE-O, a small bucket table (log buckets and clamping reached)
    "sew_d_o_sq4_k127": ("sew_d", dict(wfe_type="O", wfe_channels=64, squeeze_factor=4, conv_pos=127,
                                       position_buckets=8, max_position_embeddings=32, encoder_layers=2,
                                       encoder_embed_dim=128, encoder_ffn_embed_dim=256, encoder_attention_heads=2)),
}


def randomise_(model: nn.Module, seed: int) -> nn.Module:
    """Overwrite every floating parameter with seeded random values of sensible scale."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if name.endswith(("original0", "weight_g")):  # weight-norm magnitude
                p.copy_(0.5 + r.abs())
            elif p.dim() == 1 and name.endswith("weight"):  # LayerNorm / GroupNorm scale
                p.copy_(1.0 + 0.3 * r)
            elif p.dim() == 1:  # biases, mask embedding
                p.copy_(0.2 * r)
            elif "rel_embeddings" in name:
                p.copy_(r)
            else:  # linear / conv weights: unit-variance outputs
                p.copy_(r / math.sqrt(p[0].numel()))
    return model


def our_model(name: str, seed: int = 0, heads: bool = True) -> Tuple[nn.Module, Any]:
    """(our pretraining model with random weights, its structured config) of reduced preset ``name``."""
    from sew_fairseq.presets import preset_config

    family, over = REDUCED[name]
    base = "sew_tiny" if family == "sew" else "sew_d_tiny"
    extra = dict(quantize_targets=True, final_dim=32, latent_vars=8, mlp_hidden_size=32)
    cfg = preset_config(base, **over, **extra)
    model = build_preset(base, **over, **extra)
    if not heads:
        model.remove_pretraining_modules()
    randomise_(model, seed)
    return model.eval(), cfg


def dictionary():
    from fairseq.data import Dictionary

    d = Dictionary()
    for s in LETTERS:
        d.add_symbol(s, n=10)
    return d


def write_plugin_checkpoint(path: Path, name: str, ctc: bool, seed: int = 0) -> Path:
    """A plugin checkpoint laid out as fairseq-hydra-train writes it (cfg as a plain dict)."""
    model, cfg = our_model(name, seed, heads=not ctc)
    state = model.state_dict()
    if not ctc:
        torch.save(checkpoint_dict(pretraining_cfg(cfg, False, str(path.parent)), state), path)
        return path
    d = dictionary()
    g = torch.Generator().manual_seed(seed + 1)
    dim = cfg.encoder_embed_dim
    weights = {"w2v_encoder.w2v_model." + k: v for k, v in state.items()}
    weights["w2v_encoder.proj.weight"] = torch.randn(len(d), dim, generator=g) / math.sqrt(dim)
    weights["w2v_encoder.proj.bias"] = 0.2 * torch.randn(len(d), generator=g)
    torch.save(checkpoint_dict(finetuning_cfg(cfg, False, str(path.parent), "test"), weights, d), path)
    return path


def hf_config_kwargs(name: str) -> Tuple[str, Dict[str, Any]]:
    """(family, transformers config kwargs) of reduced preset ``name``."""
    family, o = REDUCED[name]
    layers = wfe_o_layers(o["wfe_channels"]) if o.get("wfe_type") == "O" else wfe_c_layers(o["wfe_channels"])
    kw = dict(hidden_size=o["encoder_embed_dim"], num_hidden_layers=o["encoder_layers"],
              num_attention_heads=o["encoder_attention_heads"], intermediate_size=o["encoder_ffn_embed_dim"],
              squeeze_factor=o.get("squeeze_factor", 2), num_conv_pos_embeddings=o.get("conv_pos", 31),
              num_conv_pos_embedding_groups=16, conv_dim=[c for c, _, _ in layers],
              conv_kernel=[k for _, k, _ in layers], conv_stride=[s for _, _, s in layers], conv_bias=False,
              feat_extract_norm="layer" if o.get("extractor_mode") == "layer_norm" else "group",
              feat_extract_activation="gelu", hidden_act="gelu", mask_time_prob=0.05)
    if family == "sew":
        kw["layer_norm_eps"] = 1e-5
    else:
        kw.update(layer_norm_eps=1e-7, feature_layer_norm_eps=1e-5, position_buckets=o.get("position_buckets", 256),
                  max_position_embeddings=o.get("max_position_embeddings", 512))
    return family, kw


def write_hf_dir(path: Path, name: str, ctc: bool, seed: int = 0) -> nn.Module:
    """save_pretrained of a random transformers SEW/SEW-D model (+ vocab.json for CTC); returns the model."""
    import transformers

    family, kw = hf_config_kwargs(name)
    if ctc:
        kw["vocab_size"] = 4 + len(LETTERS)
    cfg = (transformers.SEWConfig if family == "sew" else transformers.SEWDConfig)(**kw)
    cfg._attn_implementation = "eager"
    cls = {("sew", False): transformers.SEWModel, ("sew", True): transformers.SEWForCTC,
           ("sew_d", False): transformers.SEWDModel, ("sew_d", True): transformers.SEWDForCTC}[family, ctc]
    model = randomise_(cls(cfg), seed).eval()
    model.save_pretrained(path)
    if ctc:
        vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{s: i + 4 for i, s in enumerate(LETTERS)}}
        (path / "vocab.json").write_text(json.dumps(vocab))
    return model


def audio(seconds: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(round(seconds * 16000))
    t = torch.arange(n) / 16000.0
    return (0.3 * torch.sin(2 * math.pi * 220.0 * t) + 0.1 * torch.randn(n, generator=g)).float()


class _RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def write_malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A .pt whose unpickling would run ``touch marker`` (os.system); the safe loader must refuse it."""
    payload = {"model": {"w": torch.zeros(1)}, "cfg": {"model": {"_name": "sew"}}, "x": _RunsCode(f"touch {marker}")}
    torch.save(payload, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    return path
