"""``sew-bench speed --against hf`` runs, checks equal outputs and prints the ratio (a benchmark: no timing
asserted)."""
import re

import pytest

pytest.importorskip("transformers")

from sew_fairseq.cli.bench import main  # noqa: E402


def test_speed_against_hf_prints_ratio_and_equal_outputs(capsys):
    assert main(["speed", "--presets", "sew_d_tiny", "--seconds", "0.5", "--repeats", "1", "--against", "hf"]) == 0
    out = capsys.readouterr().out
    row = re.search(r"^sew_d_tiny\s+24\.1M\s+[\d.]+\s+[\d.]+\s+([\d.]+)x\s+([\d.e+-]+)", out, re.MULTILINE)
    assert row, out
    assert float(row.group(1)) > 0 and float(row.group(2)) <= 1e-4


def test_against_hf_refuses_presets_without_a_port(capsys):
    assert main(["speed", "--presets", "w2v2_tiny", "--seconds", "0.5", "--repeats", "1", "--against", "hf"]) == 2
    assert "w2v2_tiny" in capsys.readouterr().err


def test_speed_table_says_the_batch_it_ran():
    """--batch 2: the header says batch 2 (it said batch 1 whatever ran) and the real-time factor divides by the audio
    of both utterances."""
    from sew_fairseq.bench.speed import format_rows, run_speed

    rows = run_speed(["sew_d_tiny"], seconds=0.5, repeats=1, threads=2, batch=2)
    assert "0.5 s of audio, batch 2," in format_rows(rows, 0.5, 2, 1, batch=2)
    for row in rows:
        assert row["rtf"] == pytest.approx(row["median_s"] / (2 * 0.5))
