"""manifests.switchboard on LDC-format fixtures of real speech (tests/fixtures/switchboard, DERIVED: LICENSES.md).

The two conversations are real recordings laid out as 2-channel 8 kHz mu-law SPHERE (side A channel 1,
side B channel 2) with ms98-format transcripts; eval2000 reuses them under Hub5 names with a Hub5-format STM.
"""
import json
import os
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import soxr

from manifests.common import ManifestError
from manifests.switchboard import main, prepare_switchboard, segment_id, sphere_header
from manifests.switchboard_text import normalize_stm_text, normalize_words

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "switchboard")
ROOT = os.path.join(FIX, "LDC97S62")
SWB1 = os.path.join(ROOT, "swb1")
HUB5_TR = os.path.join(FIX, "LDC2002T43")
GLM = os.path.join(FIX, "sctk", "en20030506.glm")

# kept segments: (split, conversation, side, start, end, words)
EXPECTED = {
    "dev": [("sw02001", "A", 0.30, 2.385, "HE COULD WAIT NO LONGER"),
            ("sw02001", "B", 2.60, 5.875, "STUFF IT INTO YOU HIS BELLY COUNSELLED HIM")],
    "train": [("sw02005", "A", 0.50, 3.82, "THE TWO STRAY KITTENS GRADUALLY MAKE THEMSELVES AT HOME"),
              ("sw02005", "B", 4.20, 7.535, "CAPTAIN FRERE SAYS THAT THE SCENERY IS DELIGHTFUL")],
}


def _norm(text, **kw):
    stats = Counter()
    return normalize_words(text, stats, **kw), stats


@pytest.mark.parametrize("text,words,rule", [
    ("[silence] yes [silence]", "YES", "removed_silence"),
    ("[noise] yes", "YES", "removed_noise"),
    ("yes [vocalized-noise]", "YES", "removed_vocalized-noise"),
    ("[laughter] yes", "YES", "removed_laughter"),
    ("<b_aside> hold on <e_aside>", "HOLD ON", "removed_b_aside"),
    ("[laughter-yes] right", "YES RIGHT", "laughter_words"),
    ("[laughter-story]", "STORY", "laughter_words"),
    ("it [it'n/isn't] so", "IT IT'N SO", "mispronunciations"),
    ("i th[ink]- think so", "I THINK SO", "partial_words"),
    ("-[an]y way", "WAY", "partial_words"),
    ("ab[solute]- absolutely", "ABSOLUTELY", "partial_words"),
    ("abso- absolutely", "ABSOLUTELY", "partial_words"),
    ("{yuppiedom} is", "YUPPIEDOM IS", "coinages"),
    ("them_1 and them_1's", "THEM AND THEM'S", "numbered_variants"),
    ("the t_v is on", "THE T V IS ON", "spelled_acronyms"),
    ("at&t calls", "AT AND T CALLS", "ampersands"),
    ("an x-ray", "AN X RAY", "hyphenated_split"),
    ("uh-huh right", "UHHUH RIGHT", "backchannels_joined"),
    ("[mn] okay [sigh]", "OKAY", "removed_other_tags"),
])
def test_normalisation_rules_one_by_one(text, words, rule):
    got, stats = _norm(text)
    assert got == words and stats[rule] >= 1


def test_hesitations_and_partial_word_options():
    assert _norm("uh i um think")[0] == "UH I UM THINK"  # kept, as Kaldi does for training
    got, stats = _norm("uh i um think", drop_hesitations=True)
    assert got == "I THINK" and stats["hesitations_removed"] == 2
    assert _norm("i th[ink]- think", keep_partial=True)[0] == "I TH- THINK"
    assert _norm("-[an]y", keep_partial=True)[0] == "-Y"


def test_hub5_stm_text():
    stats = Counter()
    assert normalize_stm_text("(%HESITATION) I { UM / UH } KNOW ((THAT)) <B_ASIDE> OK", stats) == "I UM KNOW THAT OK"


def test_sphere_header_of_the_fixture():
    h = sphere_header(os.path.join(SWB1, "sw02001.sph"))
    assert (h["channel_count"], h["sample_rate"], h["sample_coding"]) == ("2", "8000", "ulaw")


def _build(tmp_path, **kw):
    return prepare_switchboard(ROOT, tmp_path / "out", dev_conversations=1, workers=1, progress=False, **kw)


def test_train_and_dev_on_real_speech(tmp_path):
    reports = _build(tmp_path)
    dest = tmp_path / "out"
    assert {s: r.kept for s, r in reports.items()} == {"dev": 2, "train": 2}
    for split, want in EXPECTED.items():
        lines = open(dest / f"{split}.tsv").read().splitlines()
        assert lines[0] == str(dest / "audio" / split) and len(lines) == 1 + len(want)
        assert open(dest / f"{split}.wrd").read().splitlines() == [w[4] for w in want]
        assert open(dest / f"{split}.ltr").read().splitlines()[0].endswith(" |")
        for line, (conv, side, start, end, _) in zip(lines[1:], want):
            rel, n = line.split("\t")
            assert rel == f"{conv}/{segment_id(conv, side, start, end)}.flac"
            info = sf.info(os.path.join(lines[0], rel))
            assert (info.samplerate, info.channels) == (16000, 1)
            assert int(n) == info.frames == round(end * 16000) - round(start * 16000)
    norm = json.load(open(dest / "train.report.json"))["normalisation"]
    assert norm["removed_silence"] == 3 and norm["segments_without_words"] == 4 and norm["laughter_words"] == 1
    assert json.load(open(dest / "dev.report.json"))["normalisation"]["partial_words"] == 1
    assert "CAPTAIN\tC A P T A I N |" in open(dest / "lexicon.txt").read()
    assert "HE COULD" not in open(dest / "lm.txt").read()  # dev stays out of the LM text
    # idempotent: a second run (2 workers) gives the same files
    before = {f: open(dest / f, "rb").read() for f in os.listdir(dest) if f.endswith((".tsv", ".wrd", ".ltr", ".txt"))}
    prepare_switchboard(ROOT, dest, dev_conversations=1, workers=2, progress=False)
    assert before == {f: open(dest / f, "rb").read() for f in before}


def test_channels_are_split_and_resampled(tmp_path):
    _build(tmp_path)
    src, rate = sf.read(os.path.join(SWB1, "sw02005.sph"), dtype="float32")
    assert rate == 8000 and src.shape[1] == 2
    for side, start, end in (("A", 0.50, 3.82), ("B", 4.20, 7.535)):
        ch = 0 if side == "A" else 1
        name = f"{segment_id('sw02005', side, start, end)}.flac"
        got, sr = sf.read(tmp_path / "out" / "audio" / "train" / "sw02005" / name,
                          dtype="float32")
        ref = soxr.resample(src[:, ch], 8000, 16000, quality="HQ")[round(start * 16000):round(end * 16000)]
        assert sr == 16000 and np.max(np.abs(got - ref)) <= 1.5 / 32768  # the side's own channel, resampled
        other = soxr.resample(src[:, 1 - ch], 8000, 16000, quality="HQ")[round(start * 16000):round(end * 16000)]
        assert np.sqrt(np.mean(got ** 2)) > 10 * np.sqrt(np.mean(other ** 2))  # the other side is silent then


def test_eval2000_and_sclite_scoring(tmp_path):
    from manifests.sclite import SctkError, find_sctk_tool, score_ctm, trn_to_ctm
    from manifests.trn import write_trn

    hub5 = tmp_path / "LDC2002S09" / "hub5e_00"
    (hub5 / "english").mkdir(parents=True)
    shutil.copy(os.path.join(SWB1, "sw02001.sph"), hub5 / "english" / "en_4156.sph")
    shutil.copy(os.path.join(SWB1, "sw02005.sph"), hub5 / "english" / "sw_4390.sph")
    tr = tmp_path / "LDC2002T43"
    shutil.copytree(HUB5_TR, tr)
    shutil.copy(GLM, tr / "2000_hub5_eng_eval_tr" / "reference" / "en20000405_hub5.glm")
    reports = _build(tmp_path, hub5_audio=str(hub5), hub5_transcripts=str(tr))
    dest = tmp_path / "out"
    assert reports["eval2000"].kept == 4
    normalisation = json.load(open(dest / "eval2000.report.json"))["normalisation"]
    assert normalisation["segments_ignore_time_segment_in_scoring"] == 1
    stm = open(dest / "eval2000.stm").read()
    assert "<B_ASIDE>" not in stm and "((" not in stm and "(DELIGHTFUL)" in stm
    assert os.path.isfile(dest / "eval2000.glm")
    rows = [ln.split("\t")[0] for ln in open(dest / "eval2000.tsv").read().splitlines()[1:]]
    refs = open(dest / "eval2000.wrd").read().splitlines()
    assert refs[1] == "STUFF IT INTO YOU HIS BELLY COUNSELLED HIM"
    try:
        find_sctk_tool("sclite")
    except SctkError:
        pytest.skip("SCTK not installed")
    ids = [os.path.splitext(r)[0] for r in rows]  # what sew-infer writes as utterance ids
    hyps = list(refs)
    hyps[1] = hyps[1].replace("BELLY", "BERRY")  # one CallHome substitution
    write_trn(tmp_path / "hyp.trn", list(zip(ids, hyps)))
    trn_to_ctm(tmp_path / "hyp.trn", tmp_path / "hyp.ctm")
    got = score_ctm(dest / "eval2000.stm", tmp_path / "hyp.ctm", tmp_path / "sc", glm=dest / "eval2000.glm")
    assert (got["swbd"].errors, got["swbd"].ref_words) == (0, 9 + 8)
    # 5 + 8 words + the optionally deletable (%HESITATION): counted as a reference word, no error when absent
    assert (got["callhome"].errors, got["callhome"].substitutions, got["callhome"].ref_words) == (1, 1, 14)
    assert got["all"].errors == 1


def test_fisher_lm_text(tmp_path):
    fisher = tmp_path / "fe_03_p1_tran" / "data" / "trans" / "000"
    fisher.mkdir(parents=True)
    (fisher / "fe_03_00001.txt").write_text(
        "# fe_03_00001.sph\n\n0.27 1.85 A: ((yeah)) [laughter] i think so\n2.00 3.10 B: [noise]\nbad line\n")
    reports = _build(tmp_path, fisher_dirs=[str(tmp_path / "fe_03_p1_tran")])
    lm = open(tmp_path / "out" / "lm.txt").read().splitlines()
    assert lm == [w[4] for w in EXPECTED["train"]] + ["YEAH I THINK SO"]
    assert "YEAH\tY E A H |" in open(tmp_path / "out" / "lexicon.txt").read()
    assert reports["train"].info["fisher_lm_lines"] == 1


def _bad_corpus(tmp_path):
    root = tmp_path / "swbd"
    shutil.copytree(ROOT, root / "LDC97S62")
    shutil.copytree(os.path.join(FIX, "swb_ms98_transcriptions"), root / "swb_ms98_transcriptions")
    tr = root / "swb_ms98_transcriptions" / "20"
    with open(tr / "2005" / "sw2005A-ms98-a-trans.text", "a") as f:
        f.write("sw2005A-ms98-a-0004 8.0\n")                      # line 4: bad line
        f.write("sw2005A-ms98-a-0005 5.00 5.00 empty\n")          # line 5: empty segment
        f.write("sw2005A-ms98-a-0006 9.00 9.50 too late\n")       # line 6: beyond the 8 s audio
        f.write("sw2005A-ms98-a-0007 4.00 4.50 50% off\n")        # line 7: symbols
    (tr / "2010").mkdir()
    (tr / "2010" / "sw2010A-ms98-a-trans.text").write_text("sw2010A-ms98-a-0001 0.0 1.0 no audio\n")
    swb1 = root / "LDC97S62" / "swb1"
    shutil.copy(swb1 / "sw02001.sph", swb1 / "sw02020.sph")        # audio without transcript
    for conv in ("2030", "2040", "2050"):
        (tr / conv).mkdir()
        (tr / conv / f"sw{conv}A-ms98-a-trans.text").write_text(f"sw{conv}A-ms98-a-0001 0.0 1.0 hello\n")
    x, sr = sf.read(swb1 / "sw02001.sph", dtype="float32")         # its side A alone: a 1-channel SPHERE
    sf.write(swb1 / "sw02030.sph", x[:, 0], sr, format="NIST", subtype="ULAW")
    header = open(swb1 / "sw02001.sph", "rb").read(1024).replace(b"-s4 ulaw", b"-s26 ulaw,embedded-shorten-v2.00")
    (swb1 / "sw02040.sph").write_bytes(header[:1024] + b"\0" * 64)  # shorten-compressed (LDC's discs)
    (swb1 / "sw02050.sph").write_bytes(b"")
    return root / "LDC97S62"


def test_bad_files_are_counted_and_strict_fails(tmp_path):
    root = _bad_corpus(tmp_path)
    reports = prepare_switchboard(root, tmp_path / "out", dev_conversations=1, progress=False)
    r = reports["train"]
    assert r.kept == 2
    assert dict(r.counts) == {"bad_line": 1, "empty_segment": 1, "segment_beyond_audio": 1,
                              "dropped_by_normalisation": 1, "transcript_without_audio": 1,
                              "audio_without_transcript": 1, "wrong_channels": 1, "unreadable": 1, "empty": 1}
    assert "--sph2pipe" in r.examples["unreadable"][0]
    assert r.examples["segment_beyond_audio"][0].endswith("sw2005A-ms98-a-trans.text:6: starts at 9.0 s, audio is 8.00 "
                                                          "s")
    with pytest.raises(ManifestError, match=r"sw2005A-ms98-a-trans\.text:4"):
        prepare_switchboard(root, tmp_path / "strict", dev_conversations=1, strict=True, progress=False)
    assert main(["--root", str(root), "--dest", str(tmp_path / "cli"), "--dev-conversations", "1", "--strict",
                 "--no-progress"]) == 1
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0


def test_recipe_manifest_stage(tmp_path):
    """recipes/switchboard.sh stage 0 (sew-manifest switchboard with Hub5'00) on the fixtures (its stage 1 is
    recipes/tedlium.sh's, run by tests/test_manifests_tedlium.py)."""
    import subprocess
    import sys

    hub5 = tmp_path / "hub5e_00"
    (hub5 / "english").mkdir(parents=True)
    shutil.copy(os.path.join(SWB1, "sw02001.sph"), hub5 / "english" / "en_4156.sph")
    shutil.copy(os.path.join(SWB1, "sw02005.sph"), hub5 / "english" / "sw_4390.sph")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"
    proc = subprocess.run(["bash", os.path.join(repo, "recipes", "switchboard.sh"), "--stage", "0",
                           "--swbd-dir", ROOT, "--hub5-audio", str(hub5), "--hub5-transcripts", HUB5_TR,
                           "--dev-conversations", "1", "--work-dir", str(work), "--workers", "2", "--stop-stage", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    data = work / "data"
    assert open(data / "train.wrd").read().splitlines() == [w[4] for w in EXPECTED["train"]]
    assert len(open(data / "eval2000.tsv").read().splitlines()) == 1 + 4 and (data / "eval2000.stm").exists()
    assert "stage 0: manifests" in proc.stdout and "stage 1" not in proc.stdout
