"""``w2v2_mlp``: wav2vec 2.0 with SEW's MLP predictor heads, and the base class of ``sew`` / ``sew_d``.

The model reuses fairseq's :class:`Wav2Vec2Model` for masking, negative sampling, logits and extra losses; what
it replaces is the feature extractor (length-aware, see ``modules/feature_extractor.py``), the predictor heads
(``modules/mlp_head.py``) and, in subclasses, the context network (``build_encoder``).
Registered also as ``feat_mlp_wav2vec2``, the original release's name.

Shapes: B batch, L samples, T frames (L / 320), D ``encoder_embed_dim``, C extractor channels, M masked frames.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
from fairseq.dataclass import ChoiceEnum
from fairseq.models import register_model
from fairseq.models.wav2vec.wav2vec2 import TransformerEncoder, Wav2Vec2Config, Wav2Vec2Model
from fairseq.modules import GradMultiply, GumbelVectorQuantizer, LayerNorm

from ..modules.feature_extractor import (WaveFeatureExtractor, format_conv_layers, parse_conv_layers,
                                         wfe_c_layers, wfe_o_layers)
from ..modules.mlp_head import MLPHead

WFE_CHOICES = ChoiceEnum(["custom", "C", "O"])


@dataclass
class W2V2MLPConfig(Wav2Vec2Config):
    # feature extractor
    wfe_type: WFE_CHOICES = field(  # type: ignore[valid-type]
        default="custom",
        metadata={"help": "wave feature extractor: 'C' = SEW's compact WFE-C, 'O' = WFE-O (the wav2vec 2.0 "
                          "layout), each with wfe_channels base channels; 'custom' = conv_feature_layers as given"})
    wfe_channels: int = field(default=64, metadata={"help": "base channels c of WFE-C (64; base+: 96) or WFE-O"})
    # predictor heads (names as in the SEW release)
    use_mlp: bool = field(default=True, metadata={"help": "MLP heads for project_q and final_proj (else linear)"})
    mlp_version: str = field(default="v3", metadata={"help": "head layout; only the released 'v3' (1x1 convs)"})
    mlp_num_layers: int = field(default=2, metadata={"help": "layers in each MLP head"})
    mlp_hidden_size: int = field(default=4096, metadata={"help": "hidden channels of the MLP heads"})
    proj_mlp_norm_type: str = field(default="bn", metadata={"help": "MLP head norm; only the released 'bn'"})
    mlp_act_type: str = field(default="relu", metadata={"help": "MLP head activation; only the released 'relu'"})


def resolve_conv_layers(cfg: W2V2MLPConfig):
    """The extractor layers of ``cfg``; for WFE-C/O writes the expanded string back so checkpoints are explicit."""
    if cfg.wfe_type == "C":
        layers = wfe_c_layers(cfg.wfe_channels)
    elif cfg.wfe_type == "O":
        layers = wfe_o_layers(cfg.wfe_channels)
    else:
        return parse_conv_layers(cfg.conv_feature_layers)
    cfg.conv_feature_layers = format_conv_layers(layers)
    cfg.wfe_type = "custom"
    return layers


def _check_supported(cfg: W2V2MLPConfig) -> None:
    unsupported = {
        "mlp_version": (cfg.mlp_version, "v3"), "proj_mlp_norm_type": (cfg.proj_mlp_norm_type, "bn"),
        "mlp_act_type": (cfg.mlp_act_type, "relu"), "crop_seq_to_multiple": (cfg.crop_seq_to_multiple, 1),
        "quantize_input": (cfg.quantize_input, False),
    }
    for name, (value, supported) in unsupported.items():
        if value != supported:
            raise ValueError(f"model.{name}={value!r} is not supported by this plugin (only {supported!r})")


@register_model("feat_mlp_wav2vec2", dataclass=W2V2MLPConfig)
@register_model("w2v2_mlp", dataclass=W2V2MLPConfig)
class W2V2MLPModel(Wav2Vec2Model):
    """wav2vec 2.0 pretraining model with MLP predictor heads; subclasses swap the context network."""

    def __init__(self, cfg: W2V2MLPConfig):
        nn.Module.__init__(self)  # Wav2Vec2Model.__init__ would build modules we replace
        _check_supported(cfg)
        self.cfg = cfg
        self.feature_extractor = WaveFeatureExtractor(resolve_conv_layers(cfg), mode=cfg.extractor_mode,
                                                      conv_bias=cfg.conv_bias)
        self.embed = self.feature_extractor.output_dim
        self.post_extract_proj = nn.Linear(self.embed,
                                           cfg.encoder_embed_dim) if self.embed != cfg.encoder_embed_dim else None
        self.crop_seq_to_multiple = 1

        # masking, negatives, logits: attribute names read by the inherited Wav2Vec2Model methods
        for name in ("mask_prob", "mask_selection", "mask_other", "mask_length", "no_mask_overlap", "mask_min_space",
                     "mask_channel_prob", "mask_channel_before", "mask_channel_selection", "mask_channel_other",
                     "mask_channel_length", "no_mask_channel_overlap", "mask_channel_min_space",
                     "feature_grad_mult", "cross_sample_negatives", "codebook_negatives", "negatives_from_everywhere",
                     "logit_temp"):
            setattr(self, name, getattr(cfg, name))
        self.n_negatives = cfg.num_negatives
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        self.dropout_features = nn.Dropout(cfg.dropout_features)

        final_dim = cfg.final_dim if cfg.final_dim > 0 else cfg.encoder_embed_dim
        self.quantizer = None
        self.input_quantizer = None
        if cfg.quantize_targets:
            vq_dim = cfg.latent_dim if cfg.latent_dim > 0 else final_dim
            self.quantizer = GumbelVectorQuantizer(
                dim=self.embed, num_vars=cfg.latent_vars, temp=cfg.latent_temp, groups=cfg.latent_groups,
                combine_groups=False, vq_dim=vq_dim, time_first=True,
                weight_proj_depth=cfg.quantizer_depth, weight_proj_factor=cfg.quantizer_factor)
        else:
            vq_dim = self.embed
        self.project_q = self.build_head(vq_dim, final_dim)
        self.mask_emb = nn.Parameter(torch.empty(cfg.encoder_embed_dim).uniform_())
        self.encoder = self.build_encoder(cfg)
        self.layer_norm = LayerNorm(self.embed)
        self.target_glu = nn.Sequential(nn.Linear(final_dim, final_dim * 2), nn.GLU()) if cfg.target_glu else None
        self.final_proj = self.build_head(cfg.encoder_embed_dim, final_dim)

    def build_head(self, in_dim: int, out_dim: int) -> nn.Module:
        if self.cfg.use_mlp:
            return MLPHead(in_dim, out_dim, self.cfg.mlp_hidden_size, self.cfg.mlp_num_layers)
        return nn.Linear(in_dim, out_dim)

    def build_encoder(self, cfg: W2V2MLPConfig) -> nn.Module:
        """Context network: fairseq's wav2vec 2.0 transformer (conv_pos-kernel positional conv, no squeeze)."""
        return TransformerEncoder(cfg)

    @classmethod
    def build_model(cls, cfg: W2V2MLPConfig, task=None):
        return cls(cfg)

    def _get_feat_extract_output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        return self.feature_extractor.output_lengths(input_lengths)

    def forward(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, mask: bool = True,
                features_only: bool = False, layer: Optional[int] = None, mask_indices=None,
                mask_channel_indices=None, padding_count=None, **unused) -> Dict[str, Any]:
        """source: [B, L] samples, padding_mask: [B, L] True at padding.

        Returns fairseq's wav2vec 2.0 outputs: with ``features_only`` ``{"x": [B, T, D], "padding_mask": [B, T] or
        None, "features": [B, T, C], "layer_results": [...]}``; otherwise the contrastive logits ``x``
        [1 + negatives, B, M] with ``features_pen`` and the quantizer's perplexities.
        """
        lengths = None
        if padding_mask is not None and padding_mask.any():
            lengths = (~padding_mask).long().sum(-1)  # [B] samples
        if self.feature_grad_mult > 0:
            features = self.feature_extractor(source, lengths)  # [B, C, T]
            if self.feature_grad_mult != 1.0:
                features = GradMultiply.apply(features, self.feature_grad_mult)
        else:
            with torch.no_grad():
                features = self.feature_extractor(source, lengths)

        features_pen = features.float().pow(2).mean()
        features = self.layer_norm(features.transpose(1, 2))  # [B, T, C]
        unmasked_features = features.clone()

        frame_mask = None
        if lengths is not None:
            frame_lengths = self.feature_extractor.output_lengths(lengths)  # [B] frames
            frame_mask = torch.arange(features.size(1), device=features.device)[None, :] >= frame_lengths[:, None]

        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)  # [B, T, D]
        features = self.dropout_input(features)
        unmasked_features = self.dropout_features(unmasked_features)

        if mask:
            x, mask_indices = self.apply_mask(features, frame_mask, mask_indices=mask_indices,
                                              mask_channel_indices=mask_channel_indices)
            if mask_indices is not None:
                y = unmasked_features[mask_indices].view(unmasked_features.size(0), -1, unmasked_features.size(-1))
            else:
                y = unmasked_features
        else:
            x, y, mask_indices = features, unmasked_features, None

        x, layer_results = self.encoder(x, padding_mask=frame_mask, layer=layer)  # [B, T, D]

        if features_only:
            return {"x": x, "padding_mask": frame_mask, "features": unmasked_features, "layer_results": layer_results}

        result: Dict[str, Any] = {"padding_mask": frame_mask, "features_pen": features_pen}
        if self.quantizer is not None:
            q = self.quantizer(y, produce_targets=False)
            y = q["x"]
            result.update(num_vars=q["num_vars"], code_perplexity=q["code_perplexity"],
                          prob_perplexity=q["prob_perplexity"], temp=q["temp"])
        y = self.project_q(y)  # [B, M, F]
        negs, _ = self.sample_negatives(y, y.size(1), padding_count=padding_count)  # [N, B, M, F]
        if self.codebook_negatives > 0 and self.quantizer is not None:
            cb_negs = self.quantizer.sample_from_codebook(y.size(0) * y.size(1), self.codebook_negatives)
            cb_negs = self.project_q(cb_negs.view(self.codebook_negatives, y.size(0), y.size(1), -1))
            negs = torch.cat([negs, cb_negs], dim=0)

        x = x[mask_indices].view(x.size(0), -1, x.size(-1))  # [B, M, D]
        if self.target_glu is not None:
            y, negs = self.target_glu(y), self.target_glu(negs)
        x = self.final_proj(x)
        result["x"] = self.compute_preds(x, y, negs)  # [1 + N, B, M]
        return result

    def extract_features(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor], mask: bool = False,
                         layer: Optional[int] = None, **unused) -> Dict[str, Any]:
        """Context features without pretraining heads: ``{"x": [B, T, D], "padding_mask", "layer_results"}``."""
        return self.forward(source, padding_mask, mask=mask, features_only=True, layer=layer)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        if self.quantizer is None:
            raise ValueError("this model has no quantizer (quantize_targets=false or pretraining heads removed)")
        return self.quantizer.forward_idx(self.layer_norm(self.feature_extractor(x).transpose(1, 2)))

    def encoder_layers(self) -> nn.ModuleList:
        """The context network's layer list (for truncation and early exit)."""
        return self.encoder.layers

    def remove_pretraining_modules(self, last_layer: Optional[int] = None) -> None:
        """Drop quantizer and heads (fine-tuning/inference); keep layers ``0..last_layer`` when given."""
        self.quantizer = None
        self.project_q = None
        self.target_glu = None
        self.final_proj = None
        if last_layer is not None:
            layers = self.encoder_layers()
            del layers[last_layer + 1:]
