"""sclite + GLM scoring (manifests.sclite) on SCTK's own Hub-5 test data and expected reports.

Real inputs and SCTK's expected outputs are in tests/fixtures/switchboard/sctk (see LICENSES.md); the tests
run the real SCTK programs (Debian package ``sctk``) and are skipped where they are not installed.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from manifests.sclite import (ScoreSummary, SctkError, clean_hypothesis, find_sctk_tool, format_segment_id, parse_dtl,
                              parse_segment_id, score_ctm, segments_to_ctm, sort_ctm, trn_to_ctm)
from manifests.trn import write_trn

SCTK = os.path.join(os.path.dirname(__file__), "fixtures", "switchboard", "sctk")


def _have_sctk() -> bool:
    try:
        find_sctk_tool("sclite"), find_sctk_tool("csrfilt.sh")
        return True
    except SctkError:
        return False


needs_sctk = pytest.mark.skipif(not _have_sctk(), reason="SCTK (apt-get install sctk) not installed")


def _lur_rows(path):
    """{speaker or 'Set Sum/Avg': (words, %WE)} from an sclite .lur report."""
    rows = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"\s*\|\s*([\w/ -]+?)\s*\|\s*\[\s*(\d+)\]\s+([\d.]+)\s*\|\|", line)
        if m:
            rows[m.group(1)] = (int(m.group(2)), float(m.group(3)))
    return rows


def test_segment_ids_round_trip():
    uid = format_segment_id("en_4156", "A", 357.64, 359.64)
    assert uid == "en_4156-A_035764-035964"
    assert parse_segment_id("eval2000/en_4156/" + uid) == ("en_4156", "A", 357.64, 359.64)
    with pytest.raises(ValueError, match="not a segment id"):
        parse_segment_id("1089-134686-0000")


def test_clean_hypothesis_drops_what_kaldi_drops():
    words = "UH I [noise] THINK TH- <unk> UM IT'S [LAUGHTER] FINE HM [vocalized-noise]".split()
    assert clean_hypothesis(words) == ["I", "THINK", "IT'S", "FINE"]


def test_segments_to_ctm_spreads_words_inside_the_segment():
    lines = segments_to_ctm([("sw_4390-B_000100-000300", "YES UH WE DID"), ("sw_4390-A_000000-000050", "UM")])
    # UM alone leaves nothing; UH is removed; 3 words share 2.00 s
    assert lines == ["sw_4390 B 1.000 0.667 YES", "sw_4390 B 1.667 0.667 WE", "sw_4390 B 2.333 0.667 DID"]


def test_sort_ctm_keeps_alternation_blocks_together():
    lines = ["2347 B 76.58 0.40 HOME", "2347 A 1.0 0.1 X", ";; comment", "2347 B *     *    <ALT_BEGIN>",
             "2347 B 76.24 0.14 IT", "2347 B *     *    <ALT>", "2347 B 76.38 0.20 AT", "2347 B *     *    <ALT_END>"]
    out = [ln.split()[4] for ln in sort_ctm(lines)]
    assert out == ["X", "<ALT_BEGIN>", "IT", "<ALT>", "AT", "<ALT_END>", "HOME"]


@needs_sctk
@pytest.mark.parametrize("stm,expected", [("lvc_ref.stm", "test3.lur"), ("lvc_refe.stm", "test3a.lur")])
def test_plain_sclite_matches_sctk_expected_reports(tmp_path, stm, expected):
    """SCTK's test3 / test3a: ``sclite -r lvc_ref(e).stm stm -h lvc_hyp.ctm ctm`` (no -F -D, no GLM)."""
    want = _lur_rows(os.path.join(SCTK, "expected", expected))
    subsets = {"all": None, "2347": "2347", "3129": "3129"}
    got = score_ctm(os.path.join(SCTK, "testdata", stm), os.path.join(SCTK, "testdata", "lvc_hyp.ctm"),
                    tmp_path, subsets=subsets, hub5_flags=False)
    words, wer = want["Set Sum/Avg"]
    assert got["all"].ref_words == words and round(got["all"].wer, 1) == wer
    # per conversation: the two speakers' words add up
    for conv in ("2347", "3129"):
        assert got[conv].ref_words == want[f"{conv}-a"][0] + want[f"{conv}-b"][0]


@needs_sctk
def test_glm_scoring_matches_hubscr_expected_report(tmp_path):
    """SCTK's hubscr test1: ``hubscr.pl -l english -h hub5 -g example.glm -r lvc_refe.stm lvc_hyp.ctm``."""
    want = parse_dtl(os.path.join(SCTK, "expected", "hubscr_test1_lvc_hyp.ctm.filt.dtl"))
    assert want == ScoreSummary(58, 1676, 959, 503, 214, 166, 883)  # the numbers in SCTK's file
    got = score_ctm(os.path.join(SCTK, "test_suite", "lvc_refe.stm"), os.path.join(SCTK, "test_suite", "lvc_hyp.ctm"),
                    tmp_path, glm=os.path.join(SCTK, "test_suite", "example.glm"), subsets={"all": None})
    assert got["all"] == want
    assert round(got["all"].wer, 1) == 52.7


@needs_sctk
def test_hub5_subsets_and_glm_by_hand(tmp_path):
    """Switchboard and CallHome halves with the RT-03 GLM: counts checked by hand."""
    stm = tmp_path / "ref.stm"
    stm.write_text(
        ';; LABEL "O" "Overall" "Overall"\n'
        "en_4156 A en_4156_A 10.00 14.00 <O,en,F,en-F> YES WE DID GO TO THE STORE ON MONDAY NIGHT\n"
        "sw_4390 B sw_4390_B 1.00 5.00 <O,en,M,en-M> WE ARE GONNA FIX THE CAR TODAY AND THEN LEAVE\n")
    hyp = tmp_path / "hyp.trn"
    write_trn(hyp, [
        (format_segment_id("en_4156", "A", 10.0, 14.0), "YES WE DID GO TO THE STORE ON SUNDAY NIGHT"),
        (format_segment_id("sw_4390", "B", 1.0, 5.0), "UH WE ARE GOING TO FIX THE BAR TODAY AND THEN LEAVE [noise]"),
    ])
    ctm = tmp_path / "hyp.ctm"
    assert trn_to_ctm(hyp, ctm) == 10 + 11  # UH and [noise] removed
    glm = os.path.join(SCTK, "en20030506.glm")
    got = score_ctm(stm, ctm, tmp_path / "glm", glm=glm)
    # CallHome: MONDAY -> SUNDAY, 1 of 10; Switchboard: GONNA -> GOING TO by the GLM, CAR -> BAR, 1 of 11
    assert (got["callhome"].errors, got["callhome"].ref_words, got["callhome"].wer) == (1, 10, 10.0)
    assert (got["swbd"].errors, got["swbd"].ref_words) == (1, 11)
    assert (got["all"].errors, got["all"].ref_words) == (2, 21)
    # without the GLM GONNA vs GOING TO costs a substitution and an insertion
    plain = score_ctm(stm, ctm, tmp_path / "plain", subsets={"swbd": "sw_"})
    assert (plain["swbd"].substitutions, plain["swbd"].insertions, plain["swbd"].ref_words) == (2, 1, 10)


@needs_sctk
def test_score_cli(tmp_path, capsys):
    from manifests.sclite import main

    stm = tmp_path / "ref.stm"
    stm.write_text("sw_4390 A sw_4390_A 0.00 2.00 <O> ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN\n")
    hyp = tmp_path / "hyp.trn"
    write_trn(hyp, [("sw_4390-A_000000-000200", "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN")])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "scores.json").write_text("{}")  # an earlier run's: replaced whole, never rewritten in place
    earlier = os.stat(tmp_path / "out" / "scores.json").st_ino
    assert main(["--hyp-trn", str(hyp), "--stm", str(stm), "--out-dir", str(tmp_path / "out")]) == 0
    assert os.stat(tmp_path / "out" / "scores.json").st_ino != earlier  # written to a temporary, then renamed
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".tmp-")]  # no temporary left
    scores = json.load(open(tmp_path / "out" / "scores.json"))
    assert scores["all"]["wer"] == 0.0 and scores["swbd"]["ref_words"] == 10 and "callhome" not in scores
    assert "swbd" in capsys.readouterr().out
    assert main(["--hyp-trn", str(hyp), "--stm", str(tmp_path / "missing.stm"), "--out-dir", str(tmp_path / "o2")]) == 1


def test_sew_score_is_installed_with_help():
    # the console script setup.py declares (make setup installs it next to this interpreter)
    exe = Path(sys.executable).parent / "sew-score"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("usage: sew-score") and "--hyp-trn" in out and "--glm" in out
