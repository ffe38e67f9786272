"""sew-convert from-hf / to-hf for transformers' wav2vec 2.0 and HuBERT (``Wav2Vec2ForCTC``, ``Wav2Vec2Model``,
``HubertForCTC``, ``HubertModel``), base style (group-norm extractor, post-LN) and large style (layer-norm extractor
with conv bias, ``do_stable_layer_norm``: pre-LN and a final LayerNorm).

The reference is transformers itself, on random weights (hidden 64, 2 layers): the converted checkpoint's CTC
log-probabilities, as ``sew_fairseq.evaluate.splits`` computes them (``load_ctc_model``, then the model's
``get_normalized_probs``), against ``log_softmax`` of transformers' logits, ids unchanged (blank 0).
"""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from convert_helpers import (LETTERS, TOL, W2V2_BASE_CLASSES, W2V2_CTC_CLASSES, W2V2_FAMILIES,  # noqa: E402
                             W2V2_STYLES, audio, ctc_log_probs, hf_ctc_and_checkpoint, write_hf_w2v2_dir)
from sew_fairseq.checkpoints.safe_load import safe_load  # noqa: E402
from sew_fairseq.checkpoints.plugin import ConversionError  # noqa: E402
from sew_fairseq.checkpoints.hf import from_hf, to_hf  # noqa: E402

SECONDS = (1.0, 1.37)  # 49 and 68 frames: odd and even
CASES = [(family, style) for family in W2V2_FAMILIES for style in W2V2_STYLES]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (tuple(a.shape), tuple(b.shape))
    assert a.abs().max() > 0.1  # a real signal, not zeros on both sides
    return (a - b).abs().max().item()


@pytest.mark.parametrize("family,style", CASES)
def test_from_hf_ctc_log_probs_match_transformers(family, style, tmp_path):
    from sew_fairseq.checkpoints.ctc import load_ctc_model

    hf, checkpoint = hf_ctc_and_checkpoint(tmp_path, family, style)
    model, dictionary, cfg = load_ctc_model(str(checkpoint))
    backbone = cfg.model.w2v_args.model
    assert cfg.model._name == "sew_ctc" and backbone._name == family
    assert backbone.layer_norm_first == (style == "large") and backbone.conv_bias == (style == "large")
    assert backbone.extractor_mode == {"base": "default", "large": "layer_norm"}[style]
    # fairseq's letter dictionary: <s> (the CTC blank, HF's <pad>) <pad> </s> <unk>, then the letters at HF's ids
    assert dictionary.symbols == ["<s>", "<pad>", "</s>", "<unk>"] + LETTERS
    for i, seconds in enumerate(SECONDS):
        wav = audio(seconds, i)[None]
        with torch.no_grad():
            reference = torch.log_softmax(hf(wav).logits, dim=-1)
        ours = ctc_log_probs(model, wav)
        assert max_diff(ours, reference) <= TOL
        assert torch.equal(ours.argmax(-1), reference.argmax(-1))  # ids unchanged


@pytest.mark.parametrize("family,style", CASES)
def test_transcriber_log_probs_match_transformers(family, style, tmp_path):
    """The converted checkpoint through the transcription engine (Transcriber.log_probs: one pass for a short wave,
    the input normalised as the checkpoint's task says) against transformers' log-softmax logits."""
    from sew_fairseq.transcribe import Transcriber

    hf, checkpoint = hf_ctc_and_checkpoint(tmp_path, family, style)
    tr = Transcriber.from_checkpoint(str(checkpoint))
    assert tr.labels == ["<s>", "<pad>", "</s>", "<unk>"] + LETTERS and tr.frame_stride == 320
    for i, seconds in enumerate(SECONDS):
        wav = audio(seconds, i)
        source = torch.nn.functional.layer_norm(wav, wav.shape) if tr.normalize else wav
        with torch.no_grad():
            reference = torch.log_softmax(hf(source[None]).logits, dim=-1)[0]
        ours = tr.log_probs(wav.numpy(), 16000)
        assert max_diff(ours, reference) <= TOL
        assert torch.equal(ours.argmax(-1), reference.argmax(-1))


@pytest.mark.parametrize("family,style", CASES)
def test_from_hf_base_model_matches_last_hidden_state(family, style, tmp_path):
    """A converted Wav2Vec2Model / HubertModel is fairseq's own model class, loaded by fairseq's loader."""
    from fairseq import checkpoint_utils

    hf = write_hf_w2v2_dir(tmp_path / "hf", family, style, ctc=False)
    from_hf(str(tmp_path / "hf"), str(tmp_path / "ours.pt"))
    models, cfg, _ = checkpoint_utils.load_model_ensemble_and_task([str(tmp_path / "ours.pt")])
    ours = models[0].eval()
    assert type(ours).__name__ == {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel"}[family]
    with torch.no_grad():
        for i, seconds in enumerate(SECONDS):
            wav = audio(seconds, i)[None]
            x = ours.extract_features(wav, None)
            x = x["x"] if isinstance(x, dict) else x[0]  # fairseq's HubertModel returns (features, padding_mask)
            assert max_diff(x, hf(wav).last_hidden_state) <= TOL


@pytest.mark.parametrize("family,style", CASES)
def test_hf_to_plugin_to_hf_gives_back_every_tensor(family, style, tmp_path):
    """transformers -> plugin -> transformers: the same class and state dict, bit for bit (CTC and base models);
    plugin -> transformers -> plugin: the same checkpoint weights and dictionary."""
    hf, checkpoint = hf_ctc_and_checkpoint(tmp_path, family, style)
    to_hf(str(checkpoint), str(tmp_path / "back"))
    back = transformers.AutoModelForCTC.from_pretrained(tmp_path / "back").eval()
    assert type(back).__name__ == W2V2_CTC_CLASSES[family]
    assert back.config.do_stable_layer_norm == (style == "large") and back.config.pad_token_id == 0
    a, b = hf.state_dict(), back.state_dict()
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    processor = transformers.AutoProcessor.from_pretrained(tmp_path / "back")
    h, i, a, bar = (4 + LETTERS.index(c) for c in "HIA|")  # fairseq's ids: 4 specials, then the letters
    assert processor.tokenizer.decode([h, h, 0, i, bar, a]) == "HI A"  # blank 0, "|" a space
    from_hf(str(tmp_path / "back"), str(tmp_path / "again.pt"))
    first, again = safe_load(checkpoint), safe_load(tmp_path / "again.pt")
    assert sorted(first["model"]) == sorted(again["model"])
    assert all(torch.equal(first["model"][k], again["model"][k]) for k in first["model"])
    assert again["task_state"]["target_dictionary"].symbols == first["task_state"]["target_dictionary"].symbols

    base = write_hf_w2v2_dir(tmp_path / "hf-base", family, style, ctc=False, seed=3)
    from_hf(str(tmp_path / "hf-base"), str(tmp_path / "base.pt"))
    to_hf(str(tmp_path / "base.pt"), str(tmp_path / "base-back"))
    back = transformers.AutoModel.from_pretrained(tmp_path / "base-back")
    assert type(back).__name__ == W2V2_BASE_CLASSES[family]
    a, b = base.state_dict(), back.state_dict()
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("family", W2V2_FAMILIES)
def test_converted_checkpoint_fine_tunes_as_a_backbone(family, tmp_path):
    """A converted base model is a pretrained checkpoint for sew_ctc (model.w2v_path): the backbone it builds
    gives transformers' hidden states."""
    from omegaconf import OmegaConf

    from sew_fairseq.models.sew_ctc import SEWCtc, SEWCtcConfig

    hf = write_hf_w2v2_dir(tmp_path / "hf", family, "large", ctc=False)
    from_hf(str(tmp_path / "hf"), str(tmp_path / "pretrained.pt"))
    cfg = OmegaConf.structured(SEWCtcConfig(w2v_path=str(tmp_path / "pretrained.pt"), normalize=False, data="unused",
                                            ddp_backend="legacy_ddp"))
    model = SEWCtc.build_model(cfg, type("Task", (), {"target_dictionary": list(range(32))})()).eval()
    wav = audio(1.37, 0)[None]
    with torch.no_grad():
        x = model.w2v_encoder.w2v_model.extract_features(wav, None)["x"]
        assert max_diff(x, hf(wav).last_hidden_state) <= TOL


@pytest.mark.parametrize("setting,value", [("conv_pos_batch_norm", True), ("feat_proj_layer_norm", False),
                                           ("feat_extract_activation", "relu"), ("layer_norm_eps", 1e-6)])
def test_from_hf_refuses_what_fairseq_does_not_build(setting, value, tmp_path):
    write_hf_w2v2_dir(tmp_path / "hf", "hubert", "base", ctc=True, **{setting: value})
    with pytest.raises(ConversionError, match=setting):
        from_hf(str(tmp_path / "hf"), str(tmp_path / "out.pt"))
    assert not (tmp_path / "out.pt").exists()


def test_to_onnx_exports_a_hubert_checkpoint_the_engines_run(tmp_path, capsys):
    """sew-convert to-onnx of a HuBERT CTC checkpoint (refused before fairseq's pad_to_multiple was made traceable),
    run by the onnxruntime and openvino backends: within 1e-4 of the torch engine."""
    from sew_fairseq.cli.convert import main
    from sew_fairseq.engines import load_engine

    _, checkpoint = hf_ctc_and_checkpoint(tmp_path, "hubert", "base")
    assert main(["to-onnx", str(checkpoint), str(tmp_path / "m.onnx")]) == 0
    waves = [audio(1.0, 1).numpy(), audio(2.37, 2).numpy()]
    reference = load_engine(str(checkpoint)).engine
    # each wave alone: in a padded batch the torch engine gave the 1 s wave 50 frames here, alone 49 (as the graph)
    expected = [reference.log_probs([w]).log_probs[0] for w in waves]
    engines = [load_engine(str(checkpoint), "onnxruntime", onnx_model=str(tmp_path / "m.onnx")).engine]
    try:
        import openvino  # noqa: F401

        engines.append(load_engine(str(checkpoint), "openvino", onnx_cache=str(tmp_path / "cache")).engine)
    except ImportError:
        pass
    for engine in engines:
        got = engine.log_probs(waves).log_probs
        assert max((a - b).abs().max().item() for a, b in zip(got, expected)) <= 1e-4, engine.name
