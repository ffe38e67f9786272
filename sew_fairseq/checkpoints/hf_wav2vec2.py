"""Configs of transformers' wav2vec 2.0 and HuBERT ports against fairseq's ``wav2vec2`` and ``hubert`` models.

The converted checkpoints use fairseq's own model classes (``Wav2Vec2Model``; ``HubertModel`` through
:class:`sew_fairseq.models.hubert.HubertBackbone`): their parameter names are the names
:data:`sew_fairseq.checkpoints.hf.HF_TO_OURS` already maps SEW to (the original release's names are fairseq's), so one
table converts all four families; the family stays recorded (``cfg.model._name``), so ``to-hf`` writes back the
class it came from; and fairseq-trained wav2vec 2.0 / HuBERT checkpoints convert with the same code.

transformers' two styles, both handled by one set of fields:

* base (``facebook/wav2vec2-base``, ``hubert-base-ls960``): ``feat_extract_norm="group"`` (GroupNorm in the first
  extractor block), ``do_stable_layer_norm=False`` (post-LN layers, LayerNorm before the first layer),
  ``conv_bias=False``;
* large (``wav2vec2-large-lv60``, ``hubert-large-ll60k``): ``feat_extract_norm="layer"`` (LayerNorm in every block),
  ``do_stable_layer_norm=True`` (pre-LN layers and a final LayerNorm), ``conv_bias=True``.

fairseq: ``extractor_mode`` default / layer_norm, ``layer_norm_first``, ``conv_bias``. transformers runs the
sequence without padding it to an even length; fairseq's ``required_seq_len_multiple`` (2 by default, a speed
setting) is 1 in converted configs, so both compute the same thing and ONNX traces have no length constant.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from .plugin import ConversionError, pretraining_config

#: transformers' model_type -> our family (fairseq's registered model name)
HF_MODEL_TYPES = {"wav2vec2": "wav2vec2", "hubert": "hubert"}
#: transformers hidden_act -> fairseq activation_fn (the same functions: erf GELU, tanh-approximated GELU, ReLU)
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_accurate", "relu": "relu"}


def _get(config, name: str, default: Any) -> Any:
    return getattr(config, name, default)


def our_config(config, source: str):
    """(family, structured fairseq config) of a transformers ``Wav2Vec2Config`` / ``HubertConfig``."""
    from ..modules.feature_extractor import format_conv_layers

    family = HF_MODEL_TYPES[config.model_type]
    problems: List[str] = []
    if _get(config, "feat_extract_activation", "gelu") != "gelu":
        problems.append(f"feat_extract_activation={config.feat_extract_activation!r} (fairseq's extractor: gelu)")
    if config.hidden_act not in ACTIVATIONS:
        problems.append(f"hidden_act={config.hidden_act!r} (one of {', '.join(ACTIVATIONS)})")
    if abs(_get(config, "layer_norm_eps", 1e-5) - 1e-5) > 1e-12:
        problems.append(f"layer_norm_eps={config.layer_norm_eps} (fairseq's LayerNorms use 1e-5)")
    if len(config.conv_dim) != len(config.conv_kernel) or len(config.conv_dim) != len(config.conv_stride):
        problems.append("conv_dim / conv_kernel / conv_stride lengths differ")
    for name, supported in (("add_adapter", False), ("conv_pos_batch_norm", False), ("feat_proj_layer_norm", True),
                            ("adapter_attn_dim", None)):
        if _get(config, name, supported) != supported:
            problems.append(f"{name}={getattr(config, name)!r} (only {supported!r})")
    if problems:
        raise ConversionError(f"{source}: config.json settings this plugin does not implement: " + "; ".join(problems))
    values: Dict[str, Any] = dict(
        _name=family, extractor_mode="layer_norm" if config.feat_extract_norm == "layer" else "default",
        encoder_layers=config.num_hidden_layers, encoder_embed_dim=config.hidden_size,
        encoder_ffn_embed_dim=config.intermediate_size, encoder_attention_heads=config.num_attention_heads,
        activation_fn=ACTIVATIONS[config.hidden_act], layer_type="transformer",
        dropout=config.hidden_dropout, attention_dropout=config.attention_dropout,
        activation_dropout=config.activation_dropout, encoder_layerdrop=_get(config, "layerdrop", 0.0),
        dropout_input=config.feat_proj_dropout, layer_norm_first=bool(config.do_stable_layer_norm),
        conv_feature_layers=format_conv_layers(list(zip(config.conv_dim, config.conv_kernel, config.conv_stride))),
        conv_bias=bool(config.conv_bias), conv_pos=config.num_conv_pos_embeddings,
        conv_pos_groups=config.num_conv_pos_embedding_groups, mask_prob=config.mask_time_prob,
        mask_length=config.mask_time_length, mask_channel_prob=config.mask_feature_prob,
        mask_channel_length=config.mask_feature_length, required_seq_len_multiple=1,
    )
    if family == "wav2vec2":  # the quantizer and heads of Wav2Vec2ForPreTraining (freshly initialised: not stored)
        values.update(dropout_features=_get(config, "feat_quantizer_dropout", 0.0), quantize_targets=True,
                      latent_vars=config.num_codevectors_per_group, latent_groups=config.num_codevector_groups,
                      latent_dim=config.codevector_dim, final_dim=config.proj_codevector_dim,
                      logit_temp=config.contrastive_logits_temperature, num_negatives=config.num_negatives)
    return family, pretraining_config(values, source)


def hf_config(family: str, model_cfg, ctc: Optional[Mapping[str, Any]] = None):
    """The transformers ``Wav2Vec2Config`` / ``HubertConfig`` of a structured fairseq ``wav2vec2`` / ``hubert``
    config; ``ctc``: the CTC fields (vocab_size, ...) of a fine-tuned model."""
    import transformers

    from ..modules.feature_extractor import parse_conv_layers

    c = model_cfg
    to_hf = {v: k for k, v in ACTIVATIONS.items()}
    problems: List[str] = []
    if str(c.layer_type) != "transformer":
        problems.append(f"layer_type={c.layer_type} (transformers' {family} has transformer layers only)")
    if int(c.get("pos_conv_depth", 1)) != 1:
        problems.append(f"pos_conv_depth={c.pos_conv_depth} (one positional convolution)")
    if bool(c.get("conv_pos_batch_norm", False)):
        problems.append("conv_pos_batch_norm=true")
    if str(c.activation_fn) not in to_hf:
        problems.append(f"activation_fn={c.activation_fn} (one of {', '.join(to_hf)})")
    if problems:
        raise ConversionError(f"no transformers equivalent for this {family} model: " + "; ".join(problems))
    layers = parse_conv_layers(c.conv_feature_layers)
    kw: Dict[str, Any] = dict(
        hidden_size=c.encoder_embed_dim, num_hidden_layers=c.encoder_layers,
        num_attention_heads=c.encoder_attention_heads,
        intermediate_size=c.encoder_ffn_embed_dim, hidden_act=to_hf[str(c.activation_fn)], hidden_dropout=c.dropout,
        attention_dropout=c.attention_dropout, activation_dropout=c.activation_dropout,
        feat_proj_dropout=c.dropout_input,
        layerdrop=c.encoder_layerdrop, layer_norm_eps=1e-5,
        feat_extract_norm="layer" if c.extractor_mode == "layer_norm"
        else "group", feat_extract_activation="gelu", conv_dim=[d for d, _, _ in layers],
        conv_kernel=[k for _, k, _ in layers], conv_stride=[s for _, _, s in layers], conv_bias=bool(c.conv_bias),
        num_conv_pos_embeddings=c.conv_pos, num_conv_pos_embedding_groups=c.conv_pos_groups,
        do_stable_layer_norm=bool(c.layer_norm_first), mask_time_prob=c.mask_prob, mask_time_length=c.mask_length,
        mask_feature_prob=c.mask_channel_prob, mask_feature_length=c.mask_channel_length,
        apply_spec_augment=c.mask_prob > 0 or c.mask_channel_prob > 0,
        feature_extractor_type="Wav2Vec2FeatureExtractor", tokenizer_class="Wav2Vec2CTCTokenizer")
    kw.update(ctc or {})  # a fine-tuned model's own masking, layerdrop and dropout
    if family == "wav2vec2":
        final_dim = c.final_dim if c.final_dim > 0 else c.encoder_embed_dim
        kw.update(num_codevectors_per_group=c.latent_vars, num_codevector_groups=c.latent_groups,
                  codevector_dim=c.latent_dim if c.latent_dim > 0 else final_dim, proj_codevector_dim=final_dim,
                  contrastive_logits_temperature=c.logit_temp, num_negatives=c.num_negatives,
                  feat_quantizer_dropout=c.dropout_features)
        config = transformers.Wav2Vec2Config(**kw)
        config.architectures = ["Wav2Vec2ForCTC" if ctc else "Wav2Vec2Model"]
    else:
        config = transformers.HubertConfig(feat_proj_layer_norm=True, **kw)
        config.architectures = ["HubertForCTC" if ctc else "HubertModel"]
    return config
