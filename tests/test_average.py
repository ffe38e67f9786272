"""``sew-average`` (sew_fairseq/checkpoints/average.py): exact averages, the checkpoints ``--last`` / ``--best``
choose from a directory laid out as fairseq's save_checkpoint leaves it, refused mismatches, and averaged
checkpoints that load for inference and conversion."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest
import torch

import sew_fairseq  # noqa: F401  (registers the models)
from sew_fairseq.checkpoints.average import (AverageError, average_checkpoints, best_checkpoints, last_checkpoints,
                                             write_average)
from sew_fairseq.checkpoints.safe_load import safe_load
from sew_fairseq.cli.average import main as sew_average

# (file name, epoch, updates, validation WER or None) as fairseq names and fills them; "gone" files are deleted
# after their keep_best_checkpoints copy is made, as keep_last_epochs would
RUN: List[Tuple[str, int, int, Optional[float]]] = [
    ("checkpoint7.pt", 7, 70, 0.15),  # gone: only its copy checkpoint.best_wer_0.1504.pt is left
    ("checkpoint8.pt", 8, 80, 0.30),
    ("checkpoint_9_85.pt", 9, 85, None),  # saved between validations
    ("checkpoint9.pt", 9, 90, 0.20),
    ("checkpoint_10_95.pt", 10, 95, 0.25),
    ("checkpoint10.pt", 10, 100, 0.22),
]


def fairseq_saved(base: Dict, seed: int, epoch: int, updates: int, value: Optional[float], maximize: bool) -> Dict:
    """``base`` with its weights moved by a seeded step and the bookkeeping fairseq's save_checkpoint writes."""
    g = torch.Generator().manual_seed(seed)
    state = dict(base)
    state["model"] = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in base["model"].items()}
    state["cfg"] = dict(base["cfg"], checkpoint={"best_checkpoint_metric": "wer",
                                                 "maximize_best_checkpoint_metric": maximize})
    state["extra_state"] = {"train_iterator": {"epoch": epoch, "iterations_in_epoch": 0, "shuffle": True},
                            "val_loss": value, "metrics": {}, "previous_training_time": 1.0}
    state["optimizer_history"] = [dict(base["optimizer_history"][-1], num_updates=updates)]
    return state


def make_run(directory: Path, base: Dict, maximize: bool = False) -> Path:
    directory.mkdir()
    for seed, (name, epoch, updates, value) in enumerate(RUN):
        torch.save(fairseq_saved(base, seed, epoch, updates, value, maximize), directory / name)
    shutil.copy(directory / "checkpoint7.pt", directory / "checkpoint.best_wer_0.1504.pt")
    shutil.copy(directory / "checkpoint9.pt", directory / "checkpoint.best_wer_0.2001.pt")
    shutil.copy(directory / "checkpoint7.pt", directory / "checkpoint_best.pt")
    shutil.copy(directory / "checkpoint10.pt", directory / "checkpoint_last.pt")
    (directory / "checkpoint7.pt").unlink()
    return directory


@pytest.fixture(scope="module")
def base(ctc_checkpoint: Path) -> Dict:
    return safe_load(ctc_checkpoint)


@pytest.fixture(scope="module")
def run_dir(base: Dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("average") / "ckpt", base)


def naive_mean(paths: List[Path]) -> Dict[str, np.ndarray]:
    """The mean of each model tensor, computed separately in numpy float64 and rounded to float32."""
    states = [torch.load(p, map_location="cpu", weights_only=False)["model"] for p in paths]
    return {k: (sum(s[k].numpy().astype(np.float64) for s in states) / len(states)).astype(np.float32)
            for k in states[0]}


def test_copies_of_one_checkpoint_average_to_it_bit_for_bit(ctc_checkpoint: Path, base: Dict) -> None:
    averaged = average_checkpoints([str(ctc_checkpoint)] * 3)
    assert averaged["model"].keys() == base["model"].keys()
    for key, tensor in base["model"].items():
        assert averaged["model"][key].dtype == tensor.dtype and torch.equal(averaged["model"][key], tensor), key
    assert averaged["cfg"] == base["cfg"] and averaged["task_state"]["target_dictionary"].symbols == \
        base["task_state"]["target_dictionary"].symbols


def test_two_checkpoints_average_to_the_exact_mean(run_dir: Path, tmp_path: Path) -> None:
    pair = [run_dir / "checkpoint8.pt", run_dir / "checkpoint9.pt"]
    assert sew_average([*map(str, pair), "-o", str(tmp_path / "avg.pt")]) == 0
    out = safe_load(tmp_path / "avg.pt")
    expected = naive_mean(pair)
    assert out["model"].keys() == expected.keys()
    assert all(np.array_equal(out["model"][k].numpy(), v) for k, v in expected.items())
    first = safe_load(pair[0])  # everything but the weights is the first checkpoint's
    assert out["extra_state"]["val_loss"] == first["extra_state"]["val_loss"] == 0.30
    assert out["optimizer_history"] == first["optimizer_history"]
    assert out["extra_state"]["averaged_from"] == [str(p) for p in pair]
    assert not list(tmp_path.glob(".tmp-*"))  # written through a temporary file


def test_half_precision_and_integer_tensors(base: Dict, tmp_path: Path) -> None:
    """fp16 weights are averaged in float64 and rounded once; integer tensors are the first checkpoint's."""
    paths = []
    for seed, steps in enumerate((5, 9)):
        state = fairseq_saved(base, seed, 1, steps, None, False)
        state["model"] = {k: v.half() for k, v in state["model"].items()}
        state["model"]["steps"] = torch.tensor(steps)
        paths.append(tmp_path / f"c{seed}.pt")
        torch.save(state, paths[-1])
    averaged = average_checkpoints([str(p) for p in paths])["model"]
    a, b = (torch.load(p, weights_only=False)["model"] for p in paths)
    key = "w2v_encoder.proj.weight"
    expected = ((a[key].numpy().astype(np.float64) + b[key].numpy().astype(np.float64)) / 2).astype(np.float16)
    assert averaged[key].dtype == torch.float16 and np.array_equal(averaged[key].numpy(), expected)
    assert not torch.equal(averaged[key], a[key]) and averaged["steps"].item() == 5


def test_last_takes_the_highest_epoch_and_update_numbers(run_dir: Path) -> None:
    # checkpoint10.pt is the end of epoch 10, after checkpoint_10_95.pt; by string order 9 would beat 10
    assert [Path(p).name for p in last_checkpoints(str(run_dir), 4)] == [
        "checkpoint10.pt", "checkpoint_10_95.pt", "checkpoint9.pt", "checkpoint_9_85.pt"]
    with pytest.raises(AverageError, match="6 numbered checkpoints .* asked for, 5 found"):
        last_checkpoints(str(run_dir), 6)


def test_best_ranks_by_the_saved_validation_value(run_dir: Path, base: Dict, tmp_path: Path) -> None:
    # lowest WER first; checkpoint7 survives only as its keep_best copy; checkpoint9's copy is not counted twice;
    # the checkpoint saved without validation is left out
    assert [Path(p).name for p in best_checkpoints(str(run_dir), 5)] == [
        "checkpoint.best_wer_0.1504.pt", "checkpoint9.pt", "checkpoint10.pt", "checkpoint_10_95.pt",
        "checkpoint8.pt"]
    with pytest.raises(AverageError, match=r"6 checkpoints with a validation value asked for, 5 found \(1 more"):
        best_checkpoints(str(run_dir), 6)
    higher = make_run(tmp_path / "accuracy", base, maximize=True)  # maximize_best_checkpoint_metric: highest first
    assert [Path(p).name for p in best_checkpoints(str(higher), 2)] == ["checkpoint8.pt", "checkpoint_10_95.pt"]


def test_cli_best_writes_the_average_of_the_chosen(run_dir: Path, tmp_path: Path, capsys) -> None:
    assert sew_average(["--best", "3", str(run_dir), "-o", str(tmp_path / "best3.pt")]) == 0
    chosen = [run_dir / "checkpoint.best_wer_0.1504.pt", run_dir / "checkpoint9.pt", run_dir / "checkpoint10.pt"]
    assert f"averaged 3 checkpoints: {' '.join(map(str, chosen))}" in capsys.readouterr().out
    out = safe_load(tmp_path / "best3.pt")["model"]
    # a sum of three in float32 would round differently from this float64 mean in some places
    assert all(np.array_equal(out[k].numpy(), v) for k, v in naive_mean(chosen).items())


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_mismatched_models_are_refused_naming_the_key(run_dir: Path, base: Dict, tmp_path: Path, capsys) -> None:
    other = dict(base, model=dict(base["model"]))
    other["model"]["w2v_encoder.proj.weight"] = other["model"]["w2v_encoder.proj.weight"][:-1]
    torch.save(other, tmp_path / "fewer_letters.pt")
    good = run_dir / "checkpoint8.pt"
    assert sew_average([str(good), str(tmp_path / "fewer_letters.pt"), "-o", str(tmp_path / "o.pt")]) == 1
    line = error_line(capsys)
    assert line.startswith(f"sew-average: error: {good} and {tmp_path / 'fewer_letters.pt'} are not checkpoints of one "
                           f"model: 'w2v_encoder.proj.weight' has shape [32, 128] against [31, 128]")
    del other["model"]["w2v_encoder.proj.weight"]
    torch.save(other, tmp_path / "no_proj.pt")
    assert sew_average([str(good), str(tmp_path / "no_proj.pt"), "-o", str(tmp_path / "o.pt")]) == 1
    assert error_line(capsys).endswith("'w2v_encoder.proj.weight' is in the first only")
    assert not (tmp_path / "o.pt").exists()


def test_cli_usage_errors(run_dir: Path, tmp_path: Path, capsys) -> None:
    assert sew_average(["--last", "2", str(run_dir), str(run_dir), "-o", str(tmp_path / "o.pt")]) == 2
    assert error_line(capsys) == "sew-average: error: --last takes one checkpoint directory, got 2 paths"
    assert sew_average([str(tmp_path / "missing.pt"), "-o", str(tmp_path / "o.pt")]) == 1
    assert error_line(capsys) == f"sew-average: error: {tmp_path / 'missing.pt'}: no such checkpoint file"
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    assert sew_average([str(tmp_path / "text.pt"), "-o", str(tmp_path / "o.pt")]) == 1
    assert error_line(capsys) == (f"sew-average: error: {tmp_path / 'text.pt'} is not a torch checkpoint "
                                  f"(torch: Unsupported operand 110)")  # not "refusing ... references a global"
    assert sew_average(["--best", "1", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o.pt")]) == 1
    assert error_line(capsys) == f"sew-average: error: {tmp_path / 'nowhere'}: no such directory"
    with pytest.raises(SystemExit):
        sew_average(["--help"])
    assert "sew-average --best 5 ckpt/ -o ckpt/average_best5.pt" in capsys.readouterr().out


def test_averaged_fine_tuned_checkpoint_loads_for_inference(run_dir: Path, tmp_path: Path) -> None:
    from sew_fairseq.checkpoints.ctc import load_ctc_model

    pair = [run_dir / "checkpoint10.pt", run_dir / "checkpoint_10_95.pt"]
    out = tmp_path / "avg.pt"
    write_average([str(p) for p in pair], str(out))
    model, dictionary, _ = load_ctc_model(str(out))
    loaded = model.state_dict()
    assert all(np.array_equal(loaded[k].numpy(), v) for k, v in naive_mean(pair).items())
    assert len(dictionary) == 32
    with torch.inference_mode():
        logits = model(source=torch.randn(1, 8000), padding_mask=None)["encoder_out"]
    assert logits.shape[-1] == 32 and torch.isfinite(logits).all()


def test_averaged_pretrained_checkpoint_converts(tmp_path: Path) -> None:
    from convert_helpers import write_plugin_checkpoint
    from sew_fairseq.checkpoints.plugin import build_encoder, read_plugin_checkpoint

    pair = [write_plugin_checkpoint(tmp_path / f"pre{seed}.pt", "sew_c", ctc=False, seed=seed) for seed in (0, 1)]
    write_average([str(p) for p in pair], str(tmp_path / "avg.pt"))
    ckpt = read_plugin_checkpoint(str(tmp_path / "avg.pt"))
    encoder = build_encoder(ckpt, str(tmp_path / "avg.pt"))
    state = encoder.state_dict()
    assert all(np.array_equal(state[k].numpy(), v) for k, v in naive_mean(pair).items())
