"""``sew``: Squeezed and Efficient Wav2vec (Wu et al. 2021): WFE-C + squeezed post-LN transformer + MLP heads.

Registered also as ``squeeze_wav2vec2``, the original release's name, so its checkpoints resolve here.
"""

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import register_model
from fairseq.models.wav2vec.wav2vec2 import TransformerSentenceEncoderLayer
from fairseq.modules import LayerNorm
from fairseq.modules.transformer_sentence_encoder import init_bert_params

from ..modules.feature_extractor import format_conv_layers, wfe_c_layers
from ..modules.layer_pass import LayerPass
from ..modules.squeeze import SqueezedEncoder
from .w2v2_mlp import W2V2MLPConfig, W2V2MLPModel


@dataclass
class SEWConfig(W2V2MLPConfig):
    squeeze_factor: int = field(default=2, metadata={"help": "squeeze the context network's sequence by this "
                                                              "factor (strided positional conv + average pooling) "
                                                              "and upsample back after it"})
    squeeze_method: str = field(default="default", metadata={"help": "release option; only 'default'"})
    # SEW defaults that differ from wav2vec 2.0 base
    conv_pos: int = field(default=31, metadata={"help": "kernel of the strided positional conv"})
    conv_feature_layers: str = field(default=format_conv_layers(wfe_c_layers(64)),
                                     metadata={"help": "[(dim, kernel, stride), ...]; default WFE-C c=64"})


class SEWEncoder(SqueezedEncoder):
    """Squeeze -> LayerNorm + dropout -> post-LN fairseq transformer layers -> upsample: [B, T, D] -> [B, T, D].

    Names as the release: ``pos_conv``, ``layer_norm``, ``layers.{n}.{self_attn,fc1,...}``, ``upsample``.
    """

    def __init__(self, cfg: SEWConfig):
        super().__init__(cfg.encoder_embed_dim, cfg.squeeze_factor, cfg.conv_pos, cfg.conv_pos_groups)
        self.dropout = cfg.dropout
        self.layerdrop = cfg.encoder_layerdrop
        self.layer_norm_first = cfg.layer_norm_first
        self.layers = nn.ModuleList([
            TransformerSentenceEncoderLayer(
                embedding_dim=cfg.encoder_embed_dim, ffn_embedding_dim=cfg.encoder_ffn_embed_dim,
                num_attention_heads=cfg.encoder_attention_heads, dropout=cfg.dropout,
                attention_dropout=cfg.attention_dropout, activation_dropout=cfg.activation_dropout,
                activation_fn=cfg.activation_fn, layer_norm_first=cfg.layer_norm_first)
            for _ in range(cfg.encoder_layers)])
        self.layer_norm = LayerNorm(cfg.encoder_embed_dim)
        self.layers.apply(init_bert_params)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    # the layer stack of the layer-stepping protocol (modules/layer_pass.py), which SqueezedEncoder runs at the
    # frame rate: its forward and early exit both go through these
    def enter_layers(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> LayerPass:
        """Squeezed x [B, S, D], padding_mask [B, S] -> the pass before layer 1: LayerNorm (post-LN layers) and
        dropout; ``p.x`` [S, B, D], ``p.attn_mask`` None when nothing is padded."""
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, p=self.dropout, training=self.training)
        attn_mask = padding_mask if padding_mask is not None and padding_mask.any() else None
        return LayerPass(x.transpose(0, 1), attn_mask, padding_mask, x.size(1), len(self.layers))  # x: [S, B, D]

    def run_layer(self, p: LayerPass) -> bool:
        """Layer ``p.index`` on p.x [S, B, D]; in training layerdrop skips it with probability ``layerdrop``
        (one draw of numpy's global generator per layer, made in training only)."""
        if self.training and np.random.random() <= self.layerdrop:
            return p.advance(False)
        p.x = self.layers[p.index](p.x, self_attn_padding_mask=p.attn_mask, need_weights=False)[0]
        return p.advance(True)

    def hidden_states(self, p: LayerPass) -> torch.Tensor:
        """[B, S, D] after the layers run so far."""
        return p.x.transpose(0, 1)

    def leave_layers(self, p: LayerPass) -> torch.Tensor:
        """[B, S, D] after the last layer run, with the final LayerNorm of pre-LN layers."""
        x = p.x.transpose(0, 1)
        return self.layer_norm(x) if self.layer_norm_first else x


@register_model("squeeze_wav2vec2", dataclass=SEWConfig)
@register_model("sew", dataclass=SEWConfig)
class SEWModel(W2V2MLPModel):
    """SEW pretraining model (fairseq ``Wav2Vec2Model`` interface)."""

    def build_encoder(self, cfg: SEWConfig) -> nn.Module:
        if cfg.squeeze_method != "default":
            raise ValueError(f"model.squeeze_method={cfg.squeeze_method!r} is not supported (only 'default')")
        return SEWEncoder(cfg)
