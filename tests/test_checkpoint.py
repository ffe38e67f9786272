"""sew_fairseq.checkpoints.safe_load: fairseq checkpoints load under torch's restricted unpickler, malicious
pickles are refused before they run anything, and fairseq's own loader goes through it."""
from __future__ import annotations

import argparse
import collections
import io
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.data.dictionary import Dictionary
from fairseq.models.wav2vec.wav2vec2 import Wav2Vec2Config, Wav2Vec2Model
from omegaconf import DictConfig, OmegaConf

import sew_fairseq  # noqa: F401  (applies the compat patches)
from sew_fairseq import compat
from sew_fairseq.checkpoints.safe_load import TRUSTED_GLOBALS, CheckpointLoadError, safe_load

TINY_W2V2 = dict(
    encoder_layers=1,
    encoder_embed_dim=32,
    encoder_ffn_embed_dim=64,
    encoder_attention_heads=2,
    conv_feature_layers="[(16, 10, 5)] + [(16, 3, 2)] * 2",
    final_dim=16,
    latent_vars=8,
    conv_pos=16,
    conv_pos_groups=4,
)


def _target_dictionary() -> Dictionary:
    dictionary = Dictionary()
    for symbol, count in [("|", 8), ("E", 5), ("A", 3)]:
        dictionary.add_symbol(symbol, n=count)
    return dictionary


def _fine_tuned_state() -> dict:
    """A state dict shaped as fairseq's Trainer.state_dict() writes it for a fine-tuned model."""
    model_cfg = OmegaConf.structured(Wav2Vec2Config(**TINY_W2V2))
    model = Wav2Vec2Model.build_model(model_cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(source=torch.randn(2, 800), mask=False, features_only=True)["x"].sum().backward()
    optimizer.step()
    cfg = {
        "_name": None,
        "common": {"seed": 1, "cpu": True},
        "task": {"_name": "audio_finetuning", "data": "/data", "labels": "ltr", "normalize": False},
        "model": OmegaConf.to_container(model_cfg, resolve=True, enum_to_str=True),
        "criterion": {"_name": "ctc", "zero_infinity": True},
    }
    return {
        "args": None,
        "cfg": cfg,
        "model": model.state_dict(),
        "criterion": None,
        "optimizer_history": [
            {
                "criterion_name": "CtcCriterion",
                "optimizer_name": "FairseqAdam",
                "lr_scheduler_state": {"best": np.float64(12.5)},
                "num_updates": 3,
            }
        ],
        "task_state": {"target_dictionary": _target_dictionary()},
        "extra_state": {
            "metrics": collections.OrderedDict(
                train=[(0, "loss", "AverageMeter", {"val": np.float64(1.5), "sum": 3.0, "count": 2, "round": 3})]
            ),
            "previous_training_time": 1.25,
            "train_iterator": {"epoch": 2, "iterations_in_epoch": 0, "shuffle": True},
            "best": np.float32(12.5),
        },
        "last_optimizer_state": optimizer.state_dict(),
    }


@pytest.fixture(scope="module")
def fine_tuned_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint_last.pt"
    checkpoint_utils.torch_persistent_save(_fine_tuned_state(), str(path))  # fairseq's own saver
    return path


class _RunsShell:
    """Pickles as a call to os.system (what a malicious checkpoint would do)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _RunsSubprocess:
    """Pickles as a call to subprocess.call, a module torch does not block by name.

    (Protocol 2, which torch.save uses, writes it under its Python 2 name ``commands.call``.)
    """

    def __init__(self, argv: list) -> None:
        self.argv = argv

    def __reduce__(self):
        return (subprocess.call, (self.argv,))


class _RunsPython:
    """Pickles as a call to the builtin exec."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def test_plain_torch_load_refuses_fine_tuned_checkpoint(fine_tuned_checkpoint: Path) -> None:
    """The bug: torch >= 2.6's default weights_only=True rejects fairseq's checkpoint contents."""
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(fine_tuned_checkpoint, map_location="cpu")
    buffer = io.BytesIO()
    torch.save({"task_state": {"target_dictionary": _target_dictionary()}}, buffer)
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="fairseq.data.dictionary.Dictionary"):
        torch.load(buffer)


def test_fairseq_loader_fails_without_fix(
    fine_tuned_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fairseq's load_checkpoint_to_cpu with the real torch module (fix undone) fails."""
    monkeypatch.setattr(checkpoint_utils, "torch", compat.ORIGINALS["fairseq.checkpoint_utils.torch"])
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        checkpoint_utils.load_checkpoint_to_cpu(str(fine_tuned_checkpoint))


def test_fairseq_loader_loads_fine_tuned_checkpoint(fine_tuned_checkpoint: Path) -> None:
    state = checkpoint_utils.load_checkpoint_to_cpu(str(fine_tuned_checkpoint))
    dictionary = state["task_state"]["target_dictionary"]
    assert isinstance(dictionary, Dictionary)
    assert dictionary.index("E") == _target_dictionary().index("E")
    assert len(dictionary) == len(_target_dictionary())
    assert isinstance(state["cfg"], DictConfig)
    assert state["cfg"].model.encoder_embed_dim == 32
    assert state["extra_state"]["metrics"]["train"][0][3]["val"] == np.float64(1.5)
    # the weights are usable: they load strictly into a freshly built model
    model = Wav2Vec2Model.build_model(OmegaConf.structured(Wav2Vec2Config(**TINY_W2V2)))
    model.load_state_dict(state["model"], strict=True)
    assert state["last_optimizer_state"]["state"]  # Adam moments survived


def test_safe_load_accepts_paths_and_open_files(fine_tuned_checkpoint: Path) -> None:
    from_path = safe_load(fine_tuned_checkpoint)
    with open(fine_tuned_checkpoint, "rb") as handle:
        from_file = safe_load(handle, map_location=torch.device("cpu"))
    key = "encoder.layers.0.fc1.weight"
    assert torch.equal(from_path["model"][key], from_file["model"][key])


def test_safe_load_mmap_reads_the_same_and_falls_back_for_legacy_files(fine_tuned_checkpoint: Path,
                                                                       tmp_path: Path) -> None:
    """``mmap=True`` (how a backbone's model name is read from a large checkpoint) gives the same contents."""
    key = "encoder.layers.0.fc1.weight"
    mapped = safe_load(fine_tuned_checkpoint, mmap=True)
    assert torch.equal(mapped["model"][key], safe_load(fine_tuned_checkpoint)["model"][key])
    assert mapped["task_state"]["target_dictionary"].symbols == _target_dictionary().symbols
    legacy = tmp_path / "legacy.pt"  # torch's pre-1.6 format cannot be memory-mapped: read in full instead
    torch.save({"model": {key: torch.ones(2)}}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(safe_load(legacy, mmap=True)["model"][key], torch.ones(2))


def test_safe_load_legacy_contents() -> None:
    """What older fairseq checkpoints hold: args Namespace, cfg as a DictConfig object, numpy."""
    cfg = OmegaConf.create(
        {"model": {"_name": "wav2vec2", "conv_feature_layers": "[(512, 10, 5)]", "lr": [5e-4]},
         "task": {"_name": "audio_pretraining", "data": "/data"}},
        flags={"allow_objects": True},
    )
    cfg.task.legacy_args = argparse.Namespace(sample_rate=16000)  # objects inside a DictConfig
    legacy = {
        "args": argparse.Namespace(arch="wav2vec2", lr=[5e-4], adam_betas="(0.9,0.98)", max_tokens=None),
        "cfg": cfg,
        "numpy": {"i": np.int64(7), "f": np.float32(0.5), "b": np.bool_(True), "a": np.arange(4.0),
                  "dtype": np.dtype("int16")},
        "ordered": collections.OrderedDict(a=1),
        "factory": collections.defaultdict(list),
    }
    buffer = io.BytesIO()
    torch.save(legacy, buffer)
    buffer.seek(0)
    loaded = safe_load(buffer)
    assert loaded["args"] == legacy["args"]
    assert isinstance(loaded["cfg"], DictConfig)
    assert loaded["cfg"].model.lr == [5e-4] and loaded["cfg"].task.legacy_args.sample_rate == 16000
    assert loaded["numpy"]["i"] == 7 and loaded["numpy"]["dtype"] == np.dtype("int16")
    np.testing.assert_array_equal(loaded["numpy"]["a"], np.arange(4.0))


@pytest.mark.parametrize(
    "payload, offending",
    [
        (lambda marker: _RunsShell(f"touch {marker}"), "system"),
        (lambda marker: _RunsSubprocess(["touch", str(marker)]), "call"),
        (lambda marker: _RunsPython(f"open({str(marker)!r}, 'w').close()"), "exec"),
    ],
    ids=["os.system", "subprocess.call", "exec"],
)
def test_malicious_checkpoint_is_refused(tmp_path: Path, payload, offending: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "cfg": payload(marker)}, path)

    with pytest.raises(CheckpointLoadError) as direct:
        safe_load(path)
    with pytest.raises(CheckpointLoadError) as via_fairseq:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))

    assert not marker.exists(), "the pickle's payload ran"
    for error in (direct.value, via_fairseq.value):
        assert isinstance(error, ValueError)
        assert str(path) in str(error) and error.source == str(path)
        assert offending in error.offending and offending in str(error)
        assert "add_safe_globals" in str(error)  # the hint


def test_refusal_from_buffer_names_it() -> None:
    buffer = io.BytesIO()
    torch.save({"x": _RunsShell("true")}, buffer)
    buffer.seek(0)
    with pytest.raises(CheckpointLoadError, match="in-memory buffer"):
        safe_load(buffer)


def test_allow_list_holds_no_code_runners() -> None:
    names = {name for _, name in TRUSTED_GLOBALS}
    modules = {name.rsplit(".", 1)[0] for name in names}
    assert not modules & {"os", "posix", "nt", "sys", "subprocess", "importlib", "pickle", "shutil"}
    forbidden = {f"builtins.{n}" for n in ("eval", "exec", "getattr", "setattr", "compile", "open",
                                            "__import__", "apply", "globals")}
    assert not names & forbidden
    for obj, name in TRUSTED_GLOBALS:  # every entry names what it is
        assert name.rsplit(".", 1)[-1] == getattr(obj, "__name__", getattr(obj, "_name", name.rsplit(".", 1)[-1]))
