"""Shared pytest fixtures: the real-speech fixture directory and a tiny synthetic demo corpus."""
from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


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
