"""Checkpoints of the original SEW release (github.com/asappresearch/sew, fairseq commit 05255f9) -> plugin checkpoints.

What the release writes (read from its code; no released file is available offline, so the tests build
checkpoints of this layout from random weights):

* pretrained: ``cfg.model._name`` ``squeeze_wav2vec2`` (SEW) or ``squeeze_wav2vec2_deberta`` (SEW-D), the
  fields of its ``SqueezeWav2Vec2(Deberta)Config`` (fairseq's wav2vec 2.0 fields, ``squeeze_factor``,
  ``squeeze_method``, the MLP head fields, DeBERTa's ``position_buckets`` / ``max_position_embeddings`` /
  ``max_relative_positions`` / ``share_att_key`` / ``pos_att_type`` / ``norm_rel_ebd`` / ...; WFE-C or WFE-O
  spelled out in ``conv_feature_layers``) plus release-only fields (spectrogram front ends, ``fbank_dim``,
  ``cross_layer_param_share``, ...); ``cfg.task._name`` ``audio_pretraining_features``. Parameter names are
  this plugin's (the release's SqueezeWav2Vec2 / SqueezeWav2Vec2Deberta modules), so weights are copied unchanged and
  checked strictly.
* fine-tuned (100h): ``cfg.model._name`` ``wav2vec_ctc_v2`` with weights under ``w2v_encoder.w2v_model.*`` and
  ``w2v_encoder.proj``, ``cfg.task`` fairseq's ``audio_pretraining`` with ``labels: ltr``. Its
  ``cfg.model.w2v_args`` is empty (a bug the release's ``tools/add_w2v_args_to_ckpt.py`` patches by copying the
  pretrained checkpoint's ``cfg``), so the pretrained config comes from ``--w2v-config`` (the pretrained .pt,
  or a yaml/json of its model config) or ``--preset``. The letter dictionary comes from the checkpoint's
  ``task_state`` when it is there, else from ``--dict`` (``dict.ltr.txt``).

``cfg`` is read as a plain dict or as a pickled OmegaConf DictConfig (the allow-list loader accepts both).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Mapping, Optional

from omegaconf import OmegaConf

from .plugin import (CTC_MODELS, HEAD_PREFIXES, PROJ_PREFIX, W2V_PREFIX, ConversionError, atomic_save,
                     build_pretraining_model, check_state, checkpoint_cfg, checkpoint_dict, finetuning_cfg,
                     load_checkpoint, parse_dictionary, pretraining_cfg, pretraining_config, to_plain)

logger = logging.getLogger(__name__)

ORIGINAL_NAMES = {"squeeze_wav2vec2": "sew", "squeeze_wav2vec2_deberta": "sew_d", "sew": "sew", "sew_d": "sew_d"}

#: release-only model fields and the values under which they change nothing this plugin builds
#: (a callable says whether a value is neutral); other values are refused
RELEASE_ONLY_NEUTRAL: Dict[str, Any] = {
    "spec_feature_only": False, "fbank_dim": 0, "mfcc_dim": 0, "feature_extractor_type": "default",
    "share_final_proj": False, "final_proj_momentum": lambda v: v is None or float(v) < 0,
    "cross_layer_param_share": False, "encoder_input_embed_dim": None,  # checked against encoder_embed_dim below
    "conv_flatten_dim": None,
}
#: release-only fields that only configure what the neutral values above switch off
RELEASE_ONLY_IGNORED = {"conv_hidden_sizes", "conv_kernel_sizes", "conv_strides", "conv_exp_ratios", "conv_use_pad",
                        "subsample_type", "conv_norm_type", "conv_act_type", "conv_kaiming_init", "chunk_mode"}
#: release-only fields of the fine-tuned model (``Wav2Vec2CtcV2Config``)
CTC_RELEASE_NEUTRAL: Dict[str, Any] = {"output_upsample": 0, "drop_upsample_layers": 0}
CTC_RELEASE_IGNORED = {"chunk_mode"}


def _neutral(value: Any, rule: Any) -> bool:
    return rule(value) if callable(rule) else value == rule


def translate_model_config(model: Mapping[str, Any], source: str):
    """Our structured ``sew`` / ``sew_d`` config of a release ``cfg.model`` (clear error for what we lack)."""
    from fairseq.models import MODEL_DATACLASS_REGISTRY

    values = dict(to_plain(model))
    name = values.get("_name")
    if name not in ORIGINAL_NAMES:
        raise ConversionError(f"{source}: model '{name}' is not a SEW / SEW-D model of the release "
                              f"(expected squeeze_wav2vec2 or squeeze_wav2vec2_deberta, or a fine-tuned "
                              f"{' / '.join(CTC_MODELS)})")
    family = ORIGINAL_NAMES[name]
    known = set(MODEL_DATACLASS_REGISTRY[family].__dataclass_fields__)
    dim = values.get("encoder_embed_dim", 768)
    refused, dropped = [], []
    for key in sorted(set(values) - known - {"_name"}):
        value = values.pop(key)
        if key in ("encoder_input_embed_dim", "conv_flatten_dim"):
            ok = value is None or int(value) <= 0 or int(value) == dim or key == "conv_flatten_dim"
        elif key in RELEASE_ONLY_NEUTRAL:
            ok = _neutral(value, RELEASE_ONLY_NEUTRAL[key])
        else:
            ok = True
            if key not in RELEASE_ONLY_IGNORED:
                dropped.append(key)
        if not ok:
            refused.append(f"{key}={value!r}")
    if refused:
        raise ConversionError(f"{source}: release options this plugin does not implement: {', '.join(refused)}")
    if dropped:
        logger.warning("%s: model config fields unknown to this plugin, ignored: %s", source, ", ".join(dropped))
    for key in ("data", "normalize"):  # interpolations of the task (II("task.*")) in some configs
        if isinstance(values.get(key), str) and str(values[key]).startswith("${"):
            values.pop(key)
    values["_name"] = family
    try:
        return pretraining_config(values, source)
    except ConversionError:
        raise
    except Exception as e:  # omegaconf validation: a field of the wrong type
        raise ConversionError(f"{source}: model config does not fit this plugin's '{family}': {e}") from None


def load_w2v_config(spec: str):
    """The pretrained model config of ``--w2v-config``: a checkpoint (.pt), or a yaml/json of ``cfg`` or
    ``cfg.model``."""
    if not os.path.isfile(spec):
        raise ConversionError(f"--w2v-config {spec}: no such file")
    if spec.endswith((".yaml", ".yml")):
        cfg = OmegaConf.load(spec)
    elif spec.endswith(".json"):
        with open(spec, encoding="utf-8") as f:
            cfg = OmegaConf.create(json.load(f))
    else:
        cfg = checkpoint_cfg(load_checkpoint(spec), spec)
    model = cfg.model if "model" in cfg and cfg.model is not None and "_name" in cfg.model else cfg
    if "_name" not in model:
        raise ConversionError(f"--w2v-config {spec}: no model config with a _name (give the pretrained checkpoint, or "
                              f"a yaml/json holding its cfg.model)")
    return translate_model_config(model, spec)


def preset_model_config(name: str, source: str):
    from ..models.presets import PRESETS, preset_config

    if name not in PRESETS or PRESETS[name].model not in ("sew", "sew_d"):
        choices = [p for p, v in PRESETS.items() if v.model in ("sew", "sew_d")]
        raise ConversionError(f"--preset {name}: choose one of {', '.join(choices)}")
    return preset_config(name)


def _ctc_overrides(model: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """The fine-tuning fields of a release ``wav2vec_ctc_v2`` config that our ``sew_ctc`` keeps."""
    from ..models.sew_ctc import SEWCtcConfig

    values = dict(to_plain(model))
    refused = [f"{k}={values[k]!r}" for k,
               rule in CTC_RELEASE_NEUTRAL.items() if k in values and not _neutral(values[k], rule)]
    if refused:
        raise ConversionError(f"{source}: fine-tuning options this plugin does not implement: {', '.join(refused)}")
    known = set(SEWCtcConfig.__dataclass_fields__)
    skip = {"_name", "w2v_args", "w2v_path", "data", "normalize", "ddp_backend"}
    return {k: v for k,
            v in values.items() if k in known and k not in skip and not (isinstance(v, str) and v.startswith("${"))}


def from_original(checkpoint: str, out: str, w2v_config: Optional[str] = None, preset: Optional[str] = None,
                  dictionary: Optional[str] = None) -> str:
    """Release checkpoint (pretrained or fine-tuned) -> plugin checkpoint at ``out``; nothing written on failure."""
    state = load_checkpoint(checkpoint)
    cfg = checkpoint_cfg(state, checkpoint)
    if "model" not in cfg or cfg.model is None or "_name" not in cfg.model:
        raise ConversionError(f"{checkpoint}: its config has no model section with a _name")
    weights = state["model"]
    name = cfg.model._name
    task = cfg.get("task") or {}
    normalize = bool(task.get("normalize", False))
    data = os.path.dirname(os.path.abspath(out))

    if name not in CTC_MODELS:  # pretrained
        if w2v_config or preset:
            logger.warning("%s is a pretrained checkpoint with its own config: --w2v-config/--preset ignored",
                           checkpoint)
        model_cfg = translate_model_config(cfg.model, checkpoint)
        model = build_pretraining_model(model_cfg)
        if not any(k.startswith(HEAD_PREFIXES) for k in weights):
            model.remove_pretraining_modules()
        check_state(model.state_dict(), weights, checkpoint, f"this plugin's '{model_cfg._name}' model of its config")
        model.load_state_dict(weights, strict=True)
        atomic_save(checkpoint_dict(pretraining_cfg(model_cfg, normalize, data), weights), out)
        return out

    # fine-tuned CTC
    w2v_args = cfg.model.get("w2v_args")
    if w2v_args is not None and "model" in w2v_args:
        if w2v_config or preset:
            logger.warning("%s holds its pretrained config (w2v_args): --w2v-config/--preset ignored", checkpoint)
        model_cfg = translate_model_config(w2v_args.model, checkpoint)
        normalize = bool((w2v_args.get("task") or {}).get("normalize", normalize))
    elif w2v_config:
        model_cfg = load_w2v_config(w2v_config)
    elif preset:
        model_cfg = preset_model_config(preset, checkpoint)
    else:
        raise ConversionError(f"{checkpoint}: a fine-tuned checkpoint without the pretrained model's config "
                              f"(model.w2v_args is empty, as in the release's 100h models); pass --w2v-config "
                              f"PRETRAINED.pt (or a yaml/json of its cfg.model) or --preset NAME")
    inner = {k[len(W2V_PREFIX):]: v for k, v in weights.items() if k.startswith(W2V_PREFIX)}
    proj = {k[len(PROJ_PREFIX):]: v for k, v in weights.items() if k.startswith(PROJ_PREFIX)}
    other = sorted(set(weights) - {W2V_PREFIX + k for k in inner} - {PROJ_PREFIX + k for k in proj})
    if other or not proj:
        raise ConversionError(f"{checkpoint}: a CTC checkpoint holds {W2V_PREFIX}* and {PROJ_PREFIX}*; "
                              + (f"found also {other[:10]}" if other else f"no {PROJ_PREFIX}*"))
    model = build_pretraining_model(model_cfg)
    model.remove_pretraining_modules()
    check_state(model.state_dict(), inner, f"{checkpoint} ({W2V_PREFIX}*)",
                f"this plugin's '{model_cfg._name}' model of the pretrained config")
    dim = model_cfg.encoder_embed_dim
    if proj.get("weight") is None or proj["weight"].dim() != 2 or proj["weight"].shape[1] != dim:
        shape = list(proj["weight"].shape) if proj.get("weight") is not None else None
        raise ConversionError(f"{checkpoint}: {PROJ_PREFIX}weight is {shape}; expected [letters, {dim}]")
    vocab = int(proj["weight"].shape[0])
    target = (state.get("task_state") or {}).get("target_dictionary")
    if dictionary is not None:
        target = parse_dictionary(dictionary)
    if target is None:
        raise ConversionError(f"{checkpoint}: no letter dictionary in the checkpoint (task_state); pass --dict "
                              f"dict.ltr.txt (the fine-tuning data's)")
    if len(target) != vocab:
        raise ConversionError(f"{dictionary or checkpoint}: the dictionary has {len(target)} symbols, "
                              f"{PROJ_PREFIX}weight has {vocab} rows")
    out_cfg = finetuning_cfg(model_cfg, normalize, data, os.path.abspath(checkpoint),
                             _ctc_overrides(cfg.model, checkpoint))
    atomic_save(checkpoint_dict(out_cfg, weights, target), out)
    return out
