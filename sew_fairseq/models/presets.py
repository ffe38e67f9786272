"""The architectures of the SEW paper, one entry per preset (Wu et al. 2021, Table 7, and the release's pretraining
scripts).

What is SEW-D base+?  ``PRESETS["sew_d_base_plus"]``: 24 layers, D = 768, 12 heads, FFN 3072, squeeze 2,
positional conv kernel 31, WFE-C with c = 96.  :func:`build_preset` builds any of them.
"""
from __future__ import annotations

from typing import Any, Dict, NamedTuple

from omegaconf import OmegaConf


class Preset(NamedTuple):
    model: str  # registered fairseq model name
    layers: int
    heads: int  # D = 64 * heads, FFN = 4 * D
    wfe_c: int = 64  # WFE-C base channels; 0 = wav2vec 2.0's extractor (WFE-O, 512 channels)
    conv_pos: int = 31
    squeeze: int = 2
    layerdrop: float = 0.05  # pretraining layerdrop of the release (0.2 for 24 layers)

    @property
    def dim(self) -> int:
        return 64 * self.heads

    def model_overrides(self) -> Dict[str, Any]:
        """The ``model.*`` values that define this architecture."""
        o: Dict[str, Any] = {
            "_name": self.model, "encoder_layers": self.layers, "encoder_embed_dim": self.dim,
            "encoder_ffn_embed_dim": 4 * self.dim, "encoder_attention_heads": self.heads,
            "conv_pos": self.conv_pos, "encoder_layerdrop": self.layerdrop,
        }
        if self.wfe_c:
            o.update(wfe_type="C", wfe_channels=self.wfe_c)
        else:
            o.update(wfe_type="O", wfe_channels=512)
        if self.model != "w2v2_mlp":
            o["squeeze_factor"] = self.squeeze
        return o


PRESETS: Dict[str, Preset] = {
    "sew_tiny": Preset("sew", 12, 8),
    "sew_small": Preset("sew", 12, 12),
    "sew_mid": Preset("sew", 24, 12, layerdrop=0.2),
    "sew_d_tiny": Preset("sew_d", 12, 6),
    "sew_d_small": Preset("sew_d", 12, 8),
    "sew_d_mid": Preset("sew_d", 24, 8, layerdrop=0.2),
    "sew_d_mid_k127": Preset("sew_d", 24, 8, conv_pos=127, layerdrop=0.2),
    "sew_d_base": Preset("sew_d", 24, 12, layerdrop=0.2),
    "sew_d_base_plus": Preset("sew_d", 24, 12, wfe_c=96, layerdrop=0.2),
    # the paper's wav2vec 2.0 baselines: widths/depths of SEW tiny/small/mid, wav2vec 2.0 extractor, no squeeze
    "w2v2_tiny": Preset("w2v2_mlp", 12, 8, wfe_c=0, conv_pos=128, squeeze=1),
    "w2v2_small": Preset("w2v2_mlp", 12, 12, wfe_c=0, conv_pos=128, squeeze=1),
    "w2v2_mid": Preset("w2v2_mlp", 24, 12, wfe_c=0, conv_pos=128, squeeze=1, layerdrop=0.2),
    "w2v2_base": Preset("w2v2_mlp", 12, 12, wfe_c=0, conv_pos=128, squeeze=1),
}

# pretraining head settings of the release (wav2vec 2.0 base): quantized targets, final_dim 256
PRETRAINING_OVERRIDES: Dict[str, Any] = {"quantize_targets": True, "final_dim": 256, "latent_temp": [2.0, 0.5,
                                                                                                     0.999995]}


def preset_config(name: str, **overrides: Any):
    """The model dataclass config of preset ``name`` (with the release's pretraining heads) plus ``overrides``."""
    from fairseq.models import MODEL_DATACLASS_REGISTRY


    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    values = {**PRESETS[name].model_overrides(), **PRETRAINING_OVERRIDES, **overrides}
    model_name = values.pop("_name")
    dc = MODEL_DATACLASS_REGISTRY[model_name]
    cfg = OmegaConf.merge(OmegaConf.structured(dc()), values)
    cfg._name = model_name
    return cfg


def build_preset(name: str, **overrides: Any):
    """Build the pretraining model of preset ``name`` (random weights)."""
    from fairseq.models import ARCH_MODEL_REGISTRY

    cfg = preset_config(name, **overrides)
    return ARCH_MODEL_REGISTRY[cfg._name].build_model(cfg)
