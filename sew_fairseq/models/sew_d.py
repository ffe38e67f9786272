"""``sew_d``: SEW with a DeBERTa-v2 style disentangled-attention context network (SEW-D).

Registered also as ``squeeze_wav2vec2_deberta``, the original release's name.
"""

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
from fairseq.models import register_model

from ..modules.disentangled_attention import DisentangledEncoder
from ..modules.layer_pass import LayerPass
from ..modules.squeeze import SqueezedEncoder
from .sew import SEWConfig, SEWModel


@dataclass
class SEWDConfig(SEWConfig):
    position_buckets: int = field(default=256, metadata={"help": "relative position buckets k (table has 2k rows)"})
    max_position_embeddings: int = field(default=512, metadata={"help": "largest relative distance of the log buckets"})
    max_relative_positions: int = field(default=-1, metadata={"help": "overrides max_position_embeddings if > 0"})
    norm_rel_ebd: str = field(default="layer_norm", metadata={"help": "release option; only 'layer_norm'"})
    share_att_key: bool = field(default=True, metadata={"help": "release option; only true"})
    pos_att_type: str = field(default="p2c|c2p", metadata={"help": "release option; only 'p2c|c2p'"})
    relative_attention: bool = field(default=True, metadata={"help": "release option; only true"})
    position_biased_input: bool = field(default=False, metadata={"help": "release option; only false"})
    initializer_range: float = field(default=0.02, metadata={"help": "std of the normal init of linear layers"})
    layer_norm_eps: float = field(default=1e-7, metadata={"help": "epsilon of the encoder's LayerNorms"})


class SEWDEncoder(SqueezedEncoder):
    """Squeeze -> disentangled-attention layers (``encoder.encoder``) -> upsample: [B, T, D] -> [B, T, D].

    Its layer stack is :class:`DisentangledEncoder`'s, stepped through the same protocol (``modules/layer_pass.py``)."""

    def __init__(self, cfg: SEWDConfig):
        super().__init__(cfg.encoder_embed_dim, cfg.squeeze_factor, cfg.conv_pos, cfg.conv_pos_groups)
        max_rel = cfg.max_relative_positions if cfg.max_relative_positions > 0 else cfg.max_position_embeddings
        self.encoder = DisentangledEncoder(
            layers=cfg.encoder_layers, dim=cfg.encoder_embed_dim, ffn_dim=cfg.encoder_ffn_embed_dim,
            heads=cfg.encoder_attention_heads, attention_dropout=cfg.attention_dropout,
            hidden_dropout=cfg.activation_dropout, layerdrop=cfg.encoder_layerdrop,
            position_buckets=cfg.position_buckets, max_relative_positions=max_rel, eps=cfg.layer_norm_eps,
            initializer_range=cfg.initializer_range)

    @property
    def num_layers(self) -> int:
        return self.encoder.num_layers

    def enter_layers(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> LayerPass:
        """Squeezed x [B, S, D], padding_mask [B, S] -> the pass before layer 1 (``DisentangledEncoder``'s)."""
        return self.encoder.begin_layers(x, padding_mask)

    def run_layer(self, p: LayerPass) -> bool:
        return self.encoder.run_layer(p)

    def hidden_states(self, p: LayerPass) -> torch.Tensor:
        return self.encoder.hidden_states(p)

    def leave_layers(self, p: LayerPass) -> torch.Tensor:
        return self.encoder.end_layers(p)


def _check_sew_d(cfg: SEWDConfig) -> None:
    fixed = {"norm_rel_ebd": "layer_norm", "share_att_key": True, "pos_att_type": "p2c|c2p",
             "relative_attention": True, "position_biased_input": False, "squeeze_method": "default"}
    for name, supported in fixed.items():
        value = getattr(cfg, name)
        if value != supported:
            raise ValueError(f"model.{name}={value!r} is not supported by this plugin (only {supported!r})")
    if cfg.activation_fn != "gelu":
        raise ValueError(f"model.activation_fn={cfg.activation_fn!r}: SEW-D layers use gelu")


@register_model("squeeze_wav2vec2_deberta", dataclass=SEWDConfig)
@register_model("sew_d", dataclass=SEWDConfig)
class SEWDModel(SEWModel):
    """SEW-D pretraining model (fairseq ``Wav2Vec2Model`` interface)."""

    def build_encoder(self, cfg: SEWDConfig) -> nn.Module:
        _check_sew_d(cfg)
        return SEWDEncoder(cfg)

    def encoder_layers(self) -> nn.ModuleList:
        return self.encoder.encoder.layer
