"""What every converter shares: reading plugin checkpoints safely, building our models from their config,
checking state dicts against what a model expects, and writing outputs atomically.

Shapes: B batch, L samples, T frames, D ``encoder_embed_dim``, V letters.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from manifests.atomic import atomic_file

#: registered names of the pretraining models this package converts (ours and the release's)
SEW_MODELS = ("sew", "squeeze_wav2vec2")
SEW_D_MODELS = ("sew_d", "squeeze_wav2vec2_deberta")
#: fairseq's own pretraining models, used as they are (HuBERT through sew_fairseq.models.hubert.HubertBackbone)
FAIRSEQ_FAMILIES = ("wav2vec2", "hubert")
CTC_MODELS = ("sew_ctc", "wav2vec_ctc_v2", "wav2vec_ctc", "hubert_ctc")
#: state-dict prefixes of the fine-tuned (CTC) model: the pretrained model and the output projection
W2V_PREFIX = "w2v_encoder.w2v_model."
PROJ_PREFIX = "w2v_encoder.proj."
#: pretraining heads: present in pretraining checkpoints, absent from HF models and fine-tuned ones
HEAD_PREFIXES = ("quantizer.", "project_q.", "final_proj.", "target_glu.", "input_quantizer.", "project_inp.")
MAX_LISTED = 10


class ConversionError(ValueError):
    """A checkpoint or directory cannot be converted; the message says what does not match."""


def optional_package(name: str, purpose: str, extra: str) -> Any:
    """The optional package ``name`` imported, or :class:`ConversionError` saying which ``sew-fairseq[extra]`` brings
    it (``purpose``: what needs it, e.g. "OpenVINO models need the openvino package")."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ConversionError(f"{purpose} (pip install 'sew-fairseq[{extra}]'): {e}") from None


class Mismatch(NamedTuple):
    missing: List[Tuple[str, Tuple[int, ...]]]  # expected but absent: (name, expected shape)
    unexpected: List[Tuple[str, Tuple[int, ...]]]  # present but not expected: (name, actual shape)
    shapes: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]]  # (name, expected, actual)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)


def compare_state(expected: Mapping[str, torch.Tensor], actual: Mapping[str, torch.Tensor]) -> Mismatch:
    """Names and shapes of ``actual`` against ``expected`` (both name -> tensor)."""
    missing = [(k, tuple(v.shape)) for k, v in expected.items() if k not in actual]
    unexpected = [(k, tuple(v.shape)) for k, v in actual.items() if k not in expected]
    shapes = [(k, tuple(v.shape), tuple(actual[k].shape)) for k, v in expected.items()
              if k in actual and tuple(v.shape) != tuple(actual[k].shape)]
    return Mismatch(missing, unexpected, shapes)


def describe_mismatch(m: Mismatch, source: str, target: str, limit: int = MAX_LISTED) -> str:
    """A readable list of the first ``limit`` mismatching names of each kind."""
    lines = [f"{source} does not match {target}:"]

    def block(title: str, rows: Sequence[str], total: int) -> None:
        if total:
            more = f" (first {limit} of {total})" if total > limit else ""
            lines.append(f"  {title}{more}:")
            lines.extend(f"    {r}" for r in rows[:limit])

    block("shape mismatches (name: expected -> found)",
          [f"{k}: {list(e)} -> {list(a)}" for k, e, a in m.shapes], len(m.shapes))
    block(f"missing from {source} (name: expected shape)", [f"{k}: {list(s)}" for k, s in m.missing], len(m.missing))
    block(f"not expected by {target} (name: shape)", [f"{k}: {list(s)}" for k, s in m.unexpected], len(m.unexpected))
    return "\n".join(lines)


def check_state(expected: Mapping[str, torch.Tensor], actual: Mapping[str, torch.Tensor], source: str,
                target: str) -> None:
    """Raise :class:`ConversionError` listing every difference in names and shapes."""
    m = compare_state(expected, actual)
    if m:
        raise ConversionError(describe_mismatch(m, source, target))


# ---------------------------------------------------------------- reading plugin checkpoints

def load_checkpoint(path: str, mmap: bool = False) -> Dict[str, Any]:
    """A fairseq checkpoint (dict with ``model`` and ``cfg`` or ``args``), loaded by the allow-list loader
    (``mmap``: tensors memory-mapped, read only when used)."""
    from .safe_load import safe_load

    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such checkpoint file")
    state = safe_load(path, map_location="cpu", mmap=mmap)
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        keys = sorted(state)[:MAX_LISTED] if isinstance(state, dict) else type(state).__name__
        raise ConversionError(f"{path} is not a fairseq checkpoint: expected a dict with 'model' (a state dict) and "
                              f"'cfg' or 'args', found {keys}")
    return state


def checkpoint_cfg(state: Mapping[str, Any], path: str) -> DictConfig:
    """The checkpoint's config as a DictConfig (``cfg``, or legacy argparse ``args`` converted)."""
    if state.get("cfg") is not None:
        cfg = state["cfg"]
        return cfg.copy() if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
    if state.get("args") is not None:
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf

        return convert_namespace_to_omegaconf(state["args"])
    raise ConversionError(f"{path} has no 'cfg' nor 'args': not a checkpoint written by fairseq")


def to_plain(cfg: Any) -> Any:
    """A DictConfig / ListConfig as plain containers (what fairseq-fixed writes into checkpoints)."""
    if isinstance(cfg, (DictConfig,)) or OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return cfg


def model_family(name: str, path: str) -> str:
    """``"sew"``, ``"sew_d"``, ``"wav2vec2"`` or ``"hubert"`` for a pretraining model name; a clear error otherwise."""
    if name in SEW_MODELS:
        return "sew"
    if name in SEW_D_MODELS:
        return "sew_d"
    if name in FAIRSEQ_FAMILIES:
        return name
    raise ConversionError(f"{path}: model '{name}' is not SEW, SEW-D, wav2vec 2.0 or HuBERT (expected one of "
                          f"{', '.join(SEW_MODELS + SEW_D_MODELS + FAIRSEQ_FAMILIES + CTC_MODELS)})")


def pretraining_config(model_cfg: Mapping[str, Any], path: str):
    """The structured model config (``sew`` / ``sew_d`` / fairseq ``wav2vec2`` / ``hubert`` dataclass) of a
    checkpoint's ``cfg.model``.

    Keys the dataclass does not know are an error (the release's extra fields are translated by
    :mod:`sew_fairseq.checkpoints.original` before they get here)."""
    from fairseq.models import MODEL_DATACLASS_REGISTRY


    values = dict(to_plain(model_cfg))
    family = model_family(values.get("_name"), path)
    dc = MODEL_DATACLASS_REGISTRY[family]
    known = set(dc.__dataclass_fields__)
    unknown = sorted(k for k in values if k not in known and k != "_name")
    if unknown:
        raise ConversionError(f"{path}: model config fields unknown to this plugin's '{family}': "
                              f"{unknown[:MAX_LISTED]}")
    values["_name"] = family
    for key in ("data", "normalize"):  # II("task.*") interpolations resolved at save time; keep what we have
        if key in values and values[key] is None:
            values.pop(key)
    if family == "hubert" and not isinstance(values.get("label_rate"), (int, float)):
        values["label_rate"] = HUBERT_LABEL_RATE  # II("task.label_rate"); only sizes pretraining targets
    from ..models.w2v2_mlp import resolve_conv_layers

    cfg = OmegaConf.merge(OmegaConf.structured(dc()), values)
    with open_dict(cfg):
        cfg._name = family
    if family not in FAIRSEQ_FAMILIES:
        resolve_conv_layers(cfg)  # wfe_type C/O -> the explicit conv_feature_layers it builds (wfe_type custom)
    return cfg


#: HuBERT's label rate (Hz) where a config does not say: 50, the rate of its extractor's frames
HUBERT_LABEL_RATE = 50.0


def pretraining_task_cfg(family: str, data: str, normalize: bool) -> Dict[str, Any]:
    """The plain ``cfg.task`` a pretrained model of ``family`` is saved with: fairseq's ``audio_pretraining``, or
    ``hubert_pretraining`` for HuBERT (one label set, ``km``; its dictionaries are not stored, see
    :func:`pretraining_task_state`)."""
    if family == "hubert":
        return {"_name": "hubert_pretraining", "data": data, "labels": ["km"], "label_rate": HUBERT_LABEL_RATE,
                "sample_rate": 16000, "normalize": normalize}
    return {"_name": "audio_pretraining", "data": data, "normalize": normalize}


def pretraining_task_state(family: str) -> Optional[Dict[str, Any]]:
    """``task_state`` of a pretrained ``family`` checkpoint: for HuBERT ``{"dictionaries": [None]}`` (no label
    dictionary: fairseq's ``HubertModel`` is then built without its label embeddings, its fine-tuning path)."""
    return {"dictionaries": [None]} if family == "hubert" else None


def build_pretraining_model(cfg) -> torch.nn.Module:
    """The pretraining model (random weights) of a structured config from :func:`pretraining_config`."""
    from fairseq.models import ARCH_MODEL_REGISTRY

    try:
        if cfg._name == "hubert":
            from ..models.hubert import HubertBackbone

            return HubertBackbone.build(cfg, pretraining_task_cfg("hubert", "", False))
        return ARCH_MODEL_REGISTRY[cfg._name].build_model(cfg.copy())
    except ValueError as e:  # an option value the plugin does not implement (the models name it)
        raise ConversionError(str(e)) from None


class PluginCheckpoint(NamedTuple):
    """The parts of a plugin checkpoint a converter needs."""

    family: str  # "sew", "sew_d", "wav2vec2" or "hubert"
    model_cfg: Any  # structured config of the pretraining model
    encoder_state: Dict[str, torch.Tensor]  # the pretraining model's state (heads included when present)
    proj: Optional[Dict[str, torch.Tensor]]  # CTC output projection {"weight": [V, D], "bias": [V]}, or None
    dictionary: Any  # fairseq Dictionary of a CTC checkpoint, or None
    cfg: DictConfig  # the whole checkpoint config
    normalize: bool  # whether the model expects per-utterance normalised audio (task.normalize)


def read_plugin_checkpoint(path: str) -> PluginCheckpoint:
    """Split a plugin checkpoint (pretrained ``sew`` / ``sew_d`` / ``wav2vec2`` / ``hubert``, or a fine-tuned
    ``sew_ctc`` or fairseq ``wav2vec_ctc`` / ``hubert_ctc``) into its parts."""
    from .hubert_ctc import as_sew_ctc

    try:
        state = as_sew_ctc(load_checkpoint(path), path)  # fairseq hubert_ctc: the same weights under sew_ctc
    except ValueError as e:
        raise ConversionError(str(e)) from None
    cfg = checkpoint_cfg(state, path)
    if "model" not in cfg or cfg.model is None or "_name" not in cfg.model:
        raise ConversionError(f"{path}: its config has no model section with a _name")
    name = cfg.model._name
    weights = state["model"]
    if name in CTC_MODELS:
        w2v_args = cfg.model.get("w2v_args")
        if w2v_args is None:
            raise ConversionError(
                f"{path}: fine-tuned checkpoint without the pretrained model's config (model.w2v_args); "
                f"convert it with `sew-convert from-original {path} OUT.pt --w2v-config PRETRAINED.pt` first")
        model_cfg = pretraining_config(w2v_args.model, path)
        encoder_state = {k[len(W2V_PREFIX):]: v for k, v in weights.items() if k.startswith(W2V_PREFIX)}
        proj = {k[len(PROJ_PREFIX):]: v for k, v in weights.items() if k.startswith(PROJ_PREFIX)}
        other = sorted(k for k in weights if not k.startswith(W2V_PREFIX) and not k.startswith(PROJ_PREFIX))
        if other:
            raise ConversionError(f"{path}: unexpected weights in a CTC checkpoint: {other[:MAX_LISTED]}")
        if not proj:
            raise ConversionError(f"{path}: CTC checkpoint without the output projection {PROJ_PREFIX}*")
        dim = model_cfg.encoder_embed_dim
        weight, bias = proj.get("weight"), proj.get("bias")
        if (weight is None or bias is None or weight.dim() != 2 or weight.shape[1] != dim
                or bias.shape != weight.shape[:1]):
            shapes = {k: list(v.shape) for k, v in proj.items()}
            raise ConversionError(f"{path}: output projection {PROJ_PREFIX}* is {shapes}; expected weight [V, {dim}] "
                                  f"and bias [V]")
        dictionary = (state.get("task_state") or {}).get("target_dictionary")
        if dictionary is None:
            raise ConversionError(f"{path}: CTC checkpoint without its letter dictionary "
                                  f"(task_state.target_dictionary)")
        normalize = bool(cfg.task.get("normalize", False)) if "task" in cfg else False
        return PluginCheckpoint(model_family(model_cfg._name, path), model_cfg, encoder_state, proj, dictionary, cfg,
                                normalize)
    model_cfg = pretraining_config(cfg.model, path)
    normalize = bool(cfg.task.get("normalize", False)) if "task" in cfg and cfg.task is not None else False
    family = model_family(model_cfg._name, path)
    if family == "hubert":  # label embeddings: pretraining only, sized by label dictionaries nothing else uses
        from ..models.hubert import HUBERT_PRETRAINING_ONLY

        weights = {k: v for k, v in weights.items() if k not in HUBERT_PRETRAINING_ONLY}
    return PluginCheckpoint(family, model_cfg, dict(weights), None, None, cfg, normalize)


def build_encoder(ckpt: PluginCheckpoint, path: str) -> torch.nn.Module:
    """Our pretraining model with the checkpoint's weights (heads removed when the checkpoint has none), eval mode."""
    model = build_pretraining_model(ckpt.model_cfg)
    has_heads = any(k.startswith(HEAD_PREFIXES) for k in ckpt.encoder_state)
    if not has_heads:
        model.remove_pretraining_modules()
    check_state(model.state_dict(), ckpt.encoder_state, path, f"this plugin's '{ckpt.family}' model of its config")
    model.load_state_dict(ckpt.encoder_state, strict=True)
    return model.eval()


# ---------------------------------------------------------------- writing checkpoints

def finetuning_cfg(model_cfg, normalize: bool, data: str, source: str,
                   ctc_overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The plain ``cfg`` of a ``sew_ctc`` checkpoint whose pretrained model is ``model_cfg`` (embedded as w2v_args).

    ``source`` (what it was converted from) fills ``model.w2v_path``, which fairseq never reads when w2v_args
    is present."""
    from ..models.sew_ctc import SEWCtcConfig

    pre = to_plain(model_cfg)
    w2v_args = {"model": pre, "task": pretraining_task_cfg(model_family(pre["_name"], source), data, normalize),
                "criterion": None, "lr_scheduler": None}
    # the dataclass defaults, with its interpolations (${task.data}, ...) filled in as a trained checkpoint has them
    model = OmegaConf.to_container(OmegaConf.structured(SEWCtcConfig()), resolve=False, enum_to_str=True)
    fills = {"data": data, "normalize": normalize, "ddp_backend": "legacy_ddp"}
    for key, value in model.items():
        if isinstance(value, str) and value.startswith("${"):
            model[key] = fills[key]
    model.update(_name="sew_ctc", w2v_path=source, **(ctc_overrides or {}))
    model["w2v_args"] = w2v_args
    task = {"_name": "audio_finetuning", "data": data, "labels": "ltr", "normalize": normalize}
    return {"_name": None, "model": model, "task": task, "criterion": {"_name": "ctc"}}


def pretraining_cfg(model_cfg, normalize: bool, data: str) -> Dict[str, Any]:
    """The plain ``cfg`` of a pretrained checkpoint (``sew`` / ``sew_d`` / ``wav2vec2`` / ``hubert``)."""
    plain = to_plain(model_cfg)
    return {"_name": None, "model": plain,
            "task": pretraining_task_cfg(model_family(plain["_name"], "model config"), data, normalize),
            "criterion": None, "lr_scheduler": None}


def checkpoint_dict(cfg: Dict[str, Any], weights: Mapping[str, torch.Tensor], dictionary: Any = None,
                    task_state: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """A fairseq checkpoint dict as ``fairseq-hydra-train`` writes it (no optimizer state); ``task_state`` is
    ``{"target_dictionary": dictionary}`` when a dictionary is given."""
    state: Dict[str, Any] = {"args": None, "cfg": cfg, "model": {k: v.detach().clone().contiguous()
                                                                    for k, v in weights.items()},
                             "last_optimizer_state": None, "extra_state": {},
                             # fairseq's loader reads the last entry: a converted model has had no update here
                             "optimizer_history": [{"criterion_name": "converted", "optimizer_name": "none",
                                                    "lr_scheduler_state": {"best": None}, "num_updates": 0}]}
    if dictionary is not None:
        state["task_state"] = {"target_dictionary": dictionary}
    elif task_state is not None:
        state["task_state"] = dict(task_state)
    return state


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` to ``path`` through :func:`atomic_file`."""
    with atomic_file(path, ".pt") as tmp:
        torch.save(obj, tmp)


def parse_dictionary(path: str):
    """A fairseq letter dictionary (``dict.ltr.txt``: ``symbol count`` lines)."""
    from fairseq.data import Dictionary

    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such dictionary file")
    try:
        return Dictionary.load(path)
    except (ValueError, RuntimeError) as e:
        raise ConversionError(f"{path}: not a fairseq dictionary ('symbol count' per line): {e}") from None
