"""fairseq HuBERT as a backbone of this plugin's CTC models (``sew_ctc``, ``sew_ctc_early_exit``).

fairseq's :class:`Wav2VecEncoder` (what ``sew_ctc`` is built on) fine-tunes any pretrained model with wav2vec
2.0's interface: ``sew``, ``sew_d``, ``w2v2_mlp`` and fairseq ``wav2vec2`` go through it unchanged. A fairseq
``hubert`` checkpoint needs three things it does not do, which :class:`BackboneEncoder` adds:

* build without the pretraining labels. fairseq's ``HubertModel`` asks its task for the k-means label dictionaries
  (``dict.km.txt`` in the pretraining ``label_dir``), which the fine-tuning machine rarely has; they only size
  ``label_embs_concat``, a pretraining parameter. :class:`HubertBackbone` is built with no dictionaries
  (``HubertModel``'s own fine-tuning path) and drops ``label_embs_concat`` from the state dicts it loads;
* return wav2vec 2.0's ``{"x", "padding_mask", "layer_results"}`` from ``extract_features`` (HuBERT's is a tuple);
* take the fine-tuning dropouts, masking and layerdrop, as fairseq's ``HubertEncoder`` does (:data:`HUBERT_OVERRIDES`).

The parameter names are ``Wav2VecEncoder``'s (``w2v_model.*``, ``proj.*``), which are also those of fairseq's
``hubert_ctc``: :mod:`sew_fairseq.checkpoints.hubert_ctc` reads a fine-tuned ``hubert_ctc`` checkpoint as a
``sew_ctc`` one (config rewritten, weights unchanged but ``label_embs_concat``). That is how such checkpoints load
here for inference and early-exit training: fairseq-fixed's own ``hubert_ctc`` reads a config key its dataclass
lacks (fairseq issue #4916, patched by ``sew_fairseq/compat/hubert_ctc_autoregressive.py``), and its encoder would
still need the pretraining label directory and returns its padding under another key than ``Wav2VecCtc``.

Shapes: B batch, L samples, T frames, D ``encoder_embed_dim``.
"""
from __future__ import annotations

from argparse import Namespace
from typing import Any, Dict, Mapping, Optional

import torch
import torch.nn as nn
from fairseq.models import FairseqEncoder
from fairseq.models.hubert.hubert import HubertConfig, HubertModel
from fairseq.models.wav2vec.wav2vec2_asr import Linear, Wav2VecEncoder
from omegaconf import DictConfig, OmegaConf, open_dict

from ..checkpoints.hubert_ctc import (HUBERT_MODELS, HUBERT_OVERRIDES, HUBERT_PRETRAINING_ONLY, as_omegaconf,
                                      model_name, pretrained_model_name, to_container)


class HubertBackbone(HubertModel):
    """fairseq's ``HubertModel`` for fine-tuning and inference: no label embeddings, wav2vec 2.0's
    ``extract_features``. Parameter names and computation are ``HubertModel``'s, its frame padding too: on a padded
    batch a frame is padding when all the samples of its chunk of L / T samples are, so a shorter utterance can keep
    one frame more than when it runs alone (wav2vec 2.0 computes each utterance's frame count exactly)."""

    def __init__(self, cfg: HubertConfig, task_cfg: Any):
        labels = list(task_cfg.get("labels") or ["km"]) if hasattr(task_cfg, "get") else ["km"]
        # no dictionaries: HubertModel then builds no label_embs_concat (its fine-tuning path); final_proj keeps the
        # pretrained shape (final_dim x number of label sets when untied) so pretrained state dicts load strictly
        super().__init__(cfg, task_cfg, [None] * len(labels))

    @classmethod
    def build(cls, model_cfg: Any, task_cfg: Any) -> "HubertBackbone":
        """From a checkpoint's ``cfg.model`` (``_name: hubert``) and ``cfg.task`` (``hubert_pretraining``)."""
        from fairseq.dataclass.utils import merge_with_parent

        task_cfg = OmegaConf.create(to_container(task_cfg)) if task_cfg is not None else OmegaConf.create({})
        values = to_container(model_cfg)
        if values.get("label_rate") is None or isinstance(values.get("label_rate"), str):  # II("task.label_rate")
            values["label_rate"] = float(task_cfg.get("label_rate", 50.0))
        if "sample_rate" not in task_cfg:
            task_cfg.sample_rate = 16000
        cfg = merge_with_parent(HubertConfig(), OmegaConf.create(values), remove_missing=True)
        return cls(cfg, task_cfg)

    def extract_features(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, mask: bool = False,
                         ret_conv: bool = False, output_layer: Optional[int] = None, **unused) -> Dict[str, Any]:
        """source [B, L] -> ``{"x": [B, T, D], "padding_mask": [B, T] or None, "layer_results": []}``."""
        res = self.forward(source, padding_mask=padding_mask, mask=mask, features_only=True,
                           output_layer=output_layer)
        return {"x": res["features"] if ret_conv else res["x"], "padding_mask": res["padding_mask"],
                "layer_results": []}

    def remove_pretraining_modules(self, last_layer: Optional[int] = None) -> None:
        """Drop the prediction heads; keep layers ``0..last_layer`` when given."""
        super().remove_pretraining_modules()
        if last_layer is not None:
            del self.encoder.layers[last_layer + 1:]

    def upgrade_state_dict_named(self, state_dict: Dict[str, torch.Tensor], name: str) -> Dict[str, torch.Tensor]:
        """Drop the pretraining-only ``label_embs_concat`` (this model has none)."""
        prefix = name + "." if name else ""
        for key in HUBERT_PRETRAINING_ONLY:
            state_dict.pop(prefix + key, None)
        return super().upgrade_state_dict_named(state_dict, name)


def _set(cfg: Any, name: str, value: Any) -> None:
    if isinstance(cfg, DictConfig):
        with open_dict(cfg):
            setattr(cfg, name, value)
    else:
        setattr(cfg, name, value)


class BackboneEncoder(Wav2VecEncoder):
    """fairseq's ``Wav2VecEncoder`` that also fine-tunes fairseq HuBERT checkpoints (``model.w2v_path``).

    source [B, L] -> ``{"encoder_out": [T, B, V], "padding_mask": [B, T] or None, "layer_results"}``, as
    ``Wav2VecEncoder``; every other backbone is built by ``Wav2VecEncoder`` itself."""

    def __init__(self, cfg, output_size: Optional[int] = None):
        state = None
        if cfg.w2v_args is None and cfg.w2v_path and pretrained_model_name(cfg.w2v_path) in HUBERT_MODELS:
            from fairseq import checkpoint_utils

            overrides = {pre: cfg[ft] for pre, ft in HUBERT_OVERRIDES.items()}
            state = checkpoint_utils.load_checkpoint_to_cpu(cfg.w2v_path, overrides)
            w2v_args = as_omegaconf(state["cfg"] if state.get("cfg") is not None else state["args"])
            with open_dict(w2v_args):
                w2v_args.criterion = None
                w2v_args.lr_scheduler = None
            _set(cfg, "w2v_args", w2v_args)
        if isinstance(cfg.w2v_args, Namespace):  # legacy argparse config
            _set(cfg, "w2v_args", as_omegaconf(cfg.w2v_args))
        if model_name(cfg.w2v_args) not in HUBERT_MODELS:
            super().__init__(cfg, output_size)
            return
        self._init_hubert(cfg, output_size, state)

    def _init_hubert(self, cfg, output_size: Optional[int], state: Optional[Mapping[str, Any]]) -> None:
        """Wav2VecEncoder.__init__'s steps for a :class:`HubertBackbone` (``state``: the pretrained checkpoint)."""
        FairseqEncoder.__init__(self, None)  # the pretraining task's source dictionary, None for audio as in fairseq
        w2v_args = cfg.w2v_args
        pretrained = bool(w2v_args.task.get("normalize", False)) if w2v_args.get("task") is not None else False
        if bool(cfg.normalize) != pretrained:
            source = cfg.w2v_path or "the fine-tuned checkpoint's w2v_args"
            raise ValueError(f"{source}: the HuBERT model was pretrained with task.normalize={pretrained} but this run "
                             f"has task.normalize={bool(cfg.normalize)}; set task.normalize={str(pretrained).lower()} "
                             f"(fine-tuning must normalise the audio as pretraining did)")
        if getattr(cfg, "layer_decay", 1) < 1:
            raise ValueError(f"model.layer_decay={cfg.layer_decay} applies to data2vec backbones only, not HuBERT")
        self.apply_mask = cfg.apply_mask
        self.is_d2v_multi = False
        model = HubertBackbone.build(w2v_args.model, w2v_args.get("task"))
        model.remove_pretraining_modules()
        if state is not None and not cfg.no_pretrained_weights:
            model.load_state_dict(state["model"], strict=True)
        self.w2v_model = model
        self.final_dropout = nn.Dropout(cfg.final_dropout)
        self.freeze_finetune_updates = cfg.freeze_finetune_updates
        self.num_updates = 0
        self.proj = Linear(w2v_args.model.encoder_embed_dim, output_size) if output_size is not None else None
        if cfg.freeze_regex is not None:
            self.freeze_regex(cfg.freeze_regex)
