"""Every backbone's context network behind the layer-stepping protocol (``modules/layer_pass.py``), for early exit.

    x, mask = backbone_input(w2v_model, source, padding_mask)   # [B, T, D] frames entering the context network
    encoder = layer_stepper(w2v_model.encoder)
    p = encoder.begin_layers(x, mask)
    encoder.run_layer(p); h = encoder.hidden_states(p)          # [B, S, D] after layer 1 (S = T // squeeze or T)
    ...                                                         # stop whenever: the remaining layers never run
    run_layers(encoder, p); y = encoder.end_layers(p)           # [B, T, D]: w2v_model.encoder(x, mask)[0]

SEW (``SEWEncoder``) and SEW-D (``SEWDEncoder``) implement the protocol themselves, and their forwards are made of
it. fairseq's wav2vec 2.0 / HuBERT ``TransformerEncoder`` (``w2v2_mlp``, ``wav2vec2`` and ``hubert`` backbones)
is not ours to change: :class:`TransformerEncoderSteps` is the thin adapter that gives it the protocol. Its
``begin_layers`` runs fairseq's own ``extract_features`` up to the first layer (positional conv, LayerNorm,
``required_seq_len_multiple`` padding, dropout) and stops it there; only the layer loop and the transforms after it
are restated, and ``tests/test_encoder_steps.py`` checks them against fairseq's forward bit for bit.
"""
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from fairseq.models.wav2vec.wav2vec2 import TransformerEncoder, TransformerSentenceEncoderLayer

from ..modules.layer_pass import ContextNetworkStepper, LayerPass
from ..modules.squeeze import SqueezedEncoder


class _LayerInput(Exception):
    """Raised by a pre-hook on a transformer's first layer to stop its forward there."""

    def __init__(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]):
        super().__init__("first layer input captured")
        self.x, self.padding_mask = x, padding_mask


def _capture_layer_input(module: nn.Module, args: tuple, kwargs: dict):
    raise _LayerInput(args[0] if args else kwargs["x"], kwargs.get("self_attn_padding_mask"))


class TransformerEncoderSteps:
    """fairseq's ``TransformerEncoder`` (wav2vec 2.0, HuBERT) behind the layer-stepping protocol.

    A view on the encoder, holding no parameters (state dicts are the encoder's). Running every layer gives what
    ``encoder(x, padding_mask)[0]`` gives, bit for bit, layerdrop's draws from numpy's generator included: in
    fairseq's loop a layer is skipped in training when ``np.random.random() <= layerdrop`` (drawn whenever
    ``layerdrop > 0``, in eval mode too), the padding to ``required_seq_len_multiple`` is removed after the last
    layer, then pre-LN models (``layer_norm_first``) apply the final LayerNorm."""

    def __init__(self, encoder: TransformerEncoder):
        for layer in encoder.layers:
            if not isinstance(layer, TransformerSentenceEncoderLayer):
                raise ValueError(f"early exit runs wav2vec 2.0 transformer layers one by one; this encoder has "
                                 f"{type(layer).__name__} layers (layer_type other than 'transformer')")
        if len(encoder.layers) == 0:
            raise ValueError("this TransformerEncoder has no layers to step through")
        self.encoder = encoder

    @property
    def num_layers(self) -> int:
        return len(self.encoder.layers)

    def begin_layers(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> LayerPass:
        """x [B, T, D], padding_mask [B, T] or None -> the pass before layer 1, as fairseq's ``extract_features``
        makes it: ``p.x`` [T', B, D] and ``p.attn_mask`` [B, T'] padded to T' (a multiple of
        ``required_seq_len_multiple``), ``p.padding_mask`` [B, T].

        fairseq's own code runs, stopped by a pre-hook on the first layer. Its ``layerdrop`` is 0 meanwhile, so that
        fairseq neither draws the first layer's decision nor skips it: :meth:`run_layer` makes every draw."""
        enc = self.encoder
        handle = enc.layers[0].register_forward_pre_hook(_capture_layer_input, with_kwargs=True)
        layerdrop, enc.layerdrop = enc.layerdrop, 0.0
        try:
            enc.extract_features(x, padding_mask)
        except _LayerInput as captured:
            inner, attn_mask = captured.x, captured.padding_mask  # [T', B, D], [B, T'] or None
        else:
            raise RuntimeError(f"{type(enc).__name__}.extract_features did not call its first layer")
        finally:
            enc.layerdrop = layerdrop
            handle.remove()
        length = x.size(1)
        frames_mask = attn_mask[:, :length] if attn_mask is not None else None  # [B, T]
        return LayerPass(inner, attn_mask, frames_mask, length, len(enc.layers))

    def run_layer(self, p: LayerPass) -> bool:
        """The layer at ``p.index`` on p.x [T', B, D], with fairseq's layerdrop decision."""
        enc = self.encoder
        dropout_probability = np.random.random() if enc.layerdrop > 0 else 1
        if enc.training and dropout_probability <= enc.layerdrop:
            return p.advance(False)
        p.x, _ = enc.layers[p.index](p.x, self_attn_padding_mask=p.attn_mask, need_weights=False)
        return p.advance(True)

    def hidden_states(self, p: LayerPass) -> torch.Tensor:
        """[B, T, D] after the layers run so far (the sequence padding removed)."""
        return p.x.transpose(0, 1)[:, :p.length]

    def end_layers(self, p: LayerPass) -> torch.Tensor:
        """[B, T, D]: the sequence padding removed, then the final LayerNorm of pre-LN encoders."""
        x = self.hidden_states(p)
        return self.encoder.layer_norm(x) if self.encoder.layer_norm_first else x

    def to_frames(self, p: LayerPass, hidden: torch.Tensor, upsample: Optional[nn.Module] = None) -> torch.Tensor:
        """[B, T, D] as it is: the encoder does not squeeze (``upsample`` must be None)."""
        if upsample is not None:
            raise ValueError("a TransformerEncoder does not squeeze: its exit branches have no upsample")
        return hidden


def layer_stepper(encoder: nn.Module) -> ContextNetworkStepper:
    """The layer-stepping protocol of ``encoder``, a backbone's context network: SEW's and SEW-D's own, fairseq's
    ``TransformerEncoder`` through :class:`TransformerEncoderSteps`."""
    if isinstance(encoder, SqueezedEncoder):
        return encoder
    if isinstance(encoder, TransformerEncoder):
        return TransformerEncoderSteps(encoder)
    raise TypeError(f"early exit cannot run a {type(encoder).__name__} layer by layer; supported context networks: "
                    f"SEWEncoder (sew), SEWDEncoder (sew_d), fairseq TransformerEncoder (w2v2_mlp, wav2vec2, hubert)")


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
