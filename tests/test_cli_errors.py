"""Every console script words its errors as argparse does, ``<prog>: error: <message>`` (one helper,
manifests.common.cli_error, re-exported by sew_fairseq.cli.options), with the exit status of the failure."""
from __future__ import annotations

import pytest


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_sew_fairseq_commands(tmp_path, capsys):
    from manifests import lexicon as lm
    from manifests import sclite as score
    from manifests import training_log as log_summary
    from sew_fairseq.cli import convert

    assert log_summary.main([str(tmp_path / "train.log")]) == 1
    assert error_line(capsys).startswith(f"sew-log-summary: error: cannot read {tmp_path / 'train.log'}: ")
    (tmp_path / "train.log").write_text("not json\n")
    assert log_summary.main([str(tmp_path / "train.log")]) == 1
    assert error_line(capsys) == (f"sew-log-summary: error: {tmp_path / 'train.log'} has no train_inner/valid json "
                                  f"records (was common.log_format=json?)")
    assert lm.main(["lexicon", "-o", str(tmp_path / "lexicon.txt")]) == 2
    assert error_line(capsys) == "sew-lm: error: no words: give --wrd files or --words"
    (tmp_path / "hyp.ctm").write_text("")
    assert score.main(["--ctm", str(tmp_path / "hyp.ctm"), "--stm", str(tmp_path / "missing.stm"), "--out-dir",
                       str(tmp_path / "sclite")]) == 1
    assert error_line(capsys).startswith("sew-score: error: ")
    pytest.importorskip("transformers")
    assert convert.main(["from-hf", str(tmp_path / "nowhere"), str(tmp_path / "o.pt")]) == 1
    assert error_line(capsys).startswith("sew-convert: error: ")


def test_manifest_commands(tmp_path, capsys):
    from manifests.__main__ import main as sew_manifest

    assert sew_manifest(["nocorpus"]) == 2
    assert error_line(capsys).startswith("sew-manifest: error: unknown corpus 'nocorpus'; choose from librispeech")
    (tmp_path / "empty").mkdir()
    assert sew_manifest(["librispeech", "--root", str(tmp_path / "empty"), "--dest", str(tmp_path / "out")]) == 1
    assert error_line(capsys).startswith("sew-manifest librispeech: error: no LibriSpeech split found under ")


def test_sew_bench_and_sew_infer(tmp_path, capsys):
    from sew_fairseq.cli import infer
    from sew_fairseq.cli.bench import main as sew_bench

    assert sew_bench(["speed", "--seconds", "0"]) == 2
    assert error_line(capsys) == "sew-bench: error: --seconds, --repeats, --threads and --batch must be positive"
    assert sew_bench(["decode", "--lm", str(tmp_path / "missing.arpa")]) == 2
    assert error_line(capsys) == f"sew-bench: error: --lm file not found: {tmp_path / 'missing.arpa'}"
    assert sew_bench(["tradeoff", str(tmp_path / "c.pt"), "--data", str(tmp_path), "--split", "x"]) == 1
    assert error_line(capsys).startswith(f"sew-bench: error: {tmp_path / 'x.tsv'}: cannot read the manifest")
    assert infer.main([str(tmp_path / "c.pt"), "--data", str(tmp_path), "--split", "x", "--decoder", "kenlm"]) == 2
    assert error_line(capsys) == "sew-infer: error: --decoder kenlm needs --lm"
    assert infer.main([str(tmp_path / "missing.pt"), "--data", str(tmp_path), "--split", "x", "--device", "cpu"]) == 1
    line = error_line(capsys)
    assert line.startswith("sew-infer: error: ") and "missing.pt" in line
