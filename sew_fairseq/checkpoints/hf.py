"""Hugging Face transformers' SEW / SEW-D, wav2vec 2.0 and HuBERT ports, both ways: ``to_hf`` (plugin checkpoint
-> ``save_pretrained`` directory with processor files) and ``from_hf`` (such a directory -> plugin checkpoint).

One table, :data:`HF_TO_OURS`, maps HF parameter names to ours (the original release's, which are fairseq's: SEW
and SEW-D become this plugin's models, wav2vec 2.0 and HuBERT fairseq's own, see :mod:`.hf_wav2vec2`); ours -> HF
is derived from it by renaming the keys of the HF model built from the translated config, so the two directions
cannot drift. Every conversion is checked name by name and shape by shape before anything is written.

Vocabulary: fairseq's letter dictionary starts ``<s>`` (CTC blank), ``<pad>``, ``</s>``, ``<unk>``; HF's CTC
tokenizer takes its *pad* token as the blank, so ``vocab.json`` swaps the names of ids 0 and 1
(``<pad>`` = 0 = blank, ``<s>`` = 1), as transformers' own SEW converters do; the rows of the output
projection are not reordered. ``|`` is the word delimiter.

Padding semantics differ from HF's (documented in README "Checkpoint conversion"): on a padded batch our
first-block GroupNorm takes statistics over each utterance's own frames and upsampled frames that come from
squeezed padding are zeroed, so each utterance gives what it gives alone; HF's GroupNorm ("group" extractor)
normalises over the padded length and it has no such zeroing. Single utterances and batches of equal lengths
agree to float precision.
"""
from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from manifests.atomic import atomic_directory

from .plugin import (FAIRSEQ_FAMILIES, HEAD_PREFIXES, PROJ_PREFIX, W2V_PREFIX, ConversionError, PluginCheckpoint,
                     atomic_save, build_encoder, build_pretraining_model, check_state, checkpoint_dict,
                     finetuning_cfg, optional_package, pretraining_cfg, pretraining_task_state, read_plugin_checkpoint)

logger = logging.getLogger(__name__)

# HF name -> our (original release) name, applied in order, first match wins; unmatched names are kept.
# The extractor's norms depend on its mode: group mode = GroupNorm in block 0 only (``conv_layers.0.2``);
# layer mode = LayerNorm in every block inside fairseq's Sequential(TransposeLast, LayerNorm, TransposeLast)
# (``conv_layers.N.2.1``).
EXTRACTOR_NORM: Dict[bool, Tuple[str, str]] = {
    False: (r"^feature_extractor\.conv_layers\.0\.layer_norm\.", "feature_extractor.conv_layers.0.2."),
    True: (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"feature_extractor.conv_layers.\1.2.1."),
}
HF_TO_OURS: List[Tuple[str, str]] = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    # wav2vec 2.0 / HuBERT: the features' LayerNorm and projection (SEW: the projection alone, a Linear)
    (r"^feature_projection\.layer_norm\.", "layer_norm."),
    (r"^feature_projection\.projection\.", "post_extract_proj."),
    (r"^feature_projection\.", "post_extract_proj."),
    (r"^masked_spec_embed$", "mask_emb"),
    (r"^encoder\.pos_conv_embed\.conv\.(?:parametrizations\.weight\.original0|weight_g)$",
     "encoder.pos_conv.0.weight_g"),
    (r"^encoder\.pos_conv_embed\.conv\.(?:parametrizations\.weight\.original1|weight_v)$",
     "encoder.pos_conv.0.weight_v"),
    (r"^encoder\.pos_conv_embed\.conv\.bias$", "encoder.pos_conv.0.bias"),
    (r"^encoder\.upsample\.projection\.", "encoder.upsample.0."),
    # SEW, wav2vec 2.0 and HuBERT layers: fairseq TransformerSentenceEncoderLayer names
    (r"^encoder\.layers\.(\d+)\.attention\.(q|k|v|out)_proj\.", r"encoder.layers.\1.self_attn.\2_proj."),
    (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
    # kept as is: layer_norm.* (SEW), encoder.layer_norm.*, encoder.layers.N.final_layer_norm.*, encoder.encoder.*
    # (SEW-D)
]
#: family -> (transformers base class, CTC class, attribute of the base model inside the CTC class)
HF_CLASSES: Dict[str, Tuple[str, str, str]] = {
    "sew": ("SEWModel", "SEWForCTC", "sew"), "sew_d": ("SEWDModel", "SEWDForCTC", "sew_d"),
    "wav2vec2": ("Wav2Vec2Model", "Wav2Vec2ForCTC", "wav2vec2"), "hubert": ("HubertModel", "HubertForCTC", "hubert"),
}
HF_CTC_HEAD = "lm_head."


def to_ours(name: str, layer_mode: bool) -> str:
    """Our name of HF base-model parameter ``name``."""
    for pattern, repl in [EXTRACTOR_NORM[layer_mode]] + HF_TO_OURS:
        new, n = re.subn(pattern, repl, name)
        if n:
            return new
    return name


def hf_to_ours_state(hf_state: Mapping[str, torch.Tensor], layer_mode: bool) -> Dict[str, torch.Tensor]:
    """Rename an HF base-model state dict to our names (the inverse is :func:`ours_to_hf_state`)."""
    out: Dict[str, torch.Tensor] = {}
    for k, v in hf_state.items():
        new = to_ours(k, layer_mode)
        if new in out:
            raise ConversionError(f"two HF parameters map to {new}")
        out[new] = v
    return out


def _transformers():
    return optional_package("transformers", "Hugging Face conversion needs transformers", "hf")


# ---------------------------------------------------------------- configs

def hf_config(family: str, model_cfg, ctc: Optional[Mapping[str, Any]] = None):
    """The transformers config (``SEWConfig``, ``SEWDConfig``, ``Wav2Vec2Config``, ``HubertConfig``) of a structured
    model config.

    ``ctc``: for a CTC model, ``{"vocab_size", "final_dropout", "mask_prob", ...}`` from the fine-tuning config."""
    from ..modules.feature_extractor import parse_conv_layers

    transformers = _transformers()
    if family in FAIRSEQ_FAMILIES:
        from . import hf_wav2vec2

        return hf_wav2vec2.hf_config(family, model_cfg, ctc)
    c = model_cfg
    if c.layer_norm_first:
        raise ConversionError("layer_norm_first=true (pre-LN) has no equivalent in transformers' SEW")
    layers = parse_conv_layers(c.conv_feature_layers)
    act = str(c.activation_fn)
    common = dict(
        hidden_size=c.encoder_embed_dim, num_hidden_layers=c.encoder_layers,
        num_attention_heads=c.encoder_attention_heads,
        intermediate_size=c.encoder_ffn_embed_dim, squeeze_factor=c.squeeze_factor,
        num_conv_pos_embeddings=c.conv_pos, num_conv_pos_embedding_groups=c.conv_pos_groups,
        conv_dim=[d for d, _, _ in layers], conv_kernel=[k for _, k, _ in layers], conv_stride=[s for _, _,
                                                                                                s in layers],
        conv_bias=bool(c.conv_bias), feat_extract_norm="layer" if c.extractor_mode == "layer_norm" else "group",
        feat_extract_activation="gelu", hidden_act=act, hidden_dropout=c.dropout, attention_dropout=c.attention_dropout,
        activation_dropout=c.activation_dropout, feat_proj_dropout=c.dropout_input, layerdrop=c.encoder_layerdrop,
        mask_time_prob=c.mask_prob, mask_time_length=c.mask_length, mask_feature_prob=c.mask_channel_prob,
        mask_feature_length=c.mask_channel_length, apply_spec_augment=c.mask_prob > 0 or c.mask_channel_prob > 0,
        feature_extractor_type="Wav2Vec2FeatureExtractor", tokenizer_class="Wav2Vec2CTCTokenizer",
    )
    if ctc:
        common.update(ctc)
    if family == "sew":
        cfg = transformers.SEWConfig(layer_norm_eps=1e-5, **common)
        cfg.architectures = ["SEWForCTC" if ctc else "SEWModel"]
    else:
        if act != "gelu":
            raise ConversionError(f"activation_fn={act}: SEW-D layers use gelu")
        common["hidden_act"] = "gelu_python"  # the erf GELU, as ours (HF's "gelu" is the same function)
        cfg = transformers.SEWDConfig(
            layer_norm_eps=c.layer_norm_eps, feature_layer_norm_eps=1e-5, position_buckets=c.position_buckets,
            max_position_embeddings=c.max_position_embeddings, share_att_key=c.share_att_key,
            relative_attention=c.relative_attention, position_biased_input=c.position_biased_input,
            pos_att_type=c.pos_att_type.split("|"), norm_rel_ebd=c.norm_rel_ebd, initializer_range=c.initializer_range,
            **common)
        if c.max_relative_positions > 0:
            cfg.max_relative_positions = c.max_relative_positions
        cfg.architectures = ["SEWDForCTC" if ctc else "SEWDModel"]
    return cfg


def _get(config, name: str, default: Any) -> Any:
    return getattr(config, name, default)


def our_config(config, source: str):
    """(family, our structured model config) of a transformers SEW / SEW-D / wav2vec 2.0 / HuBERT config; clear
    errors for what we lack."""
    from ..modules.feature_extractor import format_conv_layers
    from . import hf_wav2vec2
    from .plugin import pretraining_config

    kind = _get(config, "model_type", None)
    if kind in hf_wav2vec2.HF_MODEL_TYPES:
        return hf_wav2vec2.our_config(config, source)
    if kind not in ("sew", "sew-d"):
        raise ConversionError(f"{source}: config.json model_type={kind!r}; expected one of 'sew', 'sew-d', "
                              f"{', '.join(repr(k) for k in hf_wav2vec2.HF_MODEL_TYPES)}")
    family = "sew" if kind == "sew" else "sew_d"
    problems = []
    if _get(config, "feat_extract_activation", "gelu") != "gelu":
        problems.append(f"feat_extract_activation={config.feat_extract_activation!r} (only 'gelu')")
    if len(config.conv_dim) != len(config.conv_kernel) or len(config.conv_dim) != len(config.conv_stride):
        problems.append("conv_dim / conv_kernel / conv_stride lengths differ")
    act = config.hidden_act
    if family == "sew_d":
        if act not in ("gelu", "gelu_python"):
            problems.append(f"hidden_act={act!r} (SEW-D layers: gelu)")
        act = "gelu"
        if abs(_get(config, "feature_layer_norm_eps", 1e-5) - 1e-5) > 1e-12:
            problems.append(f"feature_layer_norm_eps={config.feature_layer_norm_eps} (only 1e-5)")
        for name, supported in (("share_att_key", True), ("relative_attention", True), ("position_biased_input", False),
                                ("norm_rel_ebd", "layer_norm")):
            if _get(config, name, supported) != supported:
                problems.append(f"{name}={getattr(config, name)!r} (only {supported!r})")
        if sorted(_get(config, "pos_att_type", ["p2c", "c2p"])) != ["c2p", "p2c"]:
            problems.append(f"pos_att_type={config.pos_att_type!r} (only p2c and c2p)")
    elif abs(config.layer_norm_eps - 1e-5) > 1e-12:
        problems.append(f"layer_norm_eps={config.layer_norm_eps} (SEW's fairseq LayerNorms use 1e-5)")
    if problems:
        raise ConversionError(f"{source}: config.json settings this plugin does not implement: " + "; ".join(problems))
    layers = list(zip(config.conv_dim, config.conv_kernel, config.conv_stride))
    values: Dict[str, Any] = dict(
        _name=family, encoder_layers=config.num_hidden_layers, encoder_embed_dim=config.hidden_size,
        encoder_ffn_embed_dim=config.intermediate_size, encoder_attention_heads=config.num_attention_heads,
        squeeze_factor=config.squeeze_factor, conv_pos=config.num_conv_pos_embeddings,
        conv_pos_groups=config.num_conv_pos_embedding_groups, conv_feature_layers=format_conv_layers(layers),
        conv_bias=bool(config.conv_bias),
        extractor_mode="layer_norm" if config.feat_extract_norm == "layer" else "default",
        activation_fn=act, dropout=config.hidden_dropout, attention_dropout=config.attention_dropout,
        activation_dropout=config.activation_dropout, dropout_input=config.feat_proj_dropout,
        encoder_layerdrop=_get(config, "layerdrop", 0.0), mask_prob=config.mask_time_prob,
        mask_length=config.mask_time_length, mask_channel_prob=config.mask_feature_prob,
        mask_channel_length=config.mask_feature_length, wfe_type="custom",
        # no pretraining heads in HF: small linear-free placeholders that fine-tuning removes
        quantize_targets=False, final_dim=0,
    )
    if family == "sew_d":
        values.update(layer_norm_eps=config.layer_norm_eps, position_buckets=config.position_buckets,
                      max_position_embeddings=config.max_position_embeddings,
                      max_relative_positions=_get(config, "max_relative_positions", -1),
                      initializer_range=config.initializer_range)
    return family, pretraining_config(values, source)


# ---------------------------------------------------------------- plugin -> HF (in memory and on disk)

def hf_model_for(ckpt: PluginCheckpoint, ctc_extra: Optional[Mapping[str, Any]] = None,
                 attn_implementation: Optional[str] = "eager"):
    """The transformers model holding the checkpoint's weights (eval mode), built in memory.

    ``attn_implementation``: "eager" (the reference maths; what the saved config.json says), or None for
    transformers' default kernel.

    Raises ConversionError listing every name / shape that does not match before loading anything."""
    transformers = _transformers()
    ctc = None
    if ckpt.proj is not None:
        ctc = {"vocab_size": int(ckpt.proj["weight"].shape[0]), "pad_token_id": 0, "bos_token_id": 1,
               "eos_token_id": 2, "ctc_zero_infinity": True, "ctc_loss_reduction": "sum", **(ctc_extra or {})}
    config = hf_config(ckpt.family, ckpt.model_cfg, ctc)
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    base_cls, ctc_cls, base_attr = HF_CLASSES[ckpt.family]
    cls = getattr(transformers, ctc_cls if ctc else base_cls)
    hf = cls(config)
    layer_mode = config.feat_extract_norm == "layer"
    base = base_attr + "." if ctc else ""
    ours = {k: v for k, v in ckpt.encoder_state.items() if not k.startswith(HEAD_PREFIXES)}
    heads = sorted(set(ckpt.encoder_state) - set(ours))
    if heads:
        logger.warning("pretraining heads have no place in transformers' %s and are not converted: %s", cls.__name__,
                       ", ".join(sorted({h.split(".")[0] for h in heads})))
    state: Dict[str, torch.Tensor] = {}
    used = set()
    for hf_name in hf.state_dict():
        if ctc and hf_name.startswith(HF_CTC_HEAD):
            key = hf_name[len(HF_CTC_HEAD):]
            if key in ckpt.proj:
                state[hf_name] = ckpt.proj[key]
            continue
        name = to_ours(hf_name[len(base):], layer_mode)
        if name in ours:
            state[hf_name] = ours[name]
            used.add(name)
    # what of ours found no HF place, under its HF-side name for the report
    for name in sorted(set(ours) - used):
        state["<ours>." + name] = ours[name]
    if "mask_emb" in ours and "mask_emb" not in used and not any(k.endswith("masked_spec_embed") for k in state):
        state.pop("<ours>.mask_emb", None)  # HF keeps it only when masking is configured; unused in inference
    check_state(hf.state_dict(), state, "the plugin checkpoint (renamed to transformers' names)",
                f"transformers' {cls.__name__} of its config")
    hf.load_state_dict(state, strict=True)
    return hf.eval(), config


def hf_twin(model: torch.nn.Module, model_cfg, attn_implementation: Optional[str] = "eager"):
    """The transformers model holding the weights of our pretraining ``model`` (built from ``model_cfg``), in memory.

    ``attn_implementation``: transformers' attention kernel (None = its default, e.g. "sdpa" for SEW)."""
    from .plugin import model_family, pretraining_config

    cfg = pretraining_config(model_cfg, "model config")
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(HEAD_PREFIXES)}
    ckpt = PluginCheckpoint(model_family(cfg._name, "model config"), cfg, state, None, None, cfg, False)
    return hf_model_for(ckpt, attn_implementation=attn_implementation)[0]


def processor_files(out_dir: str, dictionary: Any, normalize: bool, ctc: bool) -> None:
    """preprocessor_config.json, and for CTC vocab.json / tokenizer_config.json / special_tokens_map.json."""
    transformers = _transformers()
    fe = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                               do_normalize=normalize, return_attention_mask=True)
    if not ctc:
        fe.save_pretrained(out_dir)
        return
    symbols = list(dictionary.symbols)
    if symbols[:4] != ["<s>", "<pad>", "</s>", "<unk>"]:
        raise ConversionError(f"letter dictionary starts {symbols[:4]}; expected fairseq's <s> <pad> </s> <unk>")
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab["<pad>"], vocab["<s>"] = 0, 1  # HF's CTC blank is its pad token: id 0, fairseq's <s>
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=1)
    tok = transformers.Wav2Vec2CTCTokenizer(os.path.join(out_dir, "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                                            bos_token="<s>", eos_token="</s>", word_delimiter_token="|",
                                            do_lower_case=False)
    transformers.Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(out_dir)
    # the files older transformers (4.x) look for, which 5.x folds into processor_config.json
    fe.save_pretrained(out_dir)
    special = os.path.join(out_dir, "special_tokens_map.json")
    if not os.path.isfile(special):
        with open(special, "w", encoding="utf-8") as f:
            json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}, f,
                      indent=1)


def to_hf(checkpoint: str, out_dir: str) -> str:
    """Plugin checkpoint (pretrained ``sew`` / ``sew_d`` / ``wav2vec2`` / ``hubert``, or a fine-tuned ``sew_ctc``,
    fairseq ``wav2vec_ctc`` or ``hubert_ctc``) -> transformers directory; returns its path."""
    if os.path.isfile(out_dir):
        raise ConversionError(f"{out_dir} is a file; give a directory to write")
    ckpt = read_plugin_checkpoint(checkpoint)
    build_encoder(ckpt, checkpoint)  # names and shapes checked in the checkpoint's own (our) names first
    extra = None
    if ckpt.proj is not None:
        m = ckpt.cfg.model
        extra = {"final_dropout": float(m.get("final_dropout", 0.0)), "layerdrop": float(m.get("layerdrop", 0.0)),
                 "mask_time_prob": float(m.get("mask_prob", 0.0)), "mask_time_length": int(m.get("mask_length", 10)),
                 "mask_feature_prob": float(m.get("mask_channel_prob", 0.0)),
                 "mask_feature_length": int(m.get("mask_channel_length", 10))}
        if extra["mask_time_prob"] == 0 and extra["mask_feature_prob"] == 0:
            extra["mask_time_prob"] = float(ckpt.model_cfg.mask_prob)  # keeps masked_spec_embed (see hf_model_for)
    hf, _ = hf_model_for(ckpt, extra)
    with atomic_directory(out_dir) as tmp:
        hf.save_pretrained(tmp)
        processor_files(tmp, ckpt.dictionary, ckpt.normalize, ctc=ckpt.proj is not None)
    return out_dir


# ---------------------------------------------------------------- HF -> plugin

def read_hf_state(hf_dir: str) -> Dict[str, torch.Tensor]:
    """The weights of a ``save_pretrained`` directory (safetensors, or a .bin through the allow-list loader)."""
    from .safe_load import safe_load

    single = [("model.safetensors", "st"), ("pytorch_model.bin", "bin")]
    for name, kind in single:
        path = os.path.join(hf_dir, name)
        if os.path.isfile(path):
            if kind == "st":
                from safetensors.torch import load_file

                return load_file(path)
            return safe_load(path)
    for index_name, kind in (("model.safetensors.index.json", "st"), ("pytorch_model.bin.index.json", "bin")):
        path = os.path.join(hf_dir, index_name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
            state: Dict[str, torch.Tensor] = {}
            for shard in files:
                shard_path = os.path.join(hf_dir, shard)
                if kind == "st":
                    from safetensors.torch import load_file

                    state.update(load_file(shard_path))
                else:
                    state.update(safe_load(shard_path))
            return state
    raise ConversionError(f"{hf_dir}: no weights (model.safetensors, pytorch_model.bin or a sharded index)")


def read_hf_dictionary(hf_dir: str, vocab_size: int):
    """fairseq Dictionary from vocab.json (ids 0/1 named back <s>/<pad>); None without vocab.json."""
    from fairseq.data import Dictionary

    path = os.path.join(hf_dir, "vocab.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        vocab = json.load(f)
    if vocab and isinstance(next(iter(vocab.values())), dict):  # multi-lingual vocab.json: {lang: {token: id}}
        raise ConversionError(f"{path}: a multi-lingual vocabulary; convert one language's vocab.json")
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))) or len(by_id) != vocab_size:
        raise ConversionError(f"{path}: ids must be 0..{vocab_size - 1} without gaps (the lm_head has {vocab_size} "
                              f"rows)")
    names = [s for s, _ in by_id]
    if names[:4] != ["<pad>", "<s>", "</s>", "<unk>"]:
        raise ConversionError(f"{path}: ids 0-3 are {names[:4]}; expected <pad> (blank) <s> </s> <unk> as written "
                              f"by transformers' SEW converters")
    d = Dictionary()  # holds <s> <pad> </s> <unk> at 0..3 already
    for s in names[4:]:
        d.add_symbol(s, n=1)
    return d


def from_hf(hf_dir: str, out: str, dictionary_path: Optional[str] = None) -> str:
    """transformers ``SEWModel`` / ``SEWDModel`` / ``Wav2Vec2Model`` / ``HubertModel`` / ``*ForCTC`` directory ->
    plugin checkpoint; returns ``out``."""
    transformers = _transformers()
    if not os.path.isdir(hf_dir):
        raise ConversionError(f"{hf_dir}: no such directory")
    if not os.path.isfile(os.path.join(hf_dir, "config.json")):
        raise ConversionError(f"{hf_dir}: no config.json; a directory written by save_pretrained holds config.json "
                              f"and model.safetensors (or pytorch_model.bin)")
    config = transformers.AutoConfig.from_pretrained(hf_dir, local_files_only=True)
    family, model_cfg = our_config(config, hf_dir)
    state = read_hf_state(hf_dir)
    base_cls, ctc_cls, base_attr = HF_CLASSES[family]
    base = base_attr + "."
    ctc = any(k.startswith(HF_CTC_HEAD) for k in state)
    layer_mode = config.feat_extract_norm == "layer"
    if ctc:
        inner = {k[len(base):]: v for k, v in state.items() if k.startswith(base)}
        proj = {k[len(HF_CTC_HEAD):]: v for k, v in state.items() if k.startswith(HF_CTC_HEAD)}
        other = sorted(set(state) - {base + k for k in inner} - {HF_CTC_HEAD + k for k in proj})
        if other:
            raise ConversionError(f"{hf_dir}: weights outside {base}* and {HF_CTC_HEAD}*: {other[:10]}")
    else:
        inner, proj = state, None
        if any(k.startswith(base) for k in state):
            raise ConversionError(f"{hf_dir}: weights under {base}* without {HF_CTC_HEAD}*: a head this plugin does "
                                  f"not "
                                  f"convert (only {base_cls} and {ctc_cls})")
    ours = hf_to_ours_state(inner, layer_mode)
    model = build_pretraining_model(model_cfg)
    full = model.state_dict()  # with freshly initialised pretraining heads, which HF does not store
    expected = {k: v for k, v in full.items() if not k.startswith(HEAD_PREFIXES)}
    if "mask_emb" not in ours:  # HF keeps masked_spec_embed only with masking configured; unused in inference
        ours["mask_emb"] = expected["mask_emb"]
    check_state(expected, ours, f"{hf_dir} (renamed to this plugin's names)", f"this plugin's '{family}' model")
    normalize = False
    pre = os.path.join(hf_dir, "preprocessor_config.json")
    if os.path.isfile(pre):
        with open(pre, encoding="utf-8") as f:
            normalize = bool(json.load(f).get("do_normalize", False))
    data = os.path.dirname(os.path.abspath(out))
    if ctc:
        vocab_size = proj["weight"].shape[0]
        dictionary = (read_hf_dictionary(hf_dir, vocab_size) if dictionary_path is None
                      else _dictionary_of_size(dictionary_path, vocab_size))
        if dictionary is None:
            raise ConversionError(f"{hf_dir}: a CTC model without vocab.json; pass --dict dict.ltr.txt")
        ctc_over = {"final_dropout": float(_get(config, "final_dropout", 0.0)),
                    "layerdrop": float(_get(config, "layerdrop", 0.0)), "mask_prob": float(config.mask_time_prob),
                    "mask_length": int(config.mask_time_length), "mask_channel_prob": float(config.mask_feature_prob),
                    "mask_channel_length": int(config.mask_feature_length)}
        cfg = finetuning_cfg(model_cfg, normalize, data, os.path.abspath(hf_dir), ctc_over)
        weights = {W2V_PREFIX + k: v for k, v in ours.items()}
        weights.update({PROJ_PREFIX + k: v for k, v in proj.items()})
        atomic_save(checkpoint_dict(cfg, weights, dictionary), out)
    else:
        logger.warning("HF models carry no pretraining heads: %s wears freshly initialised ones (fine-tuning drops "
                       "them)",
                       out)
        atomic_save(checkpoint_dict(pretraining_cfg(model_cfg, normalize, data), {**full, **ours},
                                    task_state=pretraining_task_state(family)), out)
    return out


def _dictionary_of_size(path: str, size: int):
    from .plugin import parse_dictionary

    d = parse_dictionary(path)
    if len(d) != size:
        raise ConversionError(f"{path}: {len(d)} symbols, the model's lm_head has {size} rows")
    return d
