"""sew-convert from-original: checkpoints laid out as the original SEW release writes them.

No released checkpoint is available offline: the tests build checkpoints with the release's layout from
random weights (model names ``squeeze_wav2vec2`` / ``squeeze_wav2vec2_deberta`` / ``wav2vec_ctc_v2``, the
release's config field names including its release-only ones, ``audio_pretraining_features`` task,
WFE-C spelled as its pt-sew*.sh scripts do, fine-tuned checkpoints with ``w2v_args`` empty) and check the
converted checkpoints against transformers' independent implementation, fine-tune one with fairseq and
decode one with sew-infer.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from convert_helpers import (LETTERS, TOL, audio, release_model_cfg, write_release_finetuned,  # noqa: I100
                             write_release_pretrained)
from sew_fairseq.checkpoints.plugin import ConversionError
from sew_fairseq.checkpoints.original import from_original
REPO = Path(__file__).resolve().parents[1]

transformers = pytest.importorskip("transformers")


def load_fairseq(path, **overrides):
    from fairseq import checkpoint_utils

    import sew_fairseq  # noqa: F401

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(path)], arg_overrides=overrides or None)
    return models[0].eval(), cfg, task


@pytest.mark.parametrize("name,dictconfig", [("sew_c", False), ("sew_d_c", True), ("sew_o_layer_sq3", False)])
def test_pretrained_release_checkpoint(name, dictconfig, tmp_path):
    from sew_fairseq.checkpoints.hf import to_hf

    reference = write_release_pretrained(tmp_path / "release.pt", name, dictconfig=dictconfig)
    out = tmp_path / "ours.pt"
    from_original(str(tmp_path / "release.pt"), str(out))
    ours, cfg, _ = load_fairseq(out)
    assert cfg.model._name == {"sew_c": "sew", "sew_d_c": "sew_d", "sew_o_layer_sq3": "sew"}[name]
    assert sorted(ours.state_dict()) == sorted(reference.state_dict())  # heads kept for further pretraining
    # against an independent implementation: the converted checkpoint through to-hf into transformers
    to_hf(str(out), str(tmp_path / "hf"))
    hf = transformers.AutoModel.from_pretrained(tmp_path / "hf").eval()
    wav = audio(1.37, 0)[None]
    with torch.no_grad():
        x = ours.extract_features(wav, None)["x"]
        assert x.abs().max() > 0.1 and (x - hf(wav).last_hidden_state).abs().max() <= TOL


def test_finetuned_release_checkpoint_needs_pretrained_config(tmp_path):
    write_release_pretrained(tmp_path / "pre.pt", "sew_d_c")
    encoder, proj = write_release_finetuned(tmp_path / "ft.pt", "sew_d_c")
    out = tmp_path / "ours.pt"
    with pytest.raises(ConversionError, match="--w2v-config"):
        from_original(str(tmp_path / "ft.pt"), str(out))
    assert not out.exists()
    # a preset of another size: every mismatching name with expected / found shapes, nothing written
    with pytest.raises(ConversionError) as e:
        from_original(str(tmp_path / "ft.pt"), str(out), preset="sew_d_tiny")
    message = str(e.value)
    assert "feature_extractor.conv_layers.1.0.weight: [128, 64, 3] -> [16, 8, 3]" in message, message
    assert re.search(r"missing from .*\n    encoder\.encoder\.layer\.2\.attention\.self\.query_proj\.weight: \[384, "
                     r"384\]",
                     message), message
    assert "first 10 of" in message and not out.exists()

    for spec in ("pre.pt", "model.yaml"):
        if spec == "model.yaml":
            (tmp_path / spec).write_text(yaml.safe_dump(release_model_cfg("sew_d_c")))
        from_original(str(tmp_path / "ft.pt"), str(out), w2v_config=str(tmp_path / spec))
        ours, cfg, task = load_fairseq(out)
        assert cfg.model._name == "sew_ctc" and cfg.model.w2v_args.model._name == "sew_d"
        assert task.target_dictionary.symbols == ["<s>", "<pad>", "</s>", "<unk>"] + LETTERS
        wav = audio(1.37, 1)[None]
        with torch.no_grad():
            emissions = ours(source=wav, padding_mask=None)["encoder_out"].transpose(0, 1)
            expected = torch.nn.functional.linear(encoder.extract_features(wav, None)["x"], proj["weight"],
                                                  proj["bias"])
        assert (emissions - expected).abs().max() <= TOL


def test_finetuned_release_checkpoint_without_dictionary(tmp_path, demo_corpus):
    write_release_finetuned(tmp_path / "ft.pt", "sew_d_c", with_dictionary=False)
    out = tmp_path / "ours.pt"
    with pytest.raises(ConversionError, match="--dict"):
        from_original(str(tmp_path / "ft.pt"), str(out), w2v_config=_yaml(tmp_path))
    with pytest.raises(ConversionError, match="symbols"):  # the demo dictionary has another size
        from_original(str(tmp_path / "ft.pt"), str(out), w2v_config=_yaml(tmp_path),
                      dictionary=str(demo_corpus.dict_ltr))
    assert not out.exists()
    letters = tmp_path / "dict.ltr.txt"
    letters.write_text("".join(f"{s} 10\n" for s in LETTERS))
    from_original(str(tmp_path / "ft.pt"), str(out), w2v_config=_yaml(tmp_path), dictionary=str(letters))
    _, _, task = load_fairseq(out)
    assert task.target_dictionary.symbols[4:] == LETTERS


def _yaml(tmp_path: Path) -> str:
    path = tmp_path / "pre.yaml"
    path.write_text(yaml.safe_dump({"model": release_model_cfg("sew_d_c")}))
    return str(path)


@pytest.mark.parametrize("field,value", [("cross_layer_param_share", True), ("squeeze_method", "multi-layer"),
                                         ("fbank_dim", 80)])
def test_release_options_the_plugin_lacks_are_refused(field, value, tmp_path):
    import torch as _torch

    write_release_pretrained(tmp_path / "release.pt", "sew_d_c")
    state = _torch.load(tmp_path / "release.pt", weights_only=False)
    state["cfg"]["model"][field] = value
    _torch.save(state, tmp_path / "release.pt")
    with pytest.raises(ConversionError, match=field):
        from_original(str(tmp_path / "release.pt"), str(tmp_path / "ours.pt"))
    assert not (tmp_path / "ours.pt").exists()


def test_converted_pretrained_fine_tunes_and_converted_ctc_decodes(tmp_path, demo_corpus, run):
    """from-original pretrained -> 2 CTC updates with the 100h recipe; from-original CTC -> sew-infer."""
    write_release_pretrained(tmp_path / "release.pt", "sew_d_c")
    from_original(str(tmp_path / "release.pt"), str(tmp_path / "pre.pt"))
    data = Path(demo_corpus.train_tsv).parent
    out = tmp_path / "ft"
    log = run([str(Path(sys.executable).parent / "fairseq-hydra-train"), "--config-dir",
               str(REPO / "recipes" / "finetuning"),
               "--config-name", "100h", f"common.user_dir={REPO / 'sew_fairseq'}", f"task.data={data}",
               f"model.w2v_path={tmp_path / 'pre.pt'}", "common.cpu=true", "common.log_format=simple",
               "common.log_interval=1", "dataset.train_subset=train", "dataset.valid_subset=valid",
               "dataset.num_workers=0", "dataset.max_tokens=64000", "optimization.max_update=2",
               "optimization.update_freq=[1]", "distributed_training.distributed_world_size=1",
               "model.mask_channel_length=8", "++model.mask_length=4", "checkpoint.save_interval_updates=2",
               f"checkpoint.save_dir={out}/ckpt", f"hydra.run.dir={out}/hydra"])
    assert re.findall(r"num_updates=(\d+)", log)[-1] == "2", log[-2000:]
    assert (out / "ckpt" / "checkpoint_last.pt").exists()

    write_release_finetuned(tmp_path / "ft.pt", "sew_d_c")
    from_original(str(tmp_path / "ft.pt"), str(tmp_path / "ctc.pt"), w2v_config=str(tmp_path / "release.pt"))
    proc = subprocess.run([str(Path(sys.executable).parent / "sew-infer"), str(tmp_path / "ctc.pt"), "--data",
                           str(data), "--split", "valid", "--results-dir", str(tmp_path / "decode"), "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"valid: 1 utterances, [\d.]+ s  WER [\d.]+", proc.stdout), proc.stdout
    assert (tmp_path / "decode" / "hyp.trn").read_text().strip()
