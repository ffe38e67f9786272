"""Shared by the tests/test_convert_*.py files: reduced presets, random-weight models on both sides, audio.

Every weight is randomised (norm scales, biases and the relative table included), so a misplaced norm or a
wrong name cannot pass a parity check.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
import torch.nn as nn

from sew_fairseq.checkpoints.plugin import checkpoint_dict, finetuning_cfg, pretraining_cfg
from sew_fairseq.modules.feature_extractor import wfe_c_layers, wfe_o_layers
from sew_fairseq.models.presets import build_preset

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
    from sew_fairseq.models.presets import preset_config

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


def save_hf_dir(model: nn.Module, path: Path, ctc: bool) -> nn.Module:
    """``save_pretrained`` of ``model`` into ``path`` (+ ``vocab.json`` of LETTERS for a CTC model); returns it."""
    model.save_pretrained(path)
    if ctc:
        vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{s: i + 4 for i, s in enumerate(LETTERS)}}
        (path / "vocab.json").write_text(json.dumps(vocab))
    return model


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
    return save_hf_dir(randomise_(cls(cfg), seed).eval(), path, ctc)


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
    torch.save(payload, path)  # torch's default pickle protocol (2), as every .pt
    return path


# ---------------------------------------------------------------- the original release's checkpoint layout

#: the model config fields of the release's SqueezeWav2Vec2(Deberta)Config (sew_asapp/models/*.py): fairseq
#: wav2vec 2.0 fields, squeeze, MLP heads, DeBERTa's, and release-only ones (spectrogram front ends, ...)
RELEASE_FIELDS = [
    "extractor_mode", "encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
    "activation_fn", "dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop", "dropout_input",
    "dropout_features", "final_dim", "layer_norm_first", "conv_feature_layers", "conv_bias", "logit_temp",
    "quantize_targets", "quantize_input", "same_quantizer", "target_glu", "feature_grad_mult", "latent_vars",
    "latent_groups", "latent_dim", "mask_length", "mask_prob", "mask_selection", "mask_other", "no_mask_overlap",
    "mask_min_space", "mask_channel_length", "mask_channel_prob", "mask_channel_selection", "mask_channel_other",
    "no_mask_channel_overlap", "mask_channel_min_space", "num_negatives", "negatives_from_everywhere",
    "cross_sample_negatives", "codebook_negatives", "conv_pos", "conv_pos_groups", "latent_temp", "use_mlp",
    "mlp_version", "mlp_num_layers", "mlp_hidden_size", "mlp_act_type", "proj_mlp_norm_type", "squeeze_factor",
    "squeeze_method",
]
RELEASE_DEBERTA_FIELDS = ["norm_rel_ebd", "max_position_embeddings", "max_relative_positions", "position_biased_input",
                          "pos_att_type", "position_buckets", "initializer_range", "relative_attention",
                          "share_att_key"]
RELEASE_ONLY = dict(share_final_proj=False, final_proj_momentum=-1.0, spec_feature_only=False, fbank_dim=0, mfcc_dim=0,
                    conv_hidden_sizes="[32, 32]", conv_kernel_sizes="[3, 3]", conv_strides="[2, 2]",
                    conv_exp_ratios="[1., 4.]", conv_use_pad=False, encoder_input_embed_dim=-1, conv_flatten_dim=-1,
                    subsample_type="conv2dv4", conv_norm_type="none", conv_act_type="relu", conv_kaiming_init=False,
                    feature_extractor_type="default", chunk_mode="chunk")


def release_conv_layers(c: int) -> str:
    """WFE-C as the release's pt-sew*.sh spells it (wfe_l = 1)."""
    parts = [f"[({c}, 10, 5), ({2 * c}, 3, 2)] + [({2 * c}, 1, 1)] * 1"]
    for mult, kernel in ((2, 3), (4, 3), (4, 3), (8, 2), (8, 2)):
        parts.append(f"[({mult * c}, {kernel}, 2)] + [({mult * c}, 1, 1)] * 1")
    return " + ".join(parts)


def release_model_cfg(name: str) -> Dict[str, Any]:
    """``cfg.model`` of a release pretraining run for reduced preset ``name`` (field names of the release)."""
    from omegaconf import OmegaConf

    from sew_fairseq.models.w2v2_mlp import resolve_conv_layers

    family, over = REDUCED[name]
    _, cfg = our_model(name)
    resolve_conv_layers(cfg)
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    fields = RELEASE_FIELDS + (RELEASE_DEBERTA_FIELDS if family == "sew_d" else [])
    out = {k: plain[k] for k in fields}
    out["_name"] = "squeeze_wav2vec2" if family == "sew" else "squeeze_wav2vec2_deberta"
    if over.get("wfe_type") != "O":
        out["conv_feature_layers"] = release_conv_layers(over["wfe_channels"])
    out.update(RELEASE_ONLY)
    if family == "sew_d":
        out["cross_layer_param_share"] = False
    return out


def write_release_pretrained(path: Path, name: str, seed: int = 0, dictconfig: bool = False) -> nn.Module:
    """A release pretraining checkpoint (random weights); returns our model holding the same weights."""
    from omegaconf import OmegaConf

    model, _ = our_model(name, seed)
    cfg = {"common": {"fp16": True, "log_interval": 200, "user_dir": "/home/sew/sew_asapp"},
           "model": release_model_cfg(name),
           "task": {"_name": "audio_pretraining_features", "data": "/home/sew/manifest/librispeech/train-960",
                    "normalize": False, "sample_rate": 16000, "max_sample_size": 250000, "min_sample_size": 32000,
                    "fbank_dim": 0, "mfcc_dim": 0, "load_with_librosa": False, "audio_feat_frame_length": 25.0,
                    "audio_feat_frame_shift": 10.0, "labels": None, "enable_padding": False},
           "criterion": {"_name": "wav2vec", "infonce": True, "log_keys": ["prob_perplexity", "code_perplexity",
                                                                           "temp"],
                         "loss_weights": [0.1, 10]},
           "optimization": {"max_update": 100000, "lr": [0.0005]}}
    state = {"args": None, "cfg": OmegaConf.create(cfg) if dictconfig else cfg, "model": model.state_dict(),
             "criterion": None, "optimizer_history": [{"criterion_name": "Wav2vecCriterion",
                                                       "optimizer_name": "FairseqAdam",
                                                       "lr_scheduler_state": {"best": 3.1}, "num_updates": 100000}],
             "task_state": {}, "extra_state": {"epoch": 90}, "last_optimizer_state": None}
    torch.save(state, path)
    return model


def write_release_finetuned(path: Path, name: str, seed: int = 0, with_dictionary: bool = True) -> Tuple[nn.Module,
                                                                                                         Any]:
    """A release 100h fine-tuned checkpoint (``wav2vec_ctc_v2``, w2v_args empty as released); returns (our
    encoder without heads, projection weights)."""
    model, cfg = our_model(name, seed, heads=False)
    d = dictionary()
    g = torch.Generator().manual_seed(seed + 7)
    dim = cfg.encoder_embed_dim
    proj = {"weight": torch.randn(len(d), dim, generator=g) / math.sqrt(dim), "bias": 0.2 * torch.randn(len(d),
                                                                                                        generator=g)}
    weights = {"w2v_encoder.w2v_model." + k: v for k, v in model.state_dict().items()}
    weights.update({"w2v_encoder.proj." + k: v for k, v in proj.items()})
    model_cfg = {"_name": "wav2vec_ctc_v2", "w2v_path": "/home/sew/save-pre/sew-d-tiny-100k.pt", "w2v_args": None,
                 "no_pretrained_weights": False, "dropout_input": 0.0, "final_dropout": 0.0, "dropout": 0.0,
                 "activation_dropout": 0.1, "attention_dropout": 0.0, "apply_mask": True, "mask_length": 10,
                 "mask_prob": 0.65, "mask_selection": "static", "mask_other": 0.0, "no_mask_overlap": False,
                 "mask_channel_length": 64, "mask_channel_prob": 0.5, "mask_channel_selection": "static",
                 "mask_channel_other": 0.0, "no_mask_channel_overlap": False, "freeze_finetune_updates": 0,
                 "feature_grad_mult": 0.0, "layerdrop": 0.1, "normalize": False,
                 "data": "/home/sew/manifest/librispeech",
                 "output_upsample": 0, "chunk_mode": "flat", "drop_upsample_layers": 0}
    cfg_all = {"model": model_cfg,
               "task": {"_name": "audio_pretraining", "data": "/home/sew/manifest/librispeech", "normalize": False,
                        "labels": "ltr", "sample_rate": 16000},
               "criterion": {"_name": "ctc", "zero_infinity": True}}
    state = {"args": None, "cfg": cfg_all, "model": weights, "criterion": None, "extra_state": {"epoch": 40},
             "optimizer_history": [{"criterion_name": "CtcCriterion", "optimizer_name": "FairseqAdam",
                                    "lr_scheduler_state": {"best": 9.1}, "num_updates": 80000}],
             "task_state": {"target_dictionary": d} if with_dictionary else {}, "last_optimizer_state": None}
    torch.save(state, path)
    return model, proj


# ---------------------------------------------------------------- transformers' wav2vec 2.0 and HuBERT

#: transformers' two styles: base (facebook/wav2vec2-base, hubert-base-ls960) and large (wav2vec2-large-lv60,
#: hubert-large-ll60k): layer-norm extractor with conv bias, pre-LN layers and a final LayerNorm. The positional
#: kernels differ (even and odd) so that both SamePad cases are exercised.
W2V2_STYLES: Dict[str, Dict[str, Any]] = {
    "base": dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False, num_conv_pos_embeddings=16),
    "large": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, num_conv_pos_embeddings=17),
}
W2V2_FAMILIES = ("wav2vec2", "hubert")
W2V2_CTC_CLASSES = {"wav2vec2": "Wav2Vec2ForCTC", "hubert": "HubertForCTC"}
W2V2_BASE_CLASSES = {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel"}


def hf_w2v2_config(family: str, style: str, ctc: bool, **overrides):
    """A small transformers ``Wav2Vec2Config`` / ``HubertConfig`` (hidden 64, 2 layers, the wav2vec 2.0 extractor's
    kernels and strides at 32 channels) in ``style`` ("base" / "large")."""
    import transformers

    kw: Dict[str, Any] = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                              conv_dim=[32] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
                              num_conv_pos_embedding_groups=4, hidden_act="gelu", mask_time_prob=0.05,
                              **W2V2_STYLES[style])
    if family == "wav2vec2":  # small quantizer sizes: the converted pretraining heads are fresh anyway
        kw.update(num_codevectors_per_group=8, codevector_dim=32, proj_codevector_dim=32)
    if ctc:
        kw["vocab_size"] = 4 + len(LETTERS)
    kw.update(overrides)
    cfg = (transformers.Wav2Vec2Config if family == "wav2vec2" else transformers.HubertConfig)(**kw)
    cfg._attn_implementation = "eager"
    return cfg


def write_hf_w2v2_dir(path: Path, family: str, style: str, ctc: bool, seed: int = 0, **overrides) -> nn.Module:
    """save_pretrained of a random transformers wav2vec 2.0 / HuBERT model (+ vocab.json for CTC); returns it."""
    import transformers

    cfg = hf_w2v2_config(family, style, ctc, **overrides)
    cls = getattr(transformers, (W2V2_CTC_CLASSES if ctc else W2V2_BASE_CLASSES)[family])
    return save_hf_dir(randomise_(cls(cfg), seed).eval(), path, ctc)


def hf_ctc_and_checkpoint(tmp_path: Path, family: str, style: str, seed: int = 0, **overrides) -> Tuple[nn.Module,
                                                                                                        Path]:
    """(transformers ``Wav2Vec2ForCTC`` / ``HubertForCTC`` with random weights, eval mode; the plugin checkpoint
    ``sew-convert from-hf`` made of it). For parity checks at any level (model, ``sew-infer``, transcription)."""
    from sew_fairseq.checkpoints.hf import from_hf

    hf = write_hf_w2v2_dir(tmp_path / f"hf-{family}-{style}", family, style, ctc=True, seed=seed, **overrides)
    out = tmp_path / f"{family}-{style}.pt"
    from_hf(str(tmp_path / f"hf-{family}-{style}"), str(out))
    return hf, out


def ctc_log_probs(model: nn.Module, source: torch.Tensor) -> torch.Tensor:
    """[B, T, V] CTC log-probabilities of a loaded fine-tuned model, as the torch engine computes them."""
    with torch.no_grad():
        out = model(source=source, padding_mask=None)
        return model.get_normalized_probs(out, log_probs=True).transpose(0, 1)
