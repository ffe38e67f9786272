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
``hubert_ctc``: :func:`as_sew_ctc` reads a fine-tuned ``hubert_ctc`` checkpoint as a ``sew_ctc`` one (config
rewritten, weights unchanged but ``label_embs_concat``). That is how such checkpoints load here for inference and
early-exit training: fairseq-fixed's own ``hubert_ctc`` reads a config key its dataclass lacks (fairseq issue
#4916, patched by ``sew_fairseq/compat/hubert_ctc_autoregressive.py``), and its encoder would still need the
pretraining label directory and returns its padding under another key than ``Wav2VecCtc``.

Shapes: B batch, L samples, T frames, D ``encoder_embed_dim``.
"""
from __future__ import annotations

import logging
import os
from argparse import Namespace
from typing import Any, Dict, Mapping, Optional

import torch
import torch.nn as nn
from fairseq.models import FairseqEncoder
from fairseq.models.hubert.hubert import HubertConfig, HubertModel
from fairseq.models.wav2vec.wav2vec2_asr import Linear, Wav2VecEncoder
from omegaconf import DictConfig, OmegaConf, open_dict

logger = logging.getLogger(__name__)

#: registered names of fairseq's HuBERT pretraining model and fine-tuned CTC model
HUBERT_MODELS = ("hubert",)
HUBERT_CTC_MODELS = ("hubert_ctc",)
#: HuBERT parameters that only pretraining uses (sized by the label dictionaries); never built here
HUBERT_PRETRAINING_ONLY = ("label_embs_concat",)
#: pretraining-config field <- fine-tuning-config field: what fine-tuning overrides in a pretrained HuBERT's config
#: (the list of fairseq's ``HubertEncoder``)
HUBERT_OVERRIDES: Dict[str, str] = {
    "dropout": "dropout", "activation_dropout": "activation_dropout", "dropout_input": "dropout_input",
    "attention_dropout": "attention_dropout", "mask_length": "mask_length", "mask_prob": "mask_prob",
    "mask_selection": "mask_selection", "mask_other": "mask_other", "no_mask_overlap": "no_mask_overlap",
    "mask_channel_length": "mask_channel_length", "mask_channel_prob": "mask_channel_prob",
    "mask_channel_selection": "mask_channel_selection", "mask_channel_other": "mask_channel_other",
    "no_mask_channel_overlap": "no_mask_channel_overlap", "encoder_layerdrop": "layerdrop",
    "feature_grad_mult": "feature_grad_mult",
}


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


def to_container(cfg: Any) -> Dict[str, Any]:
    """A config (DictConfig, dict, argparse Namespace) as a plain dict."""
    if isinstance(cfg, Namespace):
        return dict(vars(cfg))
    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return dict(cfg)


def _model_name(cfg: Any) -> Optional[str]:
    """``cfg.model._name`` of a checkpoint config (None when absent)."""
    if cfg is None:
        return None
    if isinstance(cfg, Namespace):
        return getattr(cfg, "arch", None)
    model = cfg.get("model") if hasattr(cfg, "get") else None
    return model.get("_name") if model is not None and hasattr(model, "get") else None


def pretrained_model_name(path: str) -> Optional[str]:
    """The model name in checkpoint ``path``'s config, read without loading its tensors (memory-mapped)."""
    from ..checkpoint import safe_load

    state = safe_load(path, map_location="cpu", mmap=True)
    return _model_name(state.get("cfg") if state.get("cfg") is not None else state.get("args"))


def _set(cfg: Any, name: str, value: Any) -> None:
    if isinstance(cfg, DictConfig):
        with open_dict(cfg):
            setattr(cfg, name, value)
    else:
        setattr(cfg, name, value)


def _as_omegaconf(w2v_args: Any) -> Any:
    if isinstance(w2v_args, Namespace):
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf

        return convert_namespace_to_omegaconf(w2v_args)
    return w2v_args


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
            w2v_args = _as_omegaconf(state["cfg"] if state.get("cfg") is not None else state["args"])
            with open_dict(w2v_args):
                w2v_args.criterion = None
                w2v_args.lr_scheduler = None
            _set(cfg, "w2v_args", w2v_args)
        if isinstance(cfg.w2v_args, Namespace):  # legacy argparse config
            _set(cfg, "w2v_args", _as_omegaconf(cfg.w2v_args))
        if _model_name(cfg.w2v_args) not in HUBERT_MODELS:
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


def _pretrained_config(model: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """The pretrained config of a ``hubert_ctc`` model config whose ``w2v_args`` is empty, read from its
    ``w2v_path`` (tensors memory-mapped, not read) with the fine-tuning overrides applied, as fairseq's
    ``HubertEncoder`` builds it."""
    from ..checkpoint import safe_load

    path = model.get("w2v_path")
    if not path or not os.path.isfile(path):
        raise ValueError(
            f"{source}: a fine-tuned hubert_ctc checkpoint without the pretrained model's config (model.w2v_args is "
            f"empty: fairseq's hubert_pretraining task does not store it), and its model.w2v_path {path!r} is not a "
            f"file; put the pretrained HuBERT checkpoint it was fine-tuned from at that path (only its config is read)")
    state = safe_load(path, map_location="cpu", mmap=True)
    cfg = state.get("cfg") if state.get("cfg") is not None else state.get("args")
    if _model_name(cfg) not in HUBERT_MODELS:
        raise ValueError(f"{source}: model.w2v_path {path} is a {_model_name(cfg)!r} checkpoint, not a HuBERT one")
    cfg = to_container(_as_omegaconf(cfg))
    for pre, ft in HUBERT_OVERRIDES.items():
        if ft in model and pre in cfg["model"]:
            cfg["model"][pre] = model[ft]
    cfg.update(criterion=None, lr_scheduler=None)
    return cfg


def as_sew_ctc(state: Dict[str, Any], source: str) -> Dict[str, Any]:
    """A fairseq ``hubert_ctc`` checkpoint (as loaded from ``source``) read as ``sew_ctc``; any other checkpoint
    unchanged.

    The weights keep their names (both are ``w2v_encoder.w2v_model.*`` + ``w2v_encoder.proj.*``) less
    ``label_embs_concat``; the model config keeps every field ``sew_ctc`` has, and the task (``hubert_pretraining``
    with ``fine_tuning: true``) becomes fairseq's ``audio_finetuning`` with the same data, labels, normalisation and
    rate. The target dictionary stays in ``task_state``. ``model.w2v_args`` is empty in checkpoints fine-tuned with
    fairseq's ``hubert_pretraining`` task (unlike ``audio_finetuning``, its ``build_model`` does not copy it back),
    so it is then filled from the pretrained checkpoint at ``model.w2v_path``, as fairseq itself would read it."""
    from .sew_ctc import SEWCtcConfig

    cfg = state.get("cfg")
    if _model_name(cfg) not in HUBERT_CTC_MODELS:
        return state
    model = to_container(cfg["model"])
    if model.get("w2v_args") is None:
        model["w2v_args"] = _pretrained_config(model, source)
    known = set(SEWCtcConfig.__dataclass_fields__)
    model = {k: v for k, v in model.items() if k in known}
    model["_name"] = "sew_ctc"
    task = to_container(cfg["task"]) if cfg.get("task") is not None else {}
    labels = task.get("labels") or ["ltr"]
    new_task = {"_name": "audio_finetuning", "data": task.get("data"),
                "labels": labels[0] if isinstance(labels, (list, tuple)) else labels,
                "normalize": bool(task.get("normalize", False)), "sample_rate": int(task.get("sample_rate", 16000))}
    new_cfg = {**to_container(cfg), "model": model, "task": new_task}
    if OmegaConf.is_config(cfg):
        new_cfg = OmegaConf.create(new_cfg, flags={"allow_objects": True})
    weights = {k: v for k, v in state["model"].items()
               if k[len("w2v_encoder.w2v_model."):] not in HUBERT_PRETRAINING_ONLY
               or not k.startswith("w2v_encoder.w2v_model.")}
    return {**state, "cfg": new_cfg, "model": weights}
