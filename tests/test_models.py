"""The three registered model families: names, padded batches, feature extraction, pretraining outputs."""
import re

import pytest
import torch
from fairseq.models import ARCH_MODEL_REGISTRY

import sew_fairseq  # noqa: F401
from sew_fairseq.models.sew import SEWModel
from sew_fairseq.models.sew_d import SEWDModel
from sew_fairseq.models.w2v2_mlp import W2V2MLPModel
from sew_fairseq.models.presets import build_preset

# small versions of the presets: 2 layers, 4096 -> 64 head width, no layerdrop; the rest as released
SMALL = dict(encoder_layers=2, mlp_hidden_size=64, encoder_layerdrop=0.0)
FAMILIES = ["sew_tiny", "sew_d_tiny", "w2v2_tiny"]

# parameter names of the original release (asappresearch/sew, and fairseq's wav2vec 2.0)
RELEASE_NAMES = [
    r"mask_emb", r"layer_norm\.(weight|bias)", r"post_extract_proj\.(weight|bias)",
    r"feature_extractor\.conv_layers\.\d+\.0\.weight", r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)",
    r"quantizer\.(vars|weight_proj\.(weight|bias))",
    r"(project_q|final_proj)\.net\.(0\.weight|1\.(weight|bias|running_mean|running_var|num_batches_tracked)|3\.(weight|bias))",
    r"encoder\.pos_conv\.0\.(weight_g|weight_v|bias)", r"encoder\.upsample\.0\.(weight|bias)",
    r"encoder\.layer_norm\.(weight|bias)",
    r"encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|self_attn_layer_norm|fc1|fc2|final_layer_norm)\.(weight|bias)",
    r"encoder\.encoder\.layer\.\d+\.attention\.self\.(query|key|value)_proj\.(weight|bias)",
    r"encoder\.encoder\.layer\.\d+\.attention\.output\.(dense|LayerNorm)\.(weight|bias)",
    r"encoder\.encoder\.layer\.\d+\.(intermediate\.dense|output\.dense|output\.LayerNorm)\.(weight|bias)",
    r"encoder\.encoder\.rel_embeddings\.weight", r"encoder\.encoder\.LayerNorm\.(weight|bias)",
]


@pytest.mark.parametrize("name,cls", [("sew", SEWModel), ("squeeze_wav2vec2", SEWModel), ("sew_d", SEWDModel),
                                      ("squeeze_wav2vec2_deberta", SEWDModel), ("w2v2_mlp", W2V2MLPModel),
                                      ("feat_mlp_wav2vec2", W2V2MLPModel)])
def test_registered_names(name, cls):
    assert ARCH_MODEL_REGISTRY[name] is cls


@pytest.mark.parametrize("preset", ["sew_tiny", "sew_d_tiny"])
def test_state_dict_uses_release_names(preset):
    model = build_preset(preset, **SMALL)
    unknown = [k for k in model.state_dict() if not any(re.fullmatch(p, k) for p in RELEASE_NAMES)]
    assert not unknown
    # the SEW-D context network is the release's DeBERTa encoder, no extra projections
    if preset == "sew_d_tiny":
        assert "encoder.encoder.layer.1.attention.self.query_proj.weight" in model.state_dict()
        assert not any("pos_key_proj" in k or "pos_query_proj" in k for k in model.state_dict())


def _batch(waves):
    batch = torch.zeros(len(waves), max(len(w) for w in waves))
    padding = torch.ones_like(batch, dtype=torch.bool)
    for i, w in enumerate(waves):
        batch[i, :len(w)] = w
        padding[i, :len(w)] = False
    return batch, padding


@pytest.mark.parametrize("preset", FAMILIES)
def test_padded_batch_equals_single_utterances(preset):
    torch.manual_seed(0)
    model = build_preset(preset, **SMALL).eval()
    # frame counts 49 (odd), 38 and 30 (even), 41 (odd): squeezing drops the last frame of odd ones
    waves = [torch.randn(n) for n in (16000, 12345, 9999, 13200)]
    with torch.no_grad():
        batched = model.extract_features(*_batch(waves))
        for i, w in enumerate(waves):
            alone = model.extract_features(w[None], None)["x"][0]
            frames = alone.size(0)
            assert int((~batched["padding_mask"][i]).sum()) == frames
            assert torch.allclose(batched["x"][i, :frames], alone, atol=1e-4), (preset, len(w))


@pytest.mark.parametrize("preset", FAMILIES)
def test_extract_features_layer_and_remove_heads(preset):
    model = build_preset(preset, **SMALL).eval()
    wav = torch.randn(1, 8000)
    with torch.no_grad():
        full = model.extract_features(wav, None)
        first = model.extract_features(wav, None, layer=0)
    assert full["x"].shape == (1, 24, model.cfg.encoder_embed_dim)
    assert first["x"].shape == full["x"].shape
    assert not torch.allclose(first["x"], full["x"])
    model.remove_pretraining_modules(last_layer=0)
    assert model.quantizer is None and model.project_q is None and model.final_proj is None
    assert len(model.encoder_layers()) == 1
    with torch.no_grad():
        truncated = model.extract_features(wav, None)["x"]
    assert torch.allclose(truncated, first["x"], atol=1e-5)


@pytest.mark.parametrize("preset", FAMILIES)
def test_pretraining_forward_and_backward(preset):
    torch.manual_seed(0)
    model = build_preset(preset, **SMALL).train()
    waves, padding = _batch([torch.randn(32000), torch.randn(24000)])
    out = model(waves, padding)
    logits, targets = model.get_logits(out), model.get_targets(None, out)
    assert logits.size(1) == 1 + model.cfg.num_negatives and logits.size(0) == targets.numel()
    diversity, feature_pen = model.get_extra_losses(out)
    assert 0 < float(diversity) < 1 and float(feature_pen) > 0
    loss = torch.nn.functional.cross_entropy(logits.float(), targets) + diversity + feature_pen
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad
