"""``sew_ctc_early_exit``: ``sew_ctc`` with HuBERT-EE exit branches on intermediate layers (any backbone).

The backbone and the final projection are ``sew_ctc``'s (same parameter names, ``w2v_encoder.*``, so a ``sew_ctc``
checkpoint initialises this model); the branches are ``exit_branches.{i}`` (:class:`ExitBranch`: a small
transformer block + CTC projection; for SEW / SEW-D on the squeezed sequence, then upsampled like the last layer).

Training (criterion ``ctc_early_exit``): loss = final CTC + ``exit_loss_weight`` * sum of the branches' CTC,
* joint: from a pretrained checkpoint (``w2v_path``), everything trained (``recipes/finetuning/early_exit_joint``);
* two-stage: from a fine-tuned ``sew_ctc`` checkpoint (``finetuned_path``) with ``freeze_backbone: true``: the
  backbone and its projection are frozen and run in eval mode (no masking, dropout or layerdrop), only the branches
  learn (``recipes/finetuning/early_exit_two_stage``).

Inference: ``model(source, padding_mask)`` is the plain CTC model (no branch runs); :meth:`forward_early_exit` runs
the backbone layer by layer and stops, per utterance, at the first branch whose exit rule passes. Exit layers are
1-based layer counts: ``exit_layers: [5, 8, 11]`` puts branches after the 5th, 8th and 11th of 12 layers.
"""
import contextlib
import functools
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional

import torch
import torch.nn as nn
from fairseq.models import register_model
from omegaconf import DictConfig, open_dict

from ..modules.early_exit import ExitBranch, ExitRule
from ..modules.layer_pass import run_layers
from ..modules.squeeze import SqueezedEncoder, Upsample
from .hubert import BackboneEncoder
from ..checkpoints.hubert_ctc import as_sew_ctc
from .encoder_steps import backbone_input, layer_stepper
from .sew_ctc import SEWCtc, SEWCtcConfig

CTC_MODELS = ("sew_ctc", "wav2vec_ctc_v2", "wav2vec_ctc", "sew_ctc_early_exit", "hubert_ctc")
# HuBERT-EE's exits after layers 5, 8 and 11 of 12, as fractions of the depth
DEFAULT_EXIT_FRACTIONS = (5 / 12, 8 / 12, 11 / 12)


@dataclass
class SEWCtcEarlyExitConfig(SEWCtcConfig):
    # not mandatory here (fairseq cannot load a checkpoint whose config keeps a missing value): two-stage training
    # starts from finetuned_path instead
    w2v_path: Optional[str] = field(default=None, metadata={
        "help": "pretrained checkpoint (sew, sew_d, w2v2_mlp, wav2vec2, hubert) for joint training; or give "
                "finetuned_path"})
    exit_layers: List[int] = field(default_factory=list, metadata={
        "help": "branch after each of these layers (1-based counts, each in 1..layers-1); empty = the layers at "
                "5/12, 8/12 and 11/12 of the backbone's depth, rounded down (5, 8, 11 of 12; 10, 16, 22 of 24)"})
    exit_branch_layers: int = field(default=1, metadata={"help": "transformer layers in each exit branch"})
    exit_branch_ffn_dim: int = field(default=-1, metadata={
        "help": "feed-forward size of the branch layers; -1 = the backbone's encoder_ffn_embed_dim"})
    exit_branch_heads: int = field(default=-1, metadata={
        "help": "attention heads of the branch layers; -1 = the backbone's encoder_attention_heads"})
    exit_branch_dropout: float = field(default=0.1, metadata={"help": "dropout in the branches"})
    exit_loss_weight: float = field(default=1.0, metadata={
        "help": "lambda of the training loss: final CTC + lambda * sum of the branches' CTC losses"})
    finetuned_path: Optional[str] = field(default=None, metadata={
        "help": "a fine-tuned CTC checkpoint (sew_ctc, or fairseq's wav2vec_ctc / hubert_ctc) that initialises the "
                "backbone and final projection (two-stage training); model.w2v_path is then not read"})
    freeze_backbone: bool = field(default=False, metadata={
        "help": "two-stage training: freeze the backbone and final projection and run them in eval mode; "
                "only the branches learn (needs finetuned_path)"})


def default_exit_layers(num_layers: int) -> List[int]:
    """The layers at 5/12, 8/12 and 11/12 of ``num_layers``, rounded down, kept in 1..num_layers-1, deduplicated."""
    layers = sorted({min(max(int(num_layers * f), 1), num_layers - 1) for f in DEFAULT_EXIT_FRACTIONS})
    return [k for k in layers if k >= 1]


def _set(cfg, name: str, value) -> None:
    if isinstance(cfg, DictConfig):
        with open_dict(cfg):
            setattr(cfg, name, value)
    else:
        setattr(cfg, name, value)


def _load_finetuned(cfg: SEWCtcEarlyExitConfig) -> Dict[str, torch.Tensor]:
    """The ``w2v_encoder.*`` weights of ``cfg.finetuned_path``; sets ``cfg.w2v_args`` to its backbone config."""
    from fairseq import checkpoint_utils

    state = as_sew_ctc(checkpoint_utils.load_checkpoint_to_cpu(cfg.finetuned_path), cfg.finetuned_path)
    model_cfg = state["cfg"]["model"] if state.get("cfg") is not None else None
    if model_cfg is None or model_cfg.get("_name") not in CTC_MODELS or model_cfg.get("w2v_args") is None:
        name = None if model_cfg is None else model_cfg.get("_name")
        raise ValueError(f"model.finetuned_path={cfg.finetuned_path}: expected a fine-tuned CTC checkpoint "
                         f"({', '.join(CTC_MODELS)}), found model {name!r}; give a pretrained one as model.w2v_path")
    _set(cfg, "w2v_args", model_cfg["w2v_args"])
    return {k[len("w2v_encoder."):]: v for k, v in state["model"].items() if k.startswith("w2v_encoder.")}


class EarlyExitOutput(NamedTuple):
    net_output: Dict  # {"encoder_out": logits [T, B, V] (each utterance's exit), "padding_mask": [B, T] or None}
    exit_layer: torch.Tensor  # [B] the layer count each utterance exited after (num_layers = no early exit)
    layers_run: int  # backbone layers computed for the batch


@register_model("sew_ctc_early_exit", dataclass=SEWCtcEarlyExitConfig)
class SEWCtcEarlyExit(SEWCtc):
    """``sew_ctc`` + exit branches. ``forward(..., return_exits=True)`` also returns every branch's logits."""

    def __init__(self, cfg: SEWCtcEarlyExitConfig, w2v_encoder: BackboneEncoder, num_classes: int):
        super().__init__(cfg, w2v_encoder)
        backbone = cfg.w2v_args.model
        encoder = w2v_encoder.w2v_model.encoder
        self.num_layers = layer_stepper(encoder).num_layers
        layers = list(cfg.exit_layers) or default_exit_layers(self.num_layers)
        bad = [k for k in layers if not 1 <= k < self.num_layers]
        if not layers or bad or len(set(layers)) != len(layers):
            raise ValueError(f"model.exit_layers={list(cfg.exit_layers)} for a {self.num_layers}-layer backbone: give "
                             f"distinct layer counts between 1 and {self.num_layers - 1} (a branch after the last "
                             f"layer would duplicate the final output)")
        self.exit_layers = sorted(layers)
        self.exit_loss_weight = cfg.exit_loss_weight
        dim = backbone.encoder_embed_dim
        ffn = cfg.exit_branch_ffn_dim if cfg.exit_branch_ffn_dim > 0 else backbone.encoder_ffn_embed_dim
        heads = cfg.exit_branch_heads if cfg.exit_branch_heads > 0 else backbone.encoder_attention_heads
        branches = []
        for _ in self.exit_layers:
            upsample = None
            if isinstance(encoder, SqueezedEncoder):  # an upsample like the last layer's, starting from its weights
                upsample = Upsample(dim, encoder.squeeze_factor)
                upsample.load_state_dict(encoder.upsample.state_dict())
            branches.append(ExitBranch(dim, ffn, heads, cfg.exit_branch_layers, cfg.exit_branch_dropout,
                                       num_classes, upsample))
        self.exit_branches = nn.ModuleList(branches)
        self.freeze_backbone = cfg.freeze_backbone
        if self.freeze_backbone:
            if not cfg.finetuned_path and not cfg.no_pretrained_weights:
                raise ValueError("model.freeze_backbone=true trains only the branches: give a fine-tuned CTC "
                                 "checkpoint "
                                 "as model.finetuned_path (two-stage training)")
            self.w2v_encoder.requires_grad_(False)

    @classmethod
    def build_model(cls, cfg: SEWCtcEarlyExitConfig, task):
        weights = None
        if cfg.w2v_args is None:  # else loading a checkpoint of this model: its backbone config is in w2v_args
            if cfg.finetuned_path:
                weights = _load_finetuned(cfg)
            elif not cfg.w2v_path:
                raise ValueError("sew_ctc_early_exit needs model.w2v_path (a pretrained checkpoint: joint training) or "
                                 "model.finetuned_path (a fine-tuned CTC checkpoint: two-stage training)")
        encoder = BackboneEncoder(cfg, len(task.target_dictionary))
        if weights is not None:
            encoder.load_state_dict(weights, strict=True)
        return cls(cfg, encoder, len(task.target_dictionary))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_backbone:  # two-stage: the branches see the backbone exactly as at inference
            self.w2v_encoder.eval()
        return self

    def _final_logits(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [T, B, V], as ``Wav2VecEncoder.forward`` after its backbone."""
        x = self.w2v_encoder.final_dropout(x.transpose(0, 1))
        return self.w2v_encoder.proj(x) if self.w2v_encoder.proj is not None else x

    def forward(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, return_exits: bool = False,
                **kwargs) -> Dict:
        """source [B, L] -> {"encoder_out": [T, B, V], "padding_mask": [B, T] or None}; with ``return_exits`` also
        ``"exit_outputs": {layer: logits [T, B, V]}`` (one backbone pass)."""
        if not return_exits:
            return super().forward(source=source, padding_mask=padding_mask, **kwargs)
        enc = self.w2v_encoder
        train_backbone = enc.freeze_finetune_updates <= enc.num_updates and not self.freeze_backbone
        hidden = {}
        with contextlib.ExitStack() if train_backbone else torch.no_grad():
            x, frame_mask = backbone_input(enc.w2v_model, source, padding_mask, mask=enc.apply_mask and enc.training)
            encoder = layer_stepper(enc.w2v_model.encoder)
            p = encoder.begin_layers(x, frame_mask)
            for layer in range(1, self.num_layers + 1):
                encoder.run_layer(p)
                if layer in self.exit_layers:
                    hidden[layer] = encoder.hidden_states(p)  # [B, S, D]
            x = encoder.end_layers(p)  # [B, T, D]
        to_frames = functools.partial(encoder.to_frames, p)
        exits = {layer: branch(hidden[layer], p.padding_mask, to_frames)
                 for layer, branch in zip(self.exit_layers, self.exit_branches)}
        return {"encoder_out": self._final_logits(x), "padding_mask": frame_mask, "exit_outputs": exits}

    @torch.no_grad()
    def forward_early_exit(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor], rule: ExitRule
                           ) -> EarlyExitOutput:
        """Each utterance takes the logits of the first branch whose ``rule`` passes on it (else the final layer's).

        The backbone stops after the layer where the last utterance of the batch exits: with batch size 1 (as
        ``sew-infer --early-exit`` runs) the layers after an utterance's exit are never computed."""
        rule.check()
        enc = self.w2v_encoder
        x, frame_mask = backbone_input(enc.w2v_model, source, padding_mask, mask=False)
        encoder = layer_stepper(enc.w2v_model.encoder)
        p = encoder.begin_layers(x, frame_mask)
        to_frames = functools.partial(encoder.to_frames, p)
        batch = source.size(0)
        exit_layer = torch.full((batch,), self.num_layers, dtype=torch.long)
        exited = torch.zeros(batch, dtype=torch.bool)
        logits: Optional[torch.Tensor] = None  # [T, B, V], filled as utterances exit
        branches = dict(zip(self.exit_layers, self.exit_branches))
        for layer in range(1, self.num_layers + 1):
            encoder.run_layer(p)
            if layer not in branches:
                continue
            out = {"encoder_out": branches[layer](encoder.hidden_states(p), p.padding_mask, to_frames),
                   "padding_mask": frame_mask}
            # on a copy: get_logits adds blank_weight in place, and the caller normalises the returned logits again
            scored = {"encoder_out": out["encoder_out"].clone(), "padding_mask": frame_mask}
            lprobs = self.get_normalized_probs(scored, log_probs=True).transpose(0, 1)  # [B, T, V]
            now = rule.passes(lprobs, frame_mask).cpu() & ~exited
            if now.any():
                logits = out["encoder_out"] if logits is None else torch.where(
                    now.to(logits.device)[None, :, None], out["encoder_out"], logits)
                exit_layer[now] = layer
                exited |= now
            if bool(exited.all()):
                break
        if not bool(exited.all()):
            run_layers(encoder, p)
            final = self._final_logits(encoder.end_layers(p))  # [T, B, V]
            logits = final if logits is None else torch.where(exited.to(final.device)[None, :, None], logits, final)
        return EarlyExitOutput({"encoder_out": logits, "padding_mask": frame_mask}, exit_layer, p.layers_run)
