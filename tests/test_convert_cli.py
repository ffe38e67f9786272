"""sew-convert's command line: --help, bad input (clear lists of what does not match, nothing written) and
refusal of pickles that would run code, for every sub-command that reads a .pt."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convert_helpers import write_hf_dir, write_malicious_checkpoint, write_plugin_checkpoint
from sew_fairseq.cli.convert import main

pytest.importorskip("transformers")

SUBCOMMANDS = ["from-original", "from-hf", "to-hf", "to-onnx", "to-openvino"]


def convert(capsys, *argv: str):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("sub", [None] + SUBCOMMANDS)
def test_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        main(([sub] if sub else []) + ["--help"])
    assert e.value.code == 0
    assert "Example" in capsys.readouterr().out or sub is None


def _targets(tmp_path: Path, checkpoint: Path):
    """(argv, output path) for every way a sub-command reads ``checkpoint``."""
    hf_dir = tmp_path / "hf_bin"
    hf_dir.mkdir(exist_ok=True)
    (hf_dir / "config.json").write_text('{"model_type": "sew-d"}')
    if checkpoint.exists():
        (hf_dir / "pytorch_model.bin").write_bytes(checkpoint.read_bytes())
    release = tmp_path / "release_ft.pt"
    if not release.exists():
        from convert_helpers import write_release_finetuned

        write_release_finetuned(release, "sew_d_c")
    return [
        (["from-original", checkpoint, tmp_path / "o1.pt"], tmp_path / "o1.pt"),
        (["from-original", release, tmp_path / "o2.pt", "--w2v-config", checkpoint], tmp_path / "o2.pt"),
        (["from-hf", hf_dir, tmp_path / "o3.pt"], tmp_path / "o3.pt"),
        (["to-hf", checkpoint, tmp_path / "o4"], tmp_path / "o4"),
        (["to-onnx", checkpoint, tmp_path / "o5.onnx"], tmp_path / "o5.onnx"),
    ]


def test_pickle_that_runs_code_is_refused_everywhere(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = write_malicious_checkpoint(tmp_path / "evil.pt", marker)
    for argv, out in _targets(tmp_path, evil):
        code, err = convert(capsys, *argv)
        assert code == 1, argv
        assert "Refusing to load checkpoint" in err and ("posix.system" in err or "os.system" in err), (argv, err)
        assert not marker.exists(), argv
        assert not out.exists(), argv


@pytest.mark.parametrize("kind", ["random_dict", "tensor_list", "wav2vec"])
def test_other_architectures_are_named(kind, tmp_path, capsys):
    path = tmp_path / "other.pt"
    if kind == "random_dict":
        torch.save({"weights": torch.zeros(3), "step": 4}, path)
        expected = "not a fairseq checkpoint"
    elif kind == "tensor_list":
        torch.save([torch.zeros(2)], path)
        expected = "not a fairseq checkpoint"
    else:  # a fairseq model of another family (wav2vec 1.0; fairseq wav2vec 2.0 and HuBERT convert)
        torch.save({"cfg": {"model": {"_name": "wav2vec", "conv_feature_layers": "[(512, 10, 5)]"},
                            "task": {"_name": "audio_pretraining"}},
                    "model": {"feature_extractor.conv_layers.0.0.weight": torch.zeros(512, 1, 10)}}, path)
        expected = "model 'wav2vec' is not"
    for argv, out in _targets(tmp_path, path):
        if argv[0] == "from-hf":
            continue
        code, err = convert(capsys, *argv)
        assert code == 1 and expected in err, (argv, err)
        assert not out.exists()


def test_missing_keys_and_shape_mismatches_are_listed(tmp_path, capsys):
    good = write_plugin_checkpoint(tmp_path / "good.pt", "sew_d_c", ctc=True)
    state = torch.load(good, weights_only=False)
    del state["model"]["w2v_encoder.w2v_model.encoder.encoder.layer.1.output.dense.weight"]
    state["model"]["w2v_encoder.w2v_model.encoder.upsample.0.weight"] = torch.zeros(128, 128)
    state["model"]["w2v_encoder.w2v_model.extra.weight"] = torch.zeros(2)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    for sub, out in (("to-hf", tmp_path / "hf"), ("to-onnx", tmp_path / "m.onnx")):
        code, err = convert(capsys, sub, bad, out)
        assert code == 1, err
        assert "encoder.upsample.0.weight: [256, 128] -> [128, 128]" in err, err
        assert "encoder.encoder.layer.1.output.dense.weight: [128, 256]" in err, err
        assert "extra.weight: [2]" in err, err
        assert not out.exists()
    # an existing output directory survives a failed to-hf untouched
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "keep.txt").write_text("mine")
    assert convert(capsys, "to-hf", bad, tmp_path / "hf")[0] == 1
    assert [p.name for p in (tmp_path / "hf").iterdir()] == ["keep.txt"]


def test_hf_directory_problems(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = convert(capsys, "from-hf", empty, tmp_path / "o.pt")
    assert code == 1 and "no config.json" in err
    code, err = convert(capsys, "from-hf", tmp_path / "nowhere", tmp_path / "o.pt")
    assert code == 1 and "no such directory" in err
    # weights of another shape than config.json says
    write_hf_dir(tmp_path / "hf", "sew_d_c", ctc=False)
    config = (tmp_path / "hf" / "config.json").read_text()
    (tmp_path / "hf" / "config.json").write_text(config.replace('"intermediate_size": 256', '"intermediate_size": 512'))
    code, err = convert(capsys, "from-hf", tmp_path / "hf", tmp_path / "o.pt")
    assert code == 1 and "encoder.encoder.layer.0.intermediate.dense.weight: [512, 128] -> [256, 128]" in err, err
    (tmp_path / "hf" / "config.json").write_text(config.replace('"model_type": "sew-d"', '"model_type": "wavlm"'))
    code, err = convert(capsys, "from-hf", tmp_path / "hf", tmp_path / "o.pt")
    assert code == 1 and "model_type='wavlm'; expected one of 'sew', 'sew-d', 'wav2vec2', 'hubert'" in err, err
    assert not (tmp_path / "o.pt").exists()


def test_success_prints_what_it_wrote(tmp_path, capsys):
    ckpt = write_plugin_checkpoint(tmp_path / "ours.pt", "sew_c", ctc=False)
    assert main(["to-hf", str(ckpt), str(tmp_path / "hf")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'hf'}"


def test_a_missing_optional_package_names_the_extra_that_brings_it():
    from sew_fairseq.checkpoints.plugin import ConversionError, optional_package

    assert optional_package("json", "JSON needs json", "json").dumps([1]) == "[1]"
    with pytest.raises(ConversionError, match=r"^OpenVINO models need it \(pip install 'sew-fairseq\[openvino\]'\): "
                                              r"No module named 'sew_fairseq_no_such_package'$"):
        optional_package("sew_fairseq_no_such_package", "OpenVINO models need it", "openvino")
