"""Run a backbone's context network one layer at a time (for early exit), with the same result as its forward.

    x, mask = backbone_input(w2v_model, source, padding_mask)     # [B, T, D] frames entering the context network
    steps = encoder_steps(w2v_model.encoder, x, mask)
    h = steps.step()                  # [B, S, D] after layer 1 (S = T // squeeze for SEW / SEW-D, T otherwise)
    ...                               # stop whenever: the remaining layers are never run
    y = steps.finish()                # [B, T, D] after the remaining layers; equals encoder(x, mask)[0]

One class per context network: SEW (``SEWEncoder``), SEW-D (``SEWDEncoder``) and fairseq's wav2vec 2.0
``TransformerEncoder`` (``w2v2_mlp`` and fairseq ``wav2vec2`` backbones). SEW's steps call the encoder's own
phases (``enter_layers``, ``run_layer``, ``leave_layers``, which its ``forward_layers`` is made of); SEW-D's and
fairseq's repeat their encoder's forward operation for operation (pre-layer transforms, layerdrop in training,
post-layer transforms), so a change to those forwards must be mirrored here. Running all layers gives
bit-identical outputs (``tests/test_early_exit.py`` compares). ``steps.layers_run`` counts the layers computed.
"""
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models.wav2vec.utils import pad_to_multiple
from fairseq.models.wav2vec.wav2vec2 import TransformerEncoder, TransformerSentenceEncoderLayer
from fairseq.utils import index_put

from ..modules.squeeze import SqueezedEncoder
from .sew import SEWEncoder
from .sew_d import SEWDEncoder


class EncoderSteps:
    """One pass of a context network, a layer at a time. Subclasses implement the three phases."""

    num_layers: int
    padding_mask: Optional[torch.Tensor]  # [B, S] padding of the hidden states that step() returns
    squeezed: bool = False

    def __init__(self) -> None:
        self.index = 0  # layers stepped through (dropped layers included)
        self.layers_run = 0  # layers computed

    def step(self) -> torch.Tensor:
        """Run the next layer; the hidden states after it, [B, S, D]."""
        raise NotImplementedError

    def finish(self) -> torch.Tensor:
        """Run the remaining layers and the encoder's last transforms: [B, T, D] as ``encoder(x, mask)[0]``."""
        raise NotImplementedError

    def to_frames(self, hidden: torch.Tensor, upsample: Optional[nn.Module]) -> torch.Tensor:
        """Hidden states [B, S, D] at the frame rate [B, T, D] (through ``upsample`` for squeezed encoders)."""
        return hidden


class _SqueezedSteps(EncoderSteps):
    squeezed = True

    def __init__(self, encoder: SqueezedEncoder, x: torch.Tensor, padding_mask: Optional[torch.Tensor]):
        super().__init__()
        self.encoder = encoder
        self.length = x.size(1)  # T
        self.x, self.padding_mask = encoder.squeeze(x, padding_mask)  # [B, S, D], [B, S]
        mask = self.padding_mask
        self.attn_mask = mask if mask is not None and mask.any() else None

    def to_frames(self, hidden: torch.Tensor, upsample: Optional[nn.Module]) -> torch.Tensor:
        return self.encoder.unsqueeze(hidden, self.padding_mask, self.length, upsample=upsample)


class SEWSteps(_SqueezedSteps):
    """``SEWEncoder``: squeeze -> its enter_layers / run_layer / leave_layers -> upsample."""

    def __init__(self, encoder: SEWEncoder, x: torch.Tensor, padding_mask: Optional[torch.Tensor]):
        super().__init__(encoder, x, padding_mask)
        self.num_layers = len(encoder.layers)
        self.x, self.attn_mask = encoder.enter_layers(self.x, self.padding_mask)  # [S, B, D]

    def step(self) -> torch.Tensor:
        y = self.encoder.run_layer(self.index, self.x, self.attn_mask)
        if y is not None:
            self.x = y
            self.layers_run += 1
        self.index += 1
        return self.x.transpose(0, 1)  # [B, S, D]

    def finish(self) -> torch.Tensor:
        while self.index < self.num_layers:
            self.step()
        return self.encoder.unsqueeze(self.encoder.leave_layers(self.x), self.padding_mask, self.length)


class SEWDSteps(_SqueezedSteps):
    """``SEWDEncoder``: squeeze -> disentangled-attention layers (shared relative table) -> upsample."""

    def __init__(self, encoder: SEWDEncoder, x: torch.Tensor, padding_mask: Optional[torch.Tensor]):
        super().__init__(encoder, x, padding_mask)
        layers = encoder.encoder.layer  # a LayerDropModuleList: draws its keep decisions once per pass
        self.num_layers = len(layers)
        self.keep = None if not layers.training else torch.empty(len(layers)).uniform_() > layers.p
        self.rel, self.rel_key = encoder.encoder.relative_table()  # [2k, D]

    def step(self) -> torch.Tensor:
        if self.keep is None or self.keep[self.index]:
            layer = self.encoder.encoder.layer[self.index]
            self.x = layer(self.x, self.rel, self.attn_mask, self.rel_key)
            self.layers_run += 1
        self.index += 1
        return self.x

    def finish(self) -> torch.Tensor:
        while self.index < self.num_layers:
            self.step()
        return self.encoder.unsqueeze(self.x, self.padding_mask, self.length)


class TransformerSteps(EncoderSteps):
    """fairseq's wav2vec 2.0 ``TransformerEncoder`` (``extract_features`` then the final LayerNorm if pre-LN)."""

    def __init__(self, encoder: TransformerEncoder, x: torch.Tensor, padding_mask: Optional[torch.Tensor]):
        super().__init__()
        for layer in encoder.layers:
            if not isinstance(layer, TransformerSentenceEncoderLayer):
                raise ValueError(f"early exit runs wav2vec 2.0 transformer layers one by one; this encoder has "
                                 f"{type(layer).__name__} layers (layer_type other than 'transformer')")
        self.encoder = encoder
        self.num_layers = len(encoder.layers)
        if padding_mask is not None:
            x = index_put(x, padding_mask, 0)
        x = x + encoder.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not encoder.layer_norm_first:
            x = encoder.layer_norm(x)
        x, self.pad_length = pad_to_multiple(x, encoder.required_seq_len_multiple, dim=-2, value=0)
        if self.pad_length > 0 and padding_mask is None:
            padding_mask = x.new_zeros((x.size(0), x.size(1)), dtype=torch.bool)
            padding_mask[:, -self.pad_length:] = True
        else:
            padding_mask, _ = pad_to_multiple(padding_mask, encoder.required_seq_len_multiple, dim=-1, value=True)
        self.attn_mask = padding_mask
        self.padding_mask = padding_mask if self.pad_length == 0 else padding_mask[:, :-self.pad_length]
        x = F.dropout(x, p=encoder.dropout, training=encoder.training)
        self.x = x.transpose(0, 1)  # [T, B, D]

    def _unpad(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T + pad, D] -> [B, T, D]"""
        return x[:, :-self.pad_length] if self.pad_length > 0 else x

    def step(self) -> torch.Tensor:
        enc = self.encoder
        dropout_probability = np.random.random() if enc.layerdrop > 0 else 1
        if not enc.training or dropout_probability > enc.layerdrop:
            self.x, _ = enc.layers[self.index](self.x, self_attn_padding_mask=self.attn_mask, need_weights=False)
            self.layers_run += 1
        self.index += 1
        return self._unpad(self.x.transpose(0, 1))  # [B, T, D]

    def finish(self) -> torch.Tensor:
        while self.index < self.num_layers:
            self.step()
        x = self._unpad(self.x.transpose(0, 1))  # [B, T, D]
        if self.encoder.layer_norm_first:
            x = self.encoder.layer_norm(x)
        return x


def encoder_steps(encoder: nn.Module, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> EncoderSteps:
    """Layer-by-layer pass of ``encoder`` (a backbone's context network) on x [B, T, D], padding_mask [B, T]."""
    if isinstance(encoder, SEWDEncoder):
        return SEWDSteps(encoder, x, padding_mask)
    if isinstance(encoder, SEWEncoder):
        return SEWSteps(encoder, x, padding_mask)
    if isinstance(encoder, TransformerEncoder):
        return TransformerSteps(encoder, x, padding_mask)
    raise TypeError(f"early exit cannot run a {type(encoder).__name__} layer by layer; supported context networks: "
                    f"SEWEncoder (sew), SEWDEncoder (sew_d), fairseq TransformerEncoder (w2v2_mlp, wav2vec2)")


def encoder_num_layers(encoder: nn.Module) -> int:
    """The number of layers of a context network that :func:`encoder_steps` supports."""
    if isinstance(encoder, SEWDEncoder):
        return len(encoder.encoder.layer)
    if isinstance(encoder, (SEWEncoder, TransformerEncoder)):
        return len(encoder.layers)
    raise TypeError(f"early exit does not support a {type(encoder).__name__} context network")


class _EncoderInput(Exception):
    """Raised by the pre-hook of :func:`backbone_input` to stop the backbone's forward at its context network."""

    def __init__(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]):
        super().__init__("context network input captured")
        self.x, self.padding_mask = x, padding_mask


def _capture(module: nn.Module, args: tuple, kwargs: dict):
    padding_mask = kwargs["padding_mask"] if "padding_mask" in kwargs else (args[1] if len(args) > 1 else None)
    raise _EncoderInput(args[0] if args else kwargs["x"], padding_mask)


def backbone_input(w2v_model: nn.Module, source: torch.Tensor, padding_mask: Optional[torch.Tensor],
                   mask: bool = False) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(x [B, T, D], frame padding mask [B, T] or None): what ``w2v_model.extract_features`` feeds its context
    network (feature extractor, LayerNorm, projection, input dropout and, with ``mask``, fine-tuning masking).

    The backbone's own front end runs, unchanged, and is stopped by a pre-hook on ``w2v_model.encoder`` that
    captures its arguments, so this works for any wav2vec 2.0-style model without copying its forward."""
    handle = w2v_model.encoder.register_forward_pre_hook(_capture, with_kwargs=True)
    try:
        w2v_model.extract_features(source=source, padding_mask=padding_mask, mask=mask)
    except _EncoderInput as captured:
        return captured.x, captured.padding_mask
    finally:
        handle.remove()
    raise RuntimeError(f"{type(w2v_model).__name__}.extract_features did not call its encoder")
