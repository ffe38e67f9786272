"""Wave feature extractor (WFE): the strided 1-D conv stack that turns samples into frames.

SEW's compact variant WFE-C (Wu et al. 2021, section 4.1) spends its channels late: with c = 64,
channels (c, 2c, 2c, 2c, 2c, 4c, 4c, 4c, 4c, 8c, 8c, 8c, 8c), kernels (10, 3, 1, 3, 1, 3, 1, 3, 1, 2, 1, 2, 1),
strides (5, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1): total stride 320 samples (20 ms at 16 kHz), receptive
field 400 samples, the same frame grid as wav2vec 2.0's extractor. WFE-O is the original one with c channels.

Parameter names follow fairseq's ``ConvFeatureExtractionModel`` (``conv_layers.{i}.0.weight``,
``conv_layers.0.2.{weight,bias}``) so original checkpoints load strictly. Unlike fairseq's, this module
takes the utterance lengths: the first block's GroupNorm normalises each channel over *time*, so on a
padded batch fairseq's statistics include the padding; here they are taken over each utterance's own
frames, which makes a padded batch give exactly the features of each utterance computed alone.
"""
from __future__ import annotations

import ast
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.modules import Fp32LayerNorm, TransposeLast

ConvSpec = Tuple[int, int, int]  # (channels, kernel, stride)


def wfe_c_layers(c: int = 64) -> List[ConvSpec]:
    """WFE-C with base width ``c`` (SEW uses 64, SEW-D base+ 96): 13 blocks, stride 320."""
    layers: List[ConvSpec] = [(c, 10, 5)]
    for mult, kernel in ((2, 3), (2, 3), (4, 3), (4, 3), (8, 2), (8, 2)):
        layers += [(mult * c, kernel, 2), (mult * c, 1, 1)]
    return layers


def wfe_o_layers(c: int = 512) -> List[ConvSpec]:
    """WFE-O as in the SEW release scripts: [(c, 11, 5)] + [(c, 3, 2)] * 4 + [(c, 2, 2)] * 2."""
    return [(c, 11, 5)] + [(c, 3, 2)] * 4 + [(c, 2, 2)] * 2


def format_conv_layers(layers: Sequence[ConvSpec]) -> str:
    """The fairseq ``conv_feature_layers`` string of ``layers``."""
    return "[" + ", ".join(f"({c}, {k}, {s})" for c, k, s in layers) + "]"


_MAX_LAYERS = 256


def _eval_node(node: ast.AST):
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_eval_node(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        left, right = _eval_node(node.left), _eval_node(node.right)
        if isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, int):
            return left * right
        if isinstance(node.op, ast.Mult):  # list repetition: bound it, a conv stack has tens of layers
            items, times = (left, right) if isinstance(right, int) else (right, left)
            if not isinstance(items, list) or not isinstance(times, int) or not 0 <= times * len(items) <= _MAX_LAYERS:
                raise ValueError(f"repetition must be a list times an int giving at most {_MAX_LAYERS} layers")
            return items * times
        if type(left) is not type(right):
            raise ValueError("'+' needs two lists or two ints")
        return left + right
    raise ValueError(f"unsupported syntax {ast.dump(node)[:60]}")


def parse_conv_layers(spec: str) -> List[ConvSpec]:
    """Parse fairseq's ``conv_feature_layers`` string without ``eval``.

    Accepts the list/tuple/``+``/``*`` expressions fairseq configs use, e.g.
    ``"[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2"``.
    """
    try:
        value = _eval_node(ast.parse(spec.strip(), mode="eval"))
    except (SyntaxError, ValueError, TypeError) as e:
        raise ValueError(f"conv_feature_layers={spec!r} is not a list of (dim, kernel, stride): {e}") from None
    if not isinstance(value, list) or not value or len(value) > _MAX_LAYERS or not all(
        isinstance(t, tuple) and len(t) == 3 and all(isinstance(v, int) and v > 0 for v in t) for t in value
    ):
        raise ValueError(f"conv_feature_layers={spec!r} must be a non-empty list of (dim, kernel, stride) int tuples")
    return value


def conv_output_lengths(lengths: torch.Tensor, layers: Sequence[ConvSpec]) -> torch.Tensor:
    """Frames each conv layer stack yields for ``lengths`` samples (no padding): floor((L - k) / s) + 1."""
    for _, kernel, stride in layers:
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    return lengths.clamp(min=0)


class Fp32GroupNorm(nn.GroupNorm):
    """GroupNorm computed in fp32 (fairseq's ``Fp32GroupNorm``), optionally over valid frames only."""

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        # x: [B, C, T]
        if lengths is None or self.num_groups != self.num_channels:
            y = F.group_norm(x.float(), self.num_groups, self.weight.float() if self.weight is not None else None,
                             self.bias.float() if self.bias is not None else None, self.eps)
            return y.type_as(x)
        # per-channel statistics over each utterance's own frames ([B, C, 1])
        xf = x.float()
        mask = (torch.arange(x.size(-1), device=x.device)[None, :] < lengths[:, None]).unsqueeze(1)
        count = lengths.clamp(min=1).to(xf.dtype).view(-1, 1, 1)
        mean = (xf * mask).sum(-1, keepdim=True) / count
        var = (((xf - mean) * mask) ** 2).sum(-1, keepdim=True) / count
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight.float().view(1, -1, 1) + self.bias.float().view(1, -1, 1)
        return y.type_as(x)


class WaveFeatureExtractor(nn.Module):
    """Conv stack over raw samples: [B, S] samples -> [B, C, T] frames.

    Args:
        conv_layers: (channels, kernel, stride) per block (``wfe_c_layers()``, ``wfe_o_layers()`` or parsed
            from fairseq's ``conv_feature_layers``).
        mode: ``"default"`` = GroupNorm(C, C) in the first block only (fairseq ``extractor_mode=default``);
            ``"layer_norm"`` = LayerNorm over channels in every block.
        conv_bias: conv layers with bias (fairseq ``conv_bias``).
    """

    def __init__(self, conv_layers: Sequence[ConvSpec], mode: str = "default", conv_bias: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        if mode not in ("default", "layer_norm"):
            raise ValueError(f"extractor_mode={mode!r}: expected 'default' or 'layer_norm'")
        self.specs = list(conv_layers)
        self.mode = mode
        blocks = []
        in_dim = 1
        for i, (dim, kernel, stride) in enumerate(self.specs):
            conv = nn.Conv1d(in_dim, dim, kernel, stride=stride, bias=conv_bias)
            nn.init.kaiming_normal_(conv.weight)
            if mode == "layer_norm":
                # fairseq's child layout: Sequential(TransposeLast, Fp32LayerNorm, TransposeLast)
                norm: Optional[nn.Module] = nn.Sequential(TransposeLast(), Fp32LayerNorm(dim, elementwise_affine=True),
                                                          TransposeLast())
            elif i == 0:
                norm = Fp32GroupNorm(dim, dim, affine=True)
            else:
                norm = None
            # same child order as fairseq: conv, dropout, [norm], GELU
            parts = [conv, nn.Dropout(dropout)] + ([norm] if norm is not None else []) + [nn.GELU()]
            blocks.append(nn.Sequential(*parts))
            in_dim = dim
        self.conv_layers = nn.ModuleList(blocks)

    @property
    def output_dim(self) -> int:
        return self.specs[-1][0]

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(lengths, self.specs)

    def forward(self, source: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """source: [B, S] samples; lengths: [B] valid samples per row (None = no padding) -> [B, C, T]."""
        if source.dim() != 2:
            raise ValueError(f"expected a 2-D (batch, samples) tensor, found shape {list(source.shape)}")
        x = source.unsqueeze(1)  # [B, 1, S]
        for i, block in enumerate(self.conv_layers):
            x = block[0](x)  # conv
            x = block[1](x)  # dropout
            if i == 0 and isinstance(block[2], Fp32GroupNorm):
                frames = None if lengths is None else conv_output_lengths(lengths, self.specs[:1])
                x = block[2](x, frames)
            elif self.mode == "layer_norm":
                x = block[2](x)
            x = block[-1](x)  # GELU
        return x

