"""manifests.tedlium on a TED-LIUM 3 layout of real speech (tests/fixtures/tedlium, DERIVED: see LICENSES.md)."""
import json
import os
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from manifests.common import ManifestError
from manifests.tedlium import main, normalize_words, parse_stm_line, prepare_tedlium, segment_id

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "tedlium", "TEDLIUM_release-3")
LEGACY = os.path.join(FIXTURE, "legacy")
STEREO = os.path.join(os.path.dirname(__file__), "fixtures", "derived", "1089-134691-0000_stereo.flac")

# the kept segments of the fixture STMs: (split, talk, start, end, words)
EXPECTED = [
    ("train", "JFKInaugural_1961", 0.25, 2.20, "AND SO MY FELLOW AMERICANS"),
    ("train", "JFKInaugural_1961", 3.20, 4.40, "ASK NOT"),
    ("train", "JFKInaugural_1961", 5.35, 7.60, "WHAT YOUR COUNTRY CAN DO FOR YOU"),
    ("train", "JFKInaugural_1961", 8.10, 10.40, "ASK WHAT YOU CAN DO FOR YOUR COUNTRY"),
    ("dev", "LibriVox1988_24833", 0.15, 1.62, "WHEN ARE YOU GETTING RID OF THESE CATS"),
    ("dev", "LibriVox1988_24833", 1.80, 4.70, "I'M NOT FIXING TO START AN ANNEX TO KATE'S CAT HOME"),
    ("test", "LibriVox1089_134691", 0.50, 1.75, "HE COULD WAIT NO LONGER"),
]


def _read_split(dest, split):
    lines = open(os.path.join(dest, f"{split}.tsv")).read().splitlines()
    rows = [ln.split("\t") for ln in lines[1:]]
    return lines[0], rows, open(os.path.join(dest, f"{split}.wrd")).read().splitlines(), \
        open(os.path.join(dest, f"{split}.ltr")).read().splitlines()


def test_normalisation_rules_one_by_one():
    assert normalize_words("it 's they 're doesn 't") == "IT'S THEY'RE DOESN'T"
    assert normalize_words("'cause we can") == "'CAUSE WE CAN"  # nothing before it to join
    assert normalize_words("that(2) is the(3) point") == "THAT IS THE POINT"
    assert normalize_words("<unk> so <UNK> yes") == "SO YES"
    assert normalize_words("{NOISE} well {SMACK} {BREATH} <sil> {COUGH} [laughter] ok") == "WELL OK"
    stats = Counter()
    normalize_words("it 's a(2) {NOISE} <unk> day", stats)
    assert stats == Counter(joined_contractions=1, pronunciation_variants=1, noise_tags=1, unk_tokens=1)


def test_parse_stm_line():
    seg = parse_stm_line("AlGore_2009 1 AlGore_2009 17.82 28.81 <o,f0,male> so it 's here\n")
    assert (seg.talk, seg.channel, seg.start, seg.end, seg.label, seg.text) == \
        ("AlGore_2009", "1", 17.82, 28.81, "<o,f0,male>", "so it 's here")
    assert parse_stm_line(";; comment") is None and parse_stm_line("  \n") is None
    assert parse_stm_line("t 1 t 1.0 2.0 <unk> word").text == "<unk> word"  # a tag, not a label
    with pytest.raises(ValueError, match="not numbers"):
        parse_stm_line("t 1 t 1.0 x <o,f0,male> a")
    assert segment_id("AlGore_2009", 17.82, 28.81) == "AlGore_2009-0001782-0002881"


def test_legacy_layout_on_real_speech(tmp_path):
    dest = tmp_path / "out"
    reports = prepare_tedlium(FIXTURE, dest, workers=1, progress=False)
    assert {s: r.kept for s, r in reports.items()} == {"train": 4, "dev": 2, "test": 1}
    for split in ("train", "dev", "test"):
        want = [e for e in EXPECTED if e[0] == split]
        root, rows, wrd, ltr = _read_split(dest, split)
        assert root == str(dest / "audio" / split)
        assert wrd == [e[4] for e in want]
        assert ltr[0].endswith(" |") and ltr[0].replace(" ", "").replace("|", " ").strip() == wrd[0]
        for (rel, n), (_, talk, start, end, _) in zip(rows, want):
            assert rel == f"{talk}/{segment_id(talk, start, end)}.flac"
            info = sf.info(os.path.join(root, rel))
            assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
            assert int(n) == info.frames and abs(info.frames - (end - start) * 16000) <= 1
            # the cut is the source samples themselves (16 kHz in, no resampling)
            src, _ = sf.read(os.path.join(LEGACY, split, "sph", f"{talk}.sph"), dtype="int16")
            got, _ = sf.read(os.path.join(root, rel), dtype="int16")
            np.testing.assert_array_equal(got, src[round(start * 16000):round(start * 16000) + len(got)])
    norm = json.load(open(dest / "train.report.json"))["normalisation"]
    assert norm == {"noise_tags": 4, "pronunciation_variants": 2, "segments_ignore_time_segment_in_scoring": 1,
                    "segments_without_words": 1, "unk_tokens": 1}
    assert json.load(open(dest / "dev.report.json"))["normalisation"] == {"joined_contractions": 2, "noise_tags": 1}
    lexicon = open(dest / "lexicon.txt").read().splitlines()
    assert "AMERICANS\tA M E R I C A N S |" in lexicon and not any(ln.startswith("KATE'S") for ln in lexicon)
    assert open(dest / "lm.txt").read().splitlines() == [e[4] for e in EXPECTED if e[0] == "train"]
    assert "' " in open(dest / "dict.ltr.txt").read()  # the apostrophe of I'M / KATE'S
    # idempotent: a second run gives the same files
    before = {f: open(dest / f, "rb").read() for f in os.listdir(dest) if f.endswith((".tsv", ".wrd", ".ltr", ".txt"))}
    prepare_tedlium(FIXTURE, dest, workers=2, progress=False)
    assert before == {f: open(dest / f, "rb").read() for f in before}


def test_speaker_adaptation_layout(tmp_path):
    root = tmp_path / "TEDLIUM_release-3"
    shutil.copytree(os.path.join(LEGACY, "dev"), root / "speaker-adaptation" / "dev")
    with pytest.raises(ManifestError, match="no TED-LIUM legacy layout"):
        prepare_tedlium(root, tmp_path / "out", progress=False)
    reports = prepare_tedlium(root, tmp_path / "out", layout="speaker-adaptation", progress=False)
    assert list(reports) == ["dev"] and reports["dev"].kept == 2
    assert json.load(open(tmp_path / "out" / "dev.report.json"))["layout"] == "speaker-adaptation"


def _bad_corpus(tmp_path):
    root = tmp_path / "TEDLIUM_release-3" / "legacy" / "train"
    shutil.copytree(os.path.join(LEGACY, "test"), root)
    sph, stm = root / "sph", root / "stm"
    with open(stm / "LibriVox1089_134691.stm", "a") as f:
        f.write("LibriVox1089_134691 1 LibriVox1089_134691 1.0\n")                       # line 2: bad
        f.write("LibriVox1089_134691 1 LibriVox1089_134691 1.50 1.50 <o,f0,male> no\n")   # line 3: empty
        f.write("LibriVox1089_134691 1 LibriVox1089_134691 3.00 4.00 <o,f0,male> gone\n")  # line 4: beyond
        f.write("LibriVox1089_134691 1 LibriVox1089_134691 1.75 2.05 <o,f0,male> 42 km\n")  # line 5: digits
    (stm / "NoAudio_2000.stm").write_text("NoAudio_2000 1 NoAudio_2000 0.0 1.0 <o,f0,male> hello\n")
    shutil.copy(sph / "LibriVox1089_134691.sph", sph / "NoText_2001.sph")
    x, sr = sf.read(STEREO, dtype="int16")
    sf.write(sph / "Stereo_2002.sph", x, sr, format="NIST", subtype="PCM_16")
    (stm / "Stereo_2002.stm").write_text("Stereo_2002 1 Stereo_2002 0.0 1.0 <o,f0,male> he could\n")
    (sph / "Empty_2003.sph").write_bytes(b"")
    (stm / "Empty_2003.stm").write_text("Empty_2003 1 Empty_2003 0.0 1.0 <o,f0,male> nothing\n")
    (sph / "Broken_2004.sph").write_bytes(b"NIST_1A\n   1024\nnot a header at all" + b"\0" * 100)
    (stm / "Broken_2004.stm").write_text("Broken_2004 1 Broken_2004 0.0 1.0 <o,f0,male> nothing\n")
    return tmp_path / "TEDLIUM_release-3"


def test_bad_files_are_counted_and_strict_fails(tmp_path):
    root = _bad_corpus(tmp_path)
    reports = prepare_tedlium(root, tmp_path / "out", splits=["train"], progress=False)
    r = reports["train"]
    assert r.kept == 1  # the one good segment
    assert dict(r.counts) == {"bad_line": 1, "empty_segment": 1, "segment_beyond_audio": 1,
                              "dropped_by_normalisation": 1, "transcript_without_audio": 1,
                              "audio_without_transcript": 1, "wrong_channels": 1, "empty": 1, "unreadable": 1}
    stm = os.path.join(root, "legacy", "train", "stm", "LibriVox1089_134691.stm")
    assert r.examples["bad_line"][0].startswith(f"{stm}:2")
    assert r.examples["segment_beyond_audio"][0].startswith(f"{stm}:4")
    saved = json.load(open(tmp_path / "out" / "train.report.json"))
    assert saved["counts"]["wrong_channels"] == 1 and saved["kept"] == 1
    with pytest.raises(ManifestError, match=r"LibriVox1089_134691\.stm:3"):
        prepare_tedlium(root, tmp_path / "strict", splits=["train"], strict=True, progress=False)
    assert not os.path.exists(tmp_path / "strict" / "train.tsv")


def test_cli(tmp_path, capsys):
    assert main(["--root", FIXTURE, "--dest", str(tmp_path / "o"), "--splits", "test", "--no-progress"]) == 0
    assert open(tmp_path / "o" / "test.wrd").read() == "HE COULD WAIT NO LONGER\n"
    root = _bad_corpus(tmp_path)
    assert main(["--root", str(root), "--dest", str(tmp_path / "s"), "--strict", "--no-progress"]) == 1
    assert "empty_segment" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0


def test_recipe_manifest_and_lm_stages(tmp_path):
    """recipes/tedlium.sh stages 0 (sew-manifest tedlium) and 1 (lexicon, LM) on the fixture, as CI runs them."""
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"
    proc = subprocess.run(["bash", os.path.join(repo, "recipes", "tedlium.sh"), "--stage", "0", "--stop-stage", "1",
                           "--corpus-dir", FIXTURE, "--work-dir", str(work), "--workers", "2", "--lm-order", "3"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert open(work / "data" / "dev.wrd").read().splitlines() == [e[4] for e in EXPECTED if e[0] == "dev"]
    assert (work / "lm" / "lexicon.txt").read_text() == (work / "data" / "lexicon.txt").read_text()
    arpa = (work / "lm" / "lm.arpa").read_text()
    assert "\\3-grams:" in arpa and "\nAMERICANS\t" not in arpa  # words, not a letter LM
    assert "lexicon words are in the LM" in proc.stdout
