"""The layer-stepping protocol: one pass through a context network's layer stack, a layer at a time.

Every context network of this plugin takes part: ``SEWEncoder`` (sew), ``SEWDEncoder`` (sew_d) and its
``DisentangledEncoder``, and fairseq's wav2vec 2.0 / HuBERT ``TransformerEncoder`` through a thin adapter
(:class:`~sew_fairseq.models.encoder_steps.TransformerEncoderSteps`, since fairseq's class is not ours)::

    p = encoder.begin_layers(x, padding_mask)   # x [B, T, D] frames -> the pass before the first layer
    encoder.run_layer(p)                        # the layer at position p.index (layerdrop may skip it in training)
    h = encoder.hidden_states(p)                # [B, S, D] after the layers run so far (S = T // squeeze, or T)
    ...                                         # stop whenever: the remaining layers are never computed
    run_layers(encoder, p)                      # or run the remaining ones
    y = encoder.end_layers(p)                   # [B, T, D], as ``encoder(x, padding_mask)[0]``

The encoders' own forwards are this sequence (``begin_layers``, :func:`run_layers`, ``end_layers``), and early exit
(``models/sew_ctc_early_exit.py``) steps through it, so there is one loop per encoder, never a copy outside it.
A context network also has ``to_frames(p, h, upsample)``, which brings intermediate hidden states [B, S, D] back to
the frame rate [B, T, D] (the identity for encoders that do not squeeze). Shapes: B batch, T frames, S = T // s
squeezed steps (S = T without squeeze), D width.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Protocol

import torch


@dataclass(eq=False)
class LayerPass:
    """The state of one pass through a layer stack, from ``begin_layers`` to ``end_layers``.

    Attributes:
        x: the running hidden states, in the layout the encoder's layers take ([S, B, D] for fairseq's
            transformer layers, [B, S, D] for SEW-D's); read them through ``encoder.hidden_states(p)``.
        attn_mask: the key padding mask the layers get ([B, S'] True at padding), or None.
        padding_mask: [B, S] padding of ``hidden_states(p)`` (True = pad), or None.
        length: the sequence length ``end_layers`` restores (T frames for a context network).
        num_layers: the layers in the stack.
        index: position in the stack of the next layer (layers skipped by layerdrop count).
        layers_run: layers computed so far.
        keep: [num_layers] bool, layerdrop's decisions when they are drawn once for the whole pass (SEW-D in
            training, as fairseq's ``LayerDropModuleList``); None otherwise (SEW and fairseq's encoder draw layer
            by layer in ``run_layer``).
    """

    x: torch.Tensor
    attn_mask: Optional[torch.Tensor]
    padding_mask: Optional[torch.Tensor]
    length: int
    num_layers: int
    index: int = 0
    layers_run: int = 0
    keep: Optional[torch.Tensor] = None

    @property
    def done(self) -> bool:
        """Whether every layer has been stepped through."""
        return self.index >= self.num_layers

    def advance(self, ran: bool) -> bool:
        """Count the layer at ``index`` as stepped through (``ran``: computed, not skipped); returns ``ran``."""
        self.index += 1
        self.layers_run += int(ran)
        return ran


class LayerStepper(Protocol):
    """A layer stack that can be run a layer at a time (see the module docstring)."""

    num_layers: int

    def begin_layers(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> LayerPass:
        """x [B, T, D], padding_mask [B, T] (True = pad) or None -> the pass before the first layer."""

    def run_layer(self, p: LayerPass) -> bool:
        """Run the layer at ``p.index`` on ``p.x`` (unless layerdrop skips it) and advance; whether it ran."""

    def hidden_states(self, p: LayerPass) -> torch.Tensor:
        """[B, S, D] hidden states after the layers stepped through so far."""

    def end_layers(self, p: LayerPass) -> torch.Tensor:
        """The transforms after the last layer run: [B, T, D], the stack's forward output."""


class ContextNetworkStepper(LayerStepper, Protocol):
    """A backbone's context network (what early exit steps through): a :class:`LayerStepper` on frames that can
    also bring intermediate hidden states back to the frame rate."""

    def to_frames(self, p: LayerPass, hidden: torch.Tensor, upsample: Optional[torch.nn.Module] = None
                  ) -> torch.Tensor:
        """Hidden states [B, S, D] of pass ``p`` -> [B, T, D] (through ``upsample`` for squeezed encoders)."""


def run_layers(encoder: LayerStepper, p: LayerPass, last: Optional[int] = None) -> List[torch.Tensor]:
    """Step ``p`` through the remaining layers, or up to position ``last`` included (fairseq's ``tgt_layer``,
    0-based, counting layers that layerdrop skips). Returns the hidden states [B, S, D] after each layer run."""
    results: List[torch.Tensor] = []
    while not p.done:
        position = p.index
        if encoder.run_layer(p):
            results.append(encoder.hidden_states(p))
        if last is not None and position == last:
            break
    return results
