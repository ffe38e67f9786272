"""`make demo`'s recipe runs its stages end to end (small corpus, few updates) and shows the loss falling."""
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_recipe_runs_all_stages(tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        ["bash", str(REPO / "recipes" / "demo.sh"), "--work", str(tmp_path), "--utterances", "40",
         "--max-update", "40", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "corpus" / "train.tsv").exists()
    assert (tmp_path / "pretrain_continuous" / "ckpt" / "checkpoint_last.pt").exists()
    # stage 2's table: one row per logged step; the validation loss falls from the first epoch to the last
    valid = [float(m.group(1)) for m in re.finditer(r"^valid\s+\d+\s+([\d.]+)", proc.stdout, re.M)]
    assert len(valid) >= 2 and valid[-1] < valid[0], proc.stdout[-3000:]
    assert re.search(r"^train\s+25\s", proc.stdout, re.M)
