"""bf16 mixed precision (``+common.bf16_mixed=true``, sew_fairseq/compat/bf16_mixed.py) through fairseq's Trainer, in
this process: a tiny pretraining and fine-tuning update on this CPU's emulated bf16 (the hardware check is told bf16
is there), checkpoints that resume across precisions, and the refusal on a CPU without bf16 (not told)."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TINY_PRETRAINING
from tiny_trainer import batch, build_trainer, compose_recipe, write_letters_corpus

from sew_fairseq.compat import UnsupportedPrecision, bf16_mixed

BF16 = "+common.bf16_mixed=true"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_letters_corpus(tmp_path_factory.mktemp("bf16_corpus"))


def pretraining(corpus: Path, out: Path, extra=()) -> list:
    return [f"task.data={corpus}", f"checkpoint.save_dir={out}"] + ["++" + o for o in TINY_PRETRAINING] + list(extra)


def dtypes_seen(model: torch.nn.Module) -> dict:
    """{module type: set of output dtypes}, filled by forward hooks on the linear, conv and norm layers."""
    seen: dict = {}
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.LayerNorm)):
            m.register_forward_hook(lambda m, i, o: seen.setdefault(type(m).__name__, set()).add(o.dtype))
    return seen


def one_update(trainer, task) -> dict:
    """One update on the first two utterances, with the same crops and masks in every run: fairseq crops with the
    global numpy generator, the mask fix (compat/mask_indices.py) draws from unseeded ones, seeded to 0 here."""
    np.random.seed(0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np.random, "default_rng", lambda seed=None, _rng=np.random.default_rng: _rng(seed or 0))
        return trainer.train_step([batch(task)])


def adam_state_dtypes(trainer) -> set:
    return {v.dtype for s in trainer.optimizer.state_dict()["state"].values() for v in s.values() if torch.is_tensor(v)}


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory):
    """One tiny SEW-D pretraining update in fp32 and one in bf16 mixed, from the same weights and masks, each saved."""
    out = tmp_path_factory.mktemp("bf16_pretrain")
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bf16_mixed, "cpu_bf16", lambda: (True, "emulated for the test"))
        for name, extra in (("fp32", []), ("bf16", [BF16])):
            cfg = compose_recipe("pretraining", "sew_d_tiny", pretraining(corpus, out / name, extra))
            task, trainer = build_trainer(cfg)
            seen = dtypes_seen(trainer.model)
            log = one_update(trainer, task)
            path = out / f"{name}.pt"
            trainer.consolidate_optimizer()  # as checkpoint_utils.save_checkpoint does first
            trainer.save_checkpoint(str(path), {})
            runs[name] = SimpleNamespace(cfg=cfg, trainer=trainer, seen=seen, log=log, path=path)
    return runs


def test_pretraining_update_in_bf16_mixed(pretrained):
    fp32, bf16 = pretrained["fp32"], pretrained["bf16"]
    # the recipe's fp16: true is turned off: no FP16Optimizer, no loss scaler, no half copy of the model
    assert bf16.cfg.common.bf16_mixed and not bf16.cfg.common.fp16 and not bf16.cfg.common.bf16
    assert type(bf16.trainer.optimizer).__name__ == type(fp32.trainer.optimizer).__name__ == "FairseqAdam"
    # matrix products and convolutions ran in bf16, LayerNorms in fp32; fp32 ran fp32 throughout
    assert bf16.seen == {"Linear": {torch.bfloat16}, "Conv1d": {torch.bfloat16}, "LayerNorm": {torch.float32}}
    assert set().union(*fp32.seen.values()) == {torch.float32}
    # weights, gradients and Adam's moments stay fp32
    assert {p.dtype for p in bf16.trainer.model.parameters()} == {torch.float32}
    assert {p.grad.dtype for p in bf16.trainer.model.parameters() if p.grad is not None} <= {torch.float32}
    assert adam_state_dtypes(bf16.trainer) == {torch.float32}
    # the same masks and weights: the loss moves by bf16 rounding, not more
    assert fp32.log["sample_size"] == bf16.log["sample_size"]
    assert math.isfinite(bf16.log["loss"]) and 0 < abs(bf16.log["loss"] - fp32.log["loss"]) < 0.05 * fp32.log["loss"]


@pytest.mark.parametrize("written,resumed", [("bf16", "fp32"), ("fp32", "bf16")])
def test_checkpoint_resumes_in_the_other_precision(pretrained, corpus, tmp_path, monkeypatch, written, resumed):
    monkeypatch.setattr(bf16_mixed, "cpu_bf16", lambda: (True, "emulated for the test"))
    saved = torch.load(pretrained[written].path, weights_only=False)
    task, trainer = build_trainer(compose_recipe("pretraining", "sew_d_tiny", pretraining(
        corpus, tmp_path, [BF16] if resumed == "bf16" else [])))
    trainer.load_checkpoint(str(pretrained[written].path))  # fairseq checks the optimizer class: the same one
    assert trainer.get_num_updates() == 1
    state = trainer.optimizer.state_dict()["state"]
    written_state = saved["last_optimizer_state"]["state"]
    assert all(torch.equal(state[k]["exp_avg"], v["exp_avg"]) for k, v in written_state.items())
    log = one_update(trainer, task)
    assert math.isfinite(log["loss"]) and trainer.get_num_updates() == 2
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32} == adam_state_dtypes(trainer)


def test_finetuning_update_in_bf16_mixed(pretrained, corpus, tmp_path, monkeypatch):
    from fairseq.criterions import ctc

    monkeypatch.setattr(bf16_mixed, "cpu_bf16", lambda: (True, "emulated for the test"))
    ctc_inputs = []
    real_ctc_loss = ctc.F.ctc_loss

    def ctc_loss(lprobs, *args, **kwargs):
        loss = real_ctc_loss(lprobs, *args, **kwargs)
        ctc_inputs.append((lprobs.dtype, loss.dtype))
        return loss

    monkeypatch.setattr(ctc.F, "ctc_loss", ctc_loss)
    logs = {}
    for name, extra in (("fp32", []), ("bf16", [BF16])):
        cfg = compose_recipe("finetuning", "10h", [
            f"task.data={corpus}", f"model.w2v_path={pretrained['bf16'].path}", "common.cpu=true", "common.seed=1",
            "dataset.train_subset=train", "dataset.valid_subset=valid", "dataset.num_workers=0",
            "distributed_training.distributed_world_size=1", "optimization.update_freq=[1]",
            "model.freeze_finetune_updates=0", "model.mask_channel_length=8", "++model.mask_length=4",
            f"checkpoint.save_dir={tmp_path / name}"] + extra)
        task, trainer = build_trainer(cfg)
        seen = dtypes_seen(trainer.model)
        logs[name] = one_update(trainer, task)
        if name == "bf16":
            assert torch.bfloat16 in seen["Linear"] and {p.dtype for p in trainer.model.parameters()} == {
                torch.float32} == adam_state_dtypes(trainer)
    # the CTC loss reads fp32 log-probabilities and is fp32 (in both runs)
    assert ctc_inputs == [(torch.float32, torch.float32)] * 2
    fp32, bf16 = logs["fp32"]["loss"], logs["bf16"]["loss"]
    assert math.isfinite(bf16) and 0 < abs(bf16 - fp32) < 0.05 * fp32


def test_refused_on_a_cpu_without_bf16(corpus, tmp_path):
    ok, detail = bf16_mixed.cpu_bf16()
    if ok:
        pytest.skip(f"this CPU has bf16 ({detail})")
    cfg = compose_recipe("pretraining", "sew_d_tiny", pretraining(corpus, tmp_path, [BF16]))
    with pytest.raises(UnsupportedPrecision) as e:
        build_trainer(cfg)
    message = str(e.value)
    assert "\n" not in message and message.startswith("common.bf16_mixed=true: bf16 mixed precision on a CPU needs "
                                                      "AVX512-BF16 or AMX-BF16 dot products"), message
    assert message.endswith(": train in fp32") and detail in message
    if not torch.cuda.is_available():
        with pytest.raises(UnsupportedPrecision, match="^bf16 mixed precision on cuda: no CUDA device"):
            bf16_mixed.check_bf16_mixed("cuda")


def test_sew_bench_train_measures_and_refuses_bf16_here(corpus, capsys):
    from sew_fairseq.bench.train import format_rows, train_throughput
    from sew_fairseq.cli.bench import main

    row = train_throughput(str(corpus), preset="sew_d_tiny", updates=2, warmup=1,
                           overrides=["++" + o for o in TINY_PRETRAINING if not o.startswith("dataset.num_workers")])
    assert row["updates"] == 2 and row["updates_per_second"] > 0 and 0 <= row["data_wait_share"] < 1
    assert row["audio_seconds_per_second"] > 0 and row["max_tokens"] == 48000 and row["device"] == "cpu"
    assert format_rows([row]).splitlines()[1].split()[:3] == ["sew_d_tiny", "fp32", "cpu"]
    if bf16_mixed.cpu_bf16()[0]:
        return
    assert main(["train", "--precision", "bf16-mixed", "--data", str(corpus), "--cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sew-bench train: error: bf16 mixed precision on a CPU needs AVX512-BF16 or AMX-BF16")
    assert err.count("\n") == 1
