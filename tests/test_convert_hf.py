"""sew-convert from-hf / to-hf: parity with transformers' SEW / SEW-D in both directions, round trip, processors.

No downloads: transformers models and plugin checkpoints are built with random weights for reduced presets
(WFE-C and WFE-O extractors, group- and layer-norm extractors, squeeze 2/3/4, conv_pos 16/31/127, small and
released bucket tables).
"""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from convert_helpers import (LETTERS, REDUCED, TOL, audio, write_hf_dir,  # noqa: E402
                             write_plugin_checkpoint)
from sew_fairseq.checkpoints.safe_load import safe_load  # noqa: E402
from sew_fairseq.checkpoints.hf import from_hf, to_hf  # noqa: E402

SECONDS = (1.0, 1.37)  # 49 and 68 frames: odd and even


def load_fairseq(path):
    from fairseq import checkpoint_utils

    import sew_fairseq  # noqa: F401

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(path)])
    return models[0].eval(), cfg, task


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (tuple(a.shape), tuple(b.shape))
    assert a.abs().max() > 0.1  # a real signal, not zeros on both sides
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_from_hf_pretrained_matches_last_hidden_state(name, tmp_path):
    hf = write_hf_dir(tmp_path / "hf", name, ctc=False)
    out = tmp_path / "ours.pt"
    from_hf(str(tmp_path / "hf"), str(out))
    ours, cfg, _ = load_fairseq(out)
    assert cfg.model._name == REDUCED[name][0]
    with torch.no_grad():
        for i, s in enumerate(SECONDS):
            wav = audio(s, i)[None]
            assert max_diff(ours.extract_features(wav, None)["x"], hf(wav).last_hidden_state) <= TOL


@pytest.mark.parametrize("name", ["sew_c", "sew_d_o_sq4_k127"])
def test_from_hf_ctc_loads_with_dictionary_and_matches_logits(name, tmp_path):
    hf = write_hf_dir(tmp_path / "hf", name, ctc=True)
    out = tmp_path / "ours.pt"
    from_hf(str(tmp_path / "hf"), str(out))
    ours, cfg, task = load_fairseq(out)
    assert cfg.model._name == "sew_ctc"
    # fairseq's letter dictionary: <s> (CTC blank, HF's <pad>) <pad> </s> <unk>, then the letters in HF id order
    assert task.target_dictionary.symbols == ["<s>", "<pad>", "</s>", "<unk>"] + LETTERS
    with torch.no_grad():
        wav = audio(1.37, 0)[None]
        emissions = ours(source=wav, padding_mask=None)["encoder_out"].transpose(0, 1)  # [B, T, V]
        assert max_diff(emissions, hf(wav).logits) <= TOL


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_to_hf_pretrained_matches_ours(name, tmp_path):
    ckpt = write_plugin_checkpoint(tmp_path / "ours.pt", name, ctc=False)
    to_hf(str(ckpt), str(tmp_path / "hf"))
    hf = transformers.AutoModel.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == {"sew": "SEWModel", "sew_d": "SEWDModel"}[REDUCED[name][0]]
    ours, _, _ = load_fairseq(ckpt)
    with torch.no_grad():
        for i, s in enumerate(SECONDS):
            wav = audio(s, i)[None]
            assert max_diff(hf(wav).last_hidden_state, ours.extract_features(wav, None)["x"]) <= TOL


@pytest.mark.parametrize("name", ["sew_c", "sew_d_c"])
def test_to_hf_ctc_with_processor_then_round_trip_is_identical(name, tmp_path):
    ckpt = write_plugin_checkpoint(tmp_path / "ours.pt", name, ctc=True)
    to_hf(str(ckpt), str(tmp_path / "hf"))
    for f in ("config.json", "preprocessor_config.json", "vocab.json", "tokenizer_config.json",
              "special_tokens_map.json"):
        assert (tmp_path / "hf" / f).is_file(), f
    hf = transformers.AutoModelForCTC.from_pretrained(tmp_path / "hf").eval()
    processor = transformers.AutoProcessor.from_pretrained(tmp_path / "hf")
    ours, _, task = load_fairseq(ckpt)
    wav = audio(2.21, 3)
    with torch.no_grad():
        logits = hf(**processor(wav.numpy(), sampling_rate=16000, return_tensors="pt")).logits
        emissions = ours(source=wav[None], padding_mask=None)["encoder_out"].transpose(0, 1)
    assert max_diff(logits, emissions) <= TOL
    # the tokenizer reads ids as fairseq's dictionary does: 0 = blank, letters at the same ids, "|" = space
    d = task.target_dictionary
    ids = [d.index("H"), d.index("H"), 0, d.index("I"), d.index("|"), d.index("A")]
    assert processor.tokenizer.decode(ids) == "HI A"
    assert processor.tokenizer.pad_token_id == 0 == hf.config.pad_token_id

    # plugin -> HF -> plugin: the same state dict, every key and every tensor bit for bit
    from_hf(str(tmp_path / "hf"), str(tmp_path / "back.pt"))
    a, b = safe_load(ckpt)["model"], safe_load(tmp_path / "back.pt")["model"]
    assert sorted(a) == sorted(b)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert safe_load(tmp_path / "back.pt")["task_state"]["target_dictionary"].symbols == d.symbols


def test_pretrained_round_trip_keeps_every_encoder_tensor(tmp_path):
    """HF stores no pretraining heads: a pretrained round trip keeps every other tensor exactly."""
    ckpt = write_plugin_checkpoint(tmp_path / "ours.pt", "sew_d_c", ctc=False)
    to_hf(str(ckpt), str(tmp_path / "hf"))
    from_hf(str(tmp_path / "hf"), str(tmp_path / "back.pt"))
    heads = ("quantizer.", "project_q.", "final_proj.")
    a, b = ({k: v for k, v in safe_load(p)["model"].items() if not k.startswith(heads)}
            for p in (ckpt, tmp_path / "back.pt"))
    assert sorted(a) == sorted(b) and len(a) > 40
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["sew_c", "sew_d_c"])
def test_padded_batches(name, tmp_path):
    """What agrees on padded batches, and the documented difference (README "Padded batches")."""
    ckpt = write_plugin_checkpoint(tmp_path / "ours.pt", name, ctc=False)
    to_hf(str(ckpt), str(tmp_path / "hf"))
    hf = transformers.AutoModel.from_pretrained(tmp_path / "hf").eval()
    ours, _, _ = load_fairseq(ckpt)
    long, short = audio(2.21, 1), audio(1.37, 2)
    batch = torch.zeros(2, len(long))
    batch[0], batch[1, :len(short)] = long, short
    padding = torch.zeros(2, len(long), dtype=torch.bool)
    padding[1, len(short):] = True
    with torch.no_grad():
        ours_batch = ours.extract_features(batch, padding)
        hf_batch = hf(batch, attention_mask=(~padding).long()).last_hidden_state
        hf_long = hf(long[None]).last_hidden_state[0]
        hf_short = hf(short[None]).last_hidden_state[0]
        # a batch of equal lengths: identical semantics
        equal = torch.stack([long, audio(2.21, 5)])
        assert max_diff(ours.extract_features(equal, None)["x"], hf(equal).last_hidden_state) <= TOL
    frames = ours_batch["padding_mask"]
    n_short = int((~frames[1]).sum())
    assert n_short == hf_short.shape[0]
    # the unpadded utterance of a padded batch: both equal each other and its single-utterance output
    assert max_diff(ours_batch["x"][0], hf_long) <= TOL and max_diff(hf_batch[0], hf_long) <= TOL
    # the padded utterance: ours gives its single-utterance output (HF's, too) on its valid frames ...
    assert max_diff(ours_batch["x"][1, :n_short], hf_short) <= TOL
    # ... HF's padded-batch output does not (GroupNorm over the padded length, no zeroing after upsampling)
    assert (hf_batch[1, :n_short] - hf_short).abs().max().item() > 1e-3
