"""Squeeze and upsample (SEW, section 4.2): run the context network at half the frame rate.

    frames [B, T, D] --zero padding--> pool(x) + GELU(WN-Conv(x, stride s)) --crop--> [B, S = T // s, D]
        --> transformer layers (SEW or SEW-D) --> GELU(Linear(D, s*D)) --reshape--> [B, s*S, D] --pad--> [B, T, D]

The strided positional conv is the model's only positional embedding. Parameter names follow the SEW
release (``encoder.pos_conv.0.{weight_g,weight_v,bias}``, ``encoder.upsample.0.{weight,bias}``): encoders
built on :class:`SqueezedEncoder` keep ``pos_conv``, ``pool`` and ``upsample`` as direct children.
``SqueezedEncoder`` runs its subclass's layers through the layer-stepping protocol (``modules/layer_pass.py``).
"""
from __future__ import annotations

import math
import warnings
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.modules import SamePad

from .layer_pass import LayerPass, run_layers


def lengths_to_padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B] lengths -> [B, max_len] bool mask, True at padding."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


class StridedPositionalConv(nn.Sequential):
    """GELU(SamePad(weight-normed grouped Conv1d(D, D, K, stride=s))) on [B, D, T] -> [B, D, ceil(T / s)].

    Initialised as fairseq's positional conv: weight ~ N(0, sqrt(4 / (K * D))), bias 0, weight norm over dim 2.
    """

    def __init__(self, dim: int, kernel: int, groups: int, stride: int):
        conv = nn.Conv1d(dim, dim, kernel_size=kernel, padding=kernel // 2, groups=groups, stride=stride)
        nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (kernel * dim)))
        nn.init.constant_(conv.bias, 0.0)
        # the legacy weight_norm keeps the release's parameter names weight_g / weight_v (the
        # parametrizations version would rename them), so silence its deprecation warning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            conv = nn.utils.weight_norm(conv, name="weight", dim=2)
        super().__init__(conv, SamePad(kernel), nn.GELU())


class Upsample(nn.Sequential):
    """GELU(Linear(D, s*D)) then reshape [B, S, s*D] -> [B, s*S, D]: frame s*t+i is channel block i of step t."""

    def __init__(self, dim: int, factor: int):
        linear = nn.Linear(dim, dim * factor)
        nn.init.kaiming_normal_(linear.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(linear.bias)
        super().__init__(linear, nn.GELU())
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        x = super().forward(x)  # [B, S, s*D]
        return x.reshape(b, s * self.factor, d)  # [B, s*S, D]


class SqueezedEncoder(nn.Module):
    """Base of the SEW and SEW-D context networks: squeeze -> layer stack -> upsample.

    It implements the layer-stepping protocol (:mod:`~sew_fairseq.modules.layer_pass`) at the frame rate
    around the subclass's stack, and its forward is that protocol run through. Subclasses implement, on the
    squeezed sequence: ``num_layers``, ``enter_layers(x [B, S, D], padding_mask [B, S] or None) -> LayerPass``
    (the transforms before the first layer), ``run_layer(p) -> bool``, ``hidden_states(p) -> [B, S, D]`` and
    ``leave_layers(p) -> [B, S, D]`` (the transforms after the last layer run).
    """

    num_layers: int

    def __init__(self, dim: int, squeeze_factor: int, conv_pos: int, conv_pos_groups: int):
        super().__init__()
        if squeeze_factor < 1:
            raise ValueError(f"squeeze_factor={squeeze_factor} must be >= 1")
        self.embedding_dim = dim
        self.squeeze_factor = squeeze_factor
        self.pos_conv = StridedPositionalConv(dim, conv_pos, conv_pos_groups, squeeze_factor)
        self.pool = nn.AvgPool1d(squeeze_factor, squeeze_factor) if squeeze_factor > 1 else nn.Identity()
        self.upsample = Upsample(dim, squeeze_factor)

    # the subclass's layer stack, on the squeezed sequence
    def enter_layers(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> LayerPass:
        raise NotImplementedError

    def run_layer(self, p: LayerPass) -> bool:
        raise NotImplementedError

    def hidden_states(self, p: LayerPass) -> torch.Tensor:
        raise NotImplementedError

    def leave_layers(self, p: LayerPass) -> torch.Tensor:
        raise NotImplementedError

    # the layer-stepping protocol at the frame rate
    def begin_layers(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> LayerPass:
        """x [B, T, D] frames, padding_mask [B, T] (True = pad) -> the pass before the first layer, over the
        squeezed [B, S, D] (``p.padding_mask``: the squeezed padding [B, S], ``p.length``: T)."""
        length = x.size(1)
        p = self.enter_layers(*self.squeeze(x, padding_mask))
        p.length = length
        return p

    def end_layers(self, p: LayerPass) -> torch.Tensor:
        """The transforms after the last layer run, then upsample: [B, T, D]."""
        return self.unsqueeze(self.leave_layers(p), p.padding_mask, p.length)

    def to_frames(self, p: LayerPass, hidden: torch.Tensor, upsample: Optional[nn.Module] = None) -> torch.Tensor:
        """Hidden states [B, S, D] of pass ``p`` -> [B, T, D] through ``upsample`` (default ``self.upsample``)."""
        return self.unsqueeze(hidden, p.padding_mask, p.length, upsample=upsample)

    def squeeze(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """[B, T, D] frames -> ([B, S, D], squeezed padding mask [B, S] or None), S = T // s."""
        if x.size(1) < self.squeeze_factor:
            raise ValueError(f"input of {x.size(1)} frame(s) is too short to squeeze by {self.squeeze_factor}: "
                             f"give at least {self.squeeze_factor} frames (about {self.squeeze_factor * 20 + 5} ms "
                             f"of 16 kHz audio)")
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        x = x.transpose(1, 2)  # [B, D, T]
        pos = self.pos_conv(x)  # [B, D, ceil(T / s)]
        pooled = self.pool(x)  # [B, D, T // s]
        s_len = min(pos.size(-1), pooled.size(-1))
        x = (pooled[..., :s_len] + pos[..., :s_len]).transpose(1, 2)  # [B, S, D]
        if padding_mask is not None:
            lengths = (~padding_mask).sum(-1) // self.squeeze_factor
            padding_mask = lengths_to_padding_mask(lengths, s_len)
        return x, padding_mask

    def unsqueeze(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor], length: int,
                  upsample: Optional[nn.Module] = None) -> torch.Tensor:
        """[B, S, D] -> [B, T, D]: upsample, zero what comes from squeezed padding, zero-pad to ``length``.

        ``upsample``: a module shaped like ``self.upsample`` (early-exit branches have their own)."""
        x = (self.upsample if upsample is None else upsample)(x)  # [B, s*S, D]
        if padding_mask is not None:
            # an utterance's frames past s * (its squeezed length) are zeros, as when it is run alone
            x = x.masked_fill(padding_mask.repeat_interleave(self.squeeze_factor, dim=1).unsqueeze(-1), 0.0)
        if torch.jit.is_tracing() or x.size(1) < length:  # traced: pad by a traced amount (0 for even T)
            x = F.pad(x, (0, 0, 0, length - x.size(1)))
        return x

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, layer: Optional[int] = None,
                **unused) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """x: [B, T, D] frames, padding_mask: [B, T] (True = pad) -> ([B, T, D], the hidden states [B, S, D] after
        each layer run). ``layer``: stop after the layer at this 0-based position (fairseq's ``tgt_layer``)."""
        p = self.begin_layers(x, padding_mask)
        layer_results = run_layers(self, p, layer)
        return self.end_layers(p), layer_results

    def max_positions(self) -> int:
        return int(1e6)
