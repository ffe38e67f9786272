"""The torch backend: the fairseq model itself, in fp32 (unchanged), or in bf16 / fp16 under ``torch.autocast``.

fp32 is :func:`forward_log_probs` as it always was: bit-identical outputs.

bf16 / fp16 prepare the model once, in place (:func:`prepare_reduced_precision`), then run it under autocast:

* weight norm is folded into plain weights (it is recomputed at every forward otherwise) and every Linear and
  Conv1d weight is cast once, so autocast casts no weights per call;
* every Conv1d but the first becomes a :class:`ChannelsLastConv1d`: the same convolution as a (1, k) Conv2d over a
  channels-last [B, C, 1, L] view. oneDNN's reduced-precision convolutions want channels-last; given the default
  layout they reorder input and output around every call, and on the long sequences of the wave feature extractor
  those reorders cost more than the convolutions (torch's profiler, SEW-tiny, 11 s, bf16, 1 thread: 60 of 150 ms;
  a 128-channel k=3 conv over 17.6k frames took 17.6 ms as it was and 2.0 ms channels-last). Channels-last strides
  then flow through GELU to the next block, and the extractor's final transpose to [B, T, C] is free;
* the first convolution, over the raw samples (one input channel), stays fp32 and outside autocast
  (:class:`Fp32Conv1d`), followed by its fp32 GroupNorm and GELU: its output is the network's largest tensor
  (64 x 35k at 11 s), and the native fp32 kernels on the default layout ran that block and the next conv in
  13.7 ms against 25.7 ms in bf16 channels-last (2 threads), with per-channel statistics in full precision.

What stays fp32 under autocast: that first block, LayerNorm (autocast's fp32 list; it reads bf16 inputs and returns
fp32, so the residual stream between layers stays fp32), softmax inside attention, fairseq's GELU in the SEW layers
(``x.float()``), the CTC projection's log-softmax (computed after autocast ends). Matrix products, the other
convolutions, attention and the GELUs of the extractor run in bf16 / fp16.
"""
from __future__ import annotations

import contextlib
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize

from .base import Engine, EngineOutput, normalized
from .hardware import check_backend

TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class ChannelsLastConv1d(nn.Conv1d):
    """A Conv1d computed as a (1, k) Conv2d on channels-last [B, C, 1, L] (for reduced precision, see the module
    docstring). Input [B, C, L] in any layout; output [B, C', L'] with channels-last strides. ``weight`` is the
    [C', C/groups, 1, k] channels-last kernel; ``stride``, ``padding`` and the other attributes are the Conv1d's."""

    @classmethod
    def from_conv(cls, conv: nn.Conv1d, dtype: torch.dtype) -> "ChannelsLastConv1d":
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"cannot convert a Conv1d with padding {conv.padding!r} / mode {conv.padding_mode!r}")
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], stride=conv.stride, padding=conv.padding,
                  dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None, device="meta")
        weight = conv.weight.detach().to(dtype).unsqueeze(2).contiguous(memory_format=torch.channels_last)
        new.weight = nn.Parameter(weight, requires_grad=False)  # [C', C/g, 1, k]
        if conv.bias is not None:
            new.bias = nn.Parameter(conv.bias.detach().to(dtype), requires_grad=False)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.weight.dtype).unsqueeze(2).contiguous(memory_format=torch.channels_last)  # [B, C, 1, L]
        y = F.conv2d(x, self.weight, self.bias, (1, self.stride[0]), (0, self.padding[0]), (1, self.dilation[0]),
                     self.groups)  # [B, C', 1, L'] channels-last
        return y.squeeze(2)  # [B, C', L'], strides (L' C', 1, C')


class Fp32Conv1d(nn.Conv1d):
    """A Conv1d that runs in fp32 with autocast off (for the convolution over the raw samples)."""

    @classmethod
    def from_conv(cls, conv: nn.Conv1d) -> "Fp32Conv1d":
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], stride=conv.stride, padding=conv.padding,
                  dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                  padding_mode=conv.padding_mode, device="meta")
        new.weight = nn.Parameter(conv.weight.detach().float(), requires_grad=False)
        if conv.bias is not None:
            new.bias = nn.Parameter(conv.bias.detach().float(), requires_grad=False)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


def _fold_weight_norm(module: nn.Module) -> None:
    for hook in list(module._forward_pre_hooks.values()):
        if type(hook).__name__ == "WeightNorm":  # torch.nn.utils.weight_norm (the legacy hook)
            nn.utils.remove_weight_norm(module, hook.name)
    if parametrize.is_parametrized(module):
        for name in list(module.parametrizations.keys()):
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)


@torch.no_grad()
def prepare_reduced_precision(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Prepare ``model`` (in place, for inference only) to run under ``torch.autocast(..., dtype)``; see the module
    docstring. Returns ``model``."""
    for module in list(model.modules()):
        _fold_weight_norm(module)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (ChannelsLastConv1d, Fp32Conv1d)):
                continue
            if isinstance(child, nn.Conv1d):
                first = child.in_channels == 1  # the wave feature extractor's first conv, over the samples
                new = Fp32Conv1d.from_conv(child) if first else ChannelsLastConv1d.from_conv(child, dtype)
                setattr(parent, name, new)
            elif isinstance(child, nn.Linear):
                child.to(dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def forward_log_probs(model, waves: Sequence[np.ndarray], device: str = "cpu", normalize: bool = False,
                      exit_rule=None, autocast: Optional[torch.dtype] = None
                      ) -> Tuple[List[torch.Tensor], List[Optional[int]]]:
    """CTC log-probabilities of a batch of waves: one float32 CPU tensor [T_i, V] per wave (padding frames cut)
    and, with ``exit_rule``, the exit layer of each (else None). ``normalize``: zero mean, unit variance per wave
    (fairseq's ``task.normalize``). Padded batches give each wave what it gives alone.

    ``autocast``: run the network under ``torch.autocast(device type, autocast)`` (bf16 / fp16, see
    :class:`TorchEngine`); the log-softmax is computed outside it, in fp32, either way."""
    source = torch.zeros(len(waves), max(len(w) for w in waves))
    padding = torch.ones(source.shape, dtype=torch.bool)
    for i, w in enumerate(waves):
        w = torch.from_numpy(np.asarray(w, dtype=np.float32))
        if normalize:
            w = normalized(w)
        source[i, :len(w)] = w
        padding[i, :len(w)] = False
    exit_layers: List[Optional[int]] = [None] * len(waves)
    with contextlib.nullcontext() if autocast is None else torch.autocast(torch.device(device).type, autocast):
        if exit_rule is None:
            out = model(source=source.to(device), padding_mask=padding.to(device))
        else:
            early = model.forward_early_exit(source.to(device), padding.to(device), exit_rule)
            out, exit_layers = early.net_output, early.exit_layer.tolist()
    if autocast is not None:
        out = {**out, "encoder_out": out["encoder_out"].float()}
    log_probs = model.get_normalized_probs(out, log_probs=True).float().transpose(0, 1).cpu()  # [B, T, V]
    frame_padding = out.get("padding_mask")
    result = []
    for row in range(len(waves)):
        frames = log_probs.size(1) if frame_padding is None else int((~frame_padding[row]).sum())
        result.append(log_probs[row, :frames].contiguous())
    return result, exit_layers


class TorchEngine(Engine):
    """The fairseq CTC model in torch. ``dtype`` fp32 runs it as it is; bf16 / fp16 prepare it in place first (so
    the model given must not be used in fp32 afterwards), then run it under autocast.

    Args:
        model: a loaded fairseq CTC model in eval mode (``sew_ctc``, ``sew_ctc_early_exit``, ``wav2vec_ctc``).
        device, dtype: see :func:`sew_fairseq.engines.hardware.check_backend` (checked here).
        normalize: zero mean, unit variance per wave (the checkpoint's ``task.normalize``).
        exit_rule: early exit (a ``sew_ctc_early_exit`` model).
    """

    backend = "torch"

    def __init__(self, model: nn.Module, device: str = "cpu", dtype: str = "fp32", normalize: bool = False,
                 exit_rule=None):
        check_backend("torch", dtype, device, early_exit=exit_rule is not None)
        super().__init__(dtype, device, normalize)
        if exit_rule is not None:
            if not hasattr(model, "forward_early_exit"):
                raise ValueError(f"early exit needs a checkpoint with exit branches (model sew_ctc_early_exit, see "
                                 f"recipes/finetuning/early_exit_*.yaml); this one is a {type(model).__name__}")
            exit_rule.check()
        self.exit_rule = exit_rule
        self.autocast = TORCH_DTYPES.get(dtype)
        self.model = model if self.autocast is None else prepare_reduced_precision(model, self.autocast)

    @torch.inference_mode()
    def log_probs(self, waves: Sequence[np.ndarray]) -> EngineOutput:
        lps, layers = forward_log_probs(self.model, waves, self.device, self.normalize, self.exit_rule,
                                        autocast=self.autocast)
        return EngineOutput(lps, layers)


def engine_for(model, device: str = "cpu", normalize: bool = False, exit_rule=None, who: str = "an engine") -> Engine:
    """``model`` itself when it is an :class:`Engine` (it carries its own device, normalisation and exit rule, so
    ``device``, ``normalize`` and ``exit_rule`` must be left at their defaults: ValueError naming ``who`` otherwise),
    else the torch fp32 engine of a fairseq CTC model with them."""
    if isinstance(model, Engine):
        if exit_rule is not None or normalize or device != "cpu":
            raise ValueError(f"{who} with an engine: device, normalize and exit_rule belong to the engine")
        return model
    return TorchEngine(model, device, "fp32", normalize, exit_rule)
