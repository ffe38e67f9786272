"""Shared pytest fixtures: the real-speech fixture directory, a tiny synthetic demo corpus, small checkpoints, and
the way tests run the project's commands (``run``, ``pretrain_command``)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable, List

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = FIXTURES.parents[1]

# sew_d_tiny's recipe with a model small enough to train in seconds on a CPU
TINY_PRETRAINING = [
    "model.encoder_layers=1", "model.encoder_embed_dim=64", "model.encoder_ffn_embed_dim=128",
    "model.encoder_attention_heads=1", "model.wfe_channels=8", "model.mlp_hidden_size=32", "model.final_dim=32",
    "model.latent_vars=16", "model.num_negatives=10", "model.mask_length=4", "model.encoder_layerdrop=0.0",
    "dataset.max_tokens=48000", "optimization.update_freq=[1]", "lr_scheduler.warmup_updates=2",
    "task.max_sample_size=32000", "task.min_sample_size=8000", "dataset.num_workers=0",
    "common.log_format=simple", "common.log_interval=1", "common.cpu=true", "common.seed=3",
]


@pytest.fixture(scope="session")
def run() -> Callable[..., str]:
    """``run(cmd, timeout=240)``: run a command in the repository root; its stdout+stderr, asserting exit 0."""
    def run_command(cmd: List[str], timeout: float = 240) -> str:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              cwd=REPO)
        assert proc.returncode == 0, proc.stdout[-4000:]
        return proc.stdout

    return run_command


@pytest.fixture(scope="session")
def pretrain_command() -> Callable[..., List[str]]:
    """``pretrain_command(data, out, extra)``: ``sew-train`` of recipes/pretraining/sew_d_tiny.yaml with a model
    small enough to train in seconds on a CPU (:data:`TINY_PRETRAINING`), checkpoints in ``out/ckpt``."""
    def command(data: Path, out: Path, extra: List[str]) -> List[str]:
        return [sys.executable, "-m", "sew_fairseq.cli.train", "--config-dir", str(REPO / "recipes" / "pretraining"),
                "--config-name", "sew_d_tiny", f"task.data={data}", f"checkpoint.save_dir={out}/ckpt",
                f"hydra.run.dir={out}/hydra"] + ["++" + o for o in TINY_PRETRAINING] + extra

    return command


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``tests/fixtures`` (real recordings; see fixtures/LICENSES.md)."""
    return FIXTURES


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory):
    """A 6-utterance eSpeak NG demo corpus (5 train, 1 valid), generated once per session."""
    from manifests.demo import prepare_demo

    return prepare_demo(tmp_path_factory.mktemp("demo") / "corpus", num_utterances=6, seed=0,
                            progress=False)


@pytest.fixture(scope="session")
def ctc_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fine-tuned ``sew_ctc`` checkpoint of a reduced SEW-D (2 layers, D=128) with random weights and the letter
    dictionary inside, laid out as fairseq-hydra-train writes it."""
    from convert_helpers import write_plugin_checkpoint

    return write_plugin_checkpoint(tmp_path_factory.mktemp("ctc") / "checkpoint.pt", "sew_d_c", ctc=True)


@pytest.fixture(scope="session")
def fairseq_made(tmp_path_factory: pytest.TempPathFactory):
    """Tiny wav2vec 2.0 / HuBERT checkpoints, pretrained and fine-tuned by fairseq itself (tests/fairseq_made.py)."""
    from fairseq_made import make_fairseq_checkpoints

    return make_fairseq_checkpoints(tmp_path_factory.mktemp("fairseq_made"))


#: Fixtures that train through fairseq-hydra-train or run a whole recipe: a test that uses one (directly or through
#: another fixture) is recipe-scale and gets the ``slow`` marker.
RECIPE_SCALE_FIXTURES = {"run", "pretrain_command", "fairseq_made", "demo", "recipe"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if RECIPE_SCALE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
