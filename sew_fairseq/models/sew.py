"""``sew``: Squeezed and Efficient Wav2vec (Wu et al. 2021): WFE-C + squeezed post-LN transformer + MLP heads.

Registered also as ``squeeze_wav2vec2``, the original release's name, so its checkpoints resolve here.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import register_model
from fairseq.models.wav2vec.wav2vec2 import TransformerSentenceEncoderLayer
from fairseq.modules import LayerNorm
from fairseq.modules.transformer_sentence_encoder import init_bert_params

from ..modules.feature_extractor import format_conv_layers, wfe_c_layers
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
    """Squeeze -> LayerNorm + dropout -> post-LN fairseq transformer layers -> upsample.

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

    def forward_layers(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor], layer: Optional[int]
                       ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """x: [B, S, D] squeezed frames -> ([B, S, D], outputs of the layers run)."""
        x, padding_mask = self.enter_layers(x, padding_mask)
        results: List[torch.Tensor] = []
        for i in range(len(self.layers)):
            y = self.run_layer(i, x, padding_mask)
            if y is not None:
                x = y
                results.append(x.transpose(0, 1))
            if layer is not None and i == layer:
                break
        return self.leave_layers(x), results

    # the three phases of forward_layers, also run one layer at a time by early exit (models/encoder_steps.py)
    def enter_layers(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]
                     ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """[B, S, D] -> ([S, B, D] input of the first layer, key padding mask [B, S] or None without padding)."""
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, p=self.dropout, training=self.training)
        if padding_mask is not None and not padding_mask.any():
            padding_mask = None
        return x.transpose(0, 1), padding_mask

    def run_layer(self, i: int, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Layer ``i`` on x [S, B, D] -> [S, B, D], or None when layerdrop skips it (training only)."""
        if self.training and np.random.random() <= self.layerdrop:
            return None
        return self.layers[i](x, self_attn_padding_mask=padding_mask, need_weights=False)[0]

    def leave_layers(self, x: torch.Tensor) -> torch.Tensor:
        """[S, B, D] after the last layer run -> [B, S, D] (with the final LayerNorm of pre-LN layers)."""
        x = x.transpose(0, 1)
        return self.layer_norm(x) if self.layer_norm_first else x


@register_model("squeeze_wav2vec2", dataclass=SEWConfig)
@register_model("sew", dataclass=SEWConfig)
class SEWModel(W2V2MLPModel):
    """SEW pretraining model (fairseq ``Wav2Vec2Model`` interface)."""

    def build_encoder(self, cfg: SEWConfig) -> nn.Module:
        if cfg.squeeze_method != "default":
            raise ValueError(f"model.squeeze_method={cfg.squeeze_method!r} is not supported (only 'default')")
        return SEWEncoder(cfg)
