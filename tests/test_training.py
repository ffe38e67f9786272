"""End to end with fairseq's trainer: a recipe pretrains, resumes after SIGKILL, and trains data-parallel on CPU."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A manifest of 30 utterances (1-2 s) of random harmonic tones, 16 kHz mono."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(30):
        n = int(rng.integers(16000, 32000))
        t = np.arange(n) / 16000
        wave = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 2000, size=3)) * 0.1
        wave += rng.normal(0, 0.01, n)
        sf.write(root / f"u{i:02d}.wav", wave.astype(np.float32), 16000, subtype="PCM_16")
        lines.append(f"u{i:02d}.wav\t{n}")
    for split, rows in (("train", lines[:24]), ("valid", lines[24:])):
        (root / f"{split}.tsv").write_text("\n".join([str(root)] + rows) + "\n")
    return root


def updates_logged(log: str) -> List[int]:
    return [int(n) for n in re.findall(r"num_updates=(\d+)", log)]


def test_pretraining_logs_losses_and_saves_checkpoints(corpus, tmp_path, run, pretrain_command):
    # the command line: plain fairseq-hydra-train with the plugin as user dir, the unchanged
    # recipe (fp16: true, as released) on a CPU
    cmd = pretrain_command(corpus, tmp_path, ["optimization.max_update=6", f"common.user_dir={REPO / 'sew_fairseq'}"])
    cmd[:3] = [str(Path(sys.executable).parent / "fairseq-hydra-train")]
    log = run(cmd)
    assert "turning off fp16" in log
    first = re.search(r"\[train_inner\]\[INFO\] - (.*)", log).group(1)
    for key in ("loss=", "loss_0=", "loss_1=", "loss_2=", "code_perplexity=", "prob_perplexity=", "accuracy="):
        assert key in first, first
    assert updates_logged(log)[-1] == 6
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").exists()
    assert (tmp_path / "ckpt" / "checkpoint_best.pt").exists()


def test_sigkill_then_same_command_resumes_from_checkpoint_last(corpus, tmp_path, run, pretrain_command):
    cmd = pretrain_command(corpus, tmp_path, ["optimization.max_update=12", "checkpoint.save_interval_updates=4",
                                           "checkpoint.keep_interval_updates=1"])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            start_new_session=True)
    saved_at, lines = None, []
    deadline = time.time() + 240
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"Saved checkpoint .*@ (\d+) updates", line)
        if m:
            saved_at = int(m.group(1))
        if saved_at and re.search(rf"num_updates={saved_at + 1}\b", line):
            os.killpg(proc.pid, signal.SIGKILL)  # mid-training, after a save
            break
        assert time.time() < deadline, "".join(lines[-50:])
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and saved_at == 4, "".join(lines[-50:])

    log = run(cmd)
    loaded = re.search(r"Loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ (\d+) updates\)", log)
    assert loaded and int(loaded.group(1)) == saved_at, log[-3000:]
    updates = updates_logged(log)
    assert updates[0] == saved_at + 1 and updates[-1] == 12


def test_two_process_data_parallel_training_on_cpu(corpus, tmp_path, run, pretrain_command):
    log = run(pretrain_command(corpus, tmp_path, [
        "optimization.max_update=4", "distributed_training.distributed_world_size=2",
        "distributed_training.distributed_backend=gloo"]))
    assert "spawning 2 gloo processes" in log
    assert "training on 2 devices" in log
    # the two workers split the epoch's batches between them
    single = run(pretrain_command(corpus, tmp_path / "single", ["optimization.max_update=1"]))
    batches = int(re.search(r"epoch 001:\s+1 / (\d+) ", single).group(1))
    per_worker = int(re.search(r"epoch 001:\s+1 / (\d+) ", log).group(1))
    assert per_worker == (batches + 1) // 2, (batches, per_worker)
    updates = updates_logged(log)
    assert updates[:4] == [1, 2, 3, 4]
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


def test_sew_train_prints_the_composed_config_with_cfg_job_after_the_overrides(tmp_path, run):
    # Hydra reads its overrides as one run of positional arguments: the user dir sew-train adds must join them
    proc = subprocess.run(
        [sys.executable, "-m", "sew_fairseq.cli.train", "--config-dir", str(REPO / "recipes" / "demo"),
         "--config-name", "finetune", f"task.data={tmp_path}", f"model.w2v_path={tmp_path}/x.pt",
         f"hydra.run.dir={tmp_path}", "--cfg", "job"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    package = str(REPO / "sew_fairseq")
    assert f"user_dir: {package}" in proc.stdout and f"data: {tmp_path}" in proc.stdout, proc.stdout[-2000:]
    # nothing but the config: no tensorboardX notice (it is installed), no Hydra or torch deprecation warnings
    assert "Warning" not in proc.stdout and "tensorboardX" not in proc.stdout, proc.stdout[:2000]
