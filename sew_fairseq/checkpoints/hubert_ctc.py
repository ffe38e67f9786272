"""Fine-tuned fairseq ``hubert_ctc`` checkpoints read as this plugin's ``sew_ctc``.

Both models keep their weights under the same names (``w2v_encoder.w2v_model.*`` + ``w2v_encoder.proj.*``), so a
``hubert_ctc`` checkpoint is the ``sew_ctc`` one of :class:`sew_fairseq.models.hubert.BackboneEncoder` with another
config: :func:`as_sew_ctc` rewrites the config and drops ``label_embs_concat``. That is how such checkpoints load
here for inference, conversion and early-exit training (fairseq-fixed's own ``hubert_ctc`` reads a config key its
dataclass lacks, fairseq issue #4916, and its encoder needs the pretraining label directory).
"""
from __future__ import annotations

import os
from argparse import Namespace
from typing import Any, Dict, Mapping, Optional

from omegaconf import OmegaConf

from .safe_load import safe_load



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


def to_container(cfg: Any) -> Dict[str, Any]:
    """A config (DictConfig, dict, argparse Namespace) as a plain dict."""
    if isinstance(cfg, Namespace):
        return dict(vars(cfg))
    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return dict(cfg)


def model_name(cfg: Any) -> Optional[str]:
    """``cfg.model._name`` of a checkpoint config (None when absent)."""
    if cfg is None:
        return None
    if isinstance(cfg, Namespace):
        return getattr(cfg, "arch", None)
    model = cfg.get("model") if hasattr(cfg, "get") else None
    return model.get("_name") if model is not None and hasattr(model, "get") else None


def pretrained_model_name(path: str) -> Optional[str]:
    """The model name in checkpoint ``path``'s config, read without loading its tensors (memory-mapped)."""
    state = safe_load(path, map_location="cpu", mmap=True)
    return model_name(state.get("cfg") if state.get("cfg") is not None else state.get("args"))


def as_omegaconf(w2v_args: Any) -> Any:
    if isinstance(w2v_args, Namespace):
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf

        return convert_namespace_to_omegaconf(w2v_args)
    return w2v_args


def _pretrained_config(model: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """The pretrained config of a ``hubert_ctc`` model config whose ``w2v_args`` is empty, read from its
    ``w2v_path`` (tensors memory-mapped, not read) with the fine-tuning overrides applied, as fairseq's
    ``HubertEncoder`` builds it."""

    path = model.get("w2v_path")
    if not path or not os.path.isfile(path):
        raise ValueError(
            f"{source}: a fine-tuned hubert_ctc checkpoint without the pretrained model's config (model.w2v_args is "
            f"empty: fairseq's hubert_pretraining task does not store it), and its model.w2v_path {path!r} is not a "
            f"file; put the pretrained HuBERT checkpoint it was fine-tuned from at that path (only its config is read)")
    state = safe_load(path, map_location="cpu", mmap=True)
    cfg = state.get("cfg") if state.get("cfg") is not None else state.get("args")
    if model_name(cfg) not in HUBERT_MODELS:
        raise ValueError(f"{source}: model.w2v_path {path} is a {model_name(cfg)!r} checkpoint, not a HuBERT one")
    cfg = to_container(as_omegaconf(cfg))
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
    from fairseq.models.wav2vec.wav2vec2_asr import Wav2Vec2CtcConfig  # sew_ctc's config: the same fields

    cfg = state.get("cfg")
    if model_name(cfg) not in HUBERT_CTC_MODELS:
        return state
    model = to_container(cfg["model"])
    if model.get("w2v_args") is None:
        model["w2v_args"] = _pretrained_config(model, source)
    known = set(Wav2Vec2CtcConfig.__dataclass_fields__)
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
