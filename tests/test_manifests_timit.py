"""manifests.timit on a TIMIT-layout tree of real speech made at test time (tests/timit_tree.py, from TIMIT's own
sample LDC93S1 = TRAIN/DR1/FCJF0/SA1; DERIVED, see fixtures/LICENSES.md), upper- and lower-case, and bad files.

Expected labels are written here by hand from the fixture's .PHN lines and Kaldi's phones.60-48-39.map.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from manifests.__main__ import main as sew_manifest
from manifests.common import ManifestError
from manifests.timit import (DEV_SPEAKERS, PHONES_39, TEST_SPEAKERS, TIMIT_PHONES, fold_phones, normalize_text,
                             prepare_timit)
from timit_tree import EXPECTED, THIRTY_NINE, cut, make_tree

def read(dest: Path, split: str, ext: str):
    return (dest / f"{split}.{ext}").read_text().split("\n")[:-1]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("timit"))


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory):
    dest = tmp_path_factory.mktemp("out")
    return dest, prepare_timit(tree.parent, dest, workers=2, progress=False)


def test_kaldi_lists_and_phone_map():
    assert len(DEV_SPEAKERS) == 50 and len(TEST_SPEAKERS) == 24 and not set(DEV_SPEAKERS) & set(TEST_SPEAKERS)
    assert (DEV_SPEAKERS[0], DEV_SPEAKERS[-1]) == ("faks0", "mrws1")  # the first and last lines of Kaldi's lists
    assert (TEST_SPEAKERS[0], TEST_SPEAKERS[-1]) == ("mdab0", "fmld0")
    assert len(TIMIT_PHONES) == 61 and list(PHONES_39) == THIRTY_NINE
    closures_pauses = "bcl dcl gcl pcl tcl kcl pau epi h#".split()
    assert fold_phones(closures_pauses, merge_sil=False) == ["sil"] * 9
    assert fold_phones(closures_pauses) == ["sil"]
    folded = "ao ax ax-h axr el em en eng hv ix nx ux zh".split()
    assert fold_phones(folded) == "aa ah ah er l m n ng hh ih n uw sh".split()
    assert fold_phones("aa q iy q".split()) == ["aa", "iy"]  # glottal stops deleted
    assert fold_phones("n tcl q pcl p".split()) == ["n", "sil", "p"]  # a q between closures: one sil
    with pytest.raises(ValueError, match="'xx' is not one of TIMIT's 61"):
        fold_phones(["aa", "xx"])


def test_normalize_text():
    assert normalize_text("She had your dark suit in greasy wash water all year.") == \
        "SHE HAD YOUR DARK SUIT IN GREASY WASH WATER ALL YEAR"
    assert normalize_text("Don't ask me to carry an oily rag like that.") == \
        "DON'T ASK ME TO CARRY AN OILY RAG LIKE THAT"
    assert normalize_text('"Cross-cut," she said; why?  Yes: (now)!') == "CROSS CUT SHE SAID WHY YES NOW"
    assert normalize_text("Pay 4 \u2019em") == "PAY 4 'EM"  # the digit is left for the caller to report


def test_kaldi_splits_phones_and_words(tree, built):
    dest, reports = built
    assert {s: r.kept for s, r in reports.items()} == {"train": 5, "dev": 2, "test": 2}
    for split, want in EXPECTED.items():
        tsv = read(dest, split, "tsv")
        assert tsv[0] == str(tree)  # the SPHERE files are referenced where they are
        assert tsv[1:] == [f"{rel}\t{n}" for _, rel, n, _, _ in want]
        assert read(dest, split, "wrd") == [w for *_, w, _ in want]
        assert read(dest, split, "phn") == [p for *_, p in want]
        assert read(dest, split, "ltr")[0] == " | ".join(" ".join(w) for w in want[0][3].split()) + " |"
        for rel, n in (line.split("\t") for line in tsv[1:]):
            info = sf.info(str(tree / rel))
            assert (info.format, info.samplerate, info.channels, info.frames) == ("NIST", 16000, 1, int(n))
    everything = "".join(open(dest / f"{s}.tsv").read() for s in EXPECTED)
    assert "/SA" not in everything and "FFXO0" not in everything  # SA1/SA2 and the TEST speaker in no list
    assert json.load(open(dest / "train.report.json"))["normalisation"] == \
        {"sa_sentences_left_out": 3, "q_deleted": 2, "sil_merged": 1}
    dev = json.load(open(dest / "dev.report.json"))
    assert dev["normalisation"] == {"sa_sentences_left_out": 1} and dev["speakers"] == 1 and dev["problems"] == 0
    assert len(dev["missing_speakers"]) == 49 and "FAKS0" not in dev["missing_speakers"]
    # dict.phn.txt: all 39 phones, most frequent first (sil: 12 in train, 3 in dev, 6 in test), unseen ones at 0
    lines = (dest / "dict.phn.txt").read_text().split("\n")[:-1]
    assert lines[0] == "sil 21" and sorted(line.split()[0] for line in lines) == THIRTY_NINE
    assert "b 0" in lines and "zh" not in (dest / "dict.phn.txt").read_text().split()
    assert (dest / "lm.txt").read_text().splitlines() == [w for *_, w, _ in EXPECTED["train"]]


def test_the_audio_is_the_recording_itself(tree):
    samples, rate = sf.read(tree / "TRAIN/DR1/FCJF0/SX127.WAV", dtype="int16")
    np.testing.assert_array_equal(samples, cut([(20417, 33754)])[0])
    full, _ = sf.read(tree / "TRAIN/DR1/FCJF0/SA1.WAV", dtype="int16")
    assert rate == 16000 and (full.min(), full.max()) == (-2191, 2790)  # TIMIT's header of FCJF0/SA1 says so


def test_fairseq_reads_the_sphere_manifest_and_phone_dictionary(built):
    """What fine-tuning loads: fairseq's FileAudioDataset over the .WAV in place, and dict.phn.txt."""
    from fairseq.data import Dictionary
    from fairseq.data.audio.raw_audio_dataset import FileAudioDataset

    dest, _ = built
    dataset = FileAudioDataset(str(dest / "train.tsv"), sample_rate=16000)
    assert [dataset[i]["source"].numel() for i in range(len(dataset))] == [n for _, _, n, _, _ in EXPECTED["train"]]
    d = Dictionary.load(str(dest / "dict.phn.txt"))
    assert len(d) == 4 + 39 and d.index("sil") == 4 and d.bos_word == "<s>"


def test_lower_case_layout_gives_the_same_labels(tmp_path, built):
    dest_upper, _ = built
    timit = make_tree(tmp_path, lower=True)
    assert (timit / "train" / "dr1" / "fcjf0" / "si1027.wav").exists()
    dest = tmp_path / "out"
    prepare_timit(timit, dest, progress=False)
    for split, want in EXPECTED.items():
        assert read(dest, split, "tsv")[1:] == [f"{rel.lower()}\t{n}" for _, rel, n, _, _ in want]
        for ext in ("wrd", "phn", "ltr"):
            assert read(dest, split, ext) == read(dest_upper, split, ext)
    assert (dest / "dict.phn.txt").read_text() == (dest_upper / "dict.phn.txt").read_text()


def test_no_merge_sil_keeps_runs(tree, tmp_path):
    reports = prepare_timit(tree, tmp_path, splits=["train"], merge_sil=False, progress=False)
    assert read(tmp_path, "train", "phn")[3] == "w aa sh sil sil"  # MFXT0_SI1: ... epi h#
    assert json.load(open(tmp_path / "train.report.json"))["merge_sil"] is False
    assert "sil_merged" not in reports["train"].info["normalisation"]


def test_idempotent(tree, built, tmp_path):
    dest, _ = built
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    prepare_timit(tree, dest, workers=1, progress=False)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before


def _bad_tree(tree: Path, tmp_path: Path) -> Path:
    bad = tmp_path / "TIMIT"
    shutil.copytree(tree, bad)
    spk = bad / "TRAIN" / "DR1" / "FCJF0"
    (spk / "SX217.PHN").unlink()                                                      # audio without phones
    lines = (spk / "SI1027.PHN").read_text().splitlines()
    (spk / "SI1027.PHN").write_text("\n".join(lines[:2] + ["4559 5723 xx"] + lines[3:]) + "\n")  # line 3
    with open(bad / "TRAIN" / "DR2" / "MFXT0" / "SX1.PHN", "a") as f:
        f.write("12 ab\n")                                                            # line 16 (after 15 phones)
    (bad / "TRAIN" / "DR2" / "MFXT0" / "SI1.TXT").write_text("0 7901 Wash 4 times.\n")  # a digit
    samples, phn, _ = cut([(0, 9190)])
    for name, write in (("SX37", lambda p: sf.write(p, samples, 8000, format="NIST", subtype="PCM_16")),
                        ("SX307", lambda p: sf.write(p, np.stack([samples, samples], 1), 16000, format="NIST",
                                                     subtype="PCM_16")),
                        ("SX397", lambda p: open(p, "wb").close()),
                        ("SI648", lambda p: open(p, "wb").write(b"NIST_1A\n   1024\nnot a header" + b"\0" * 64)),
                        ("SX47", lambda p: sf.write(p, samples, 16000, format="NIST", subtype="PCM_16"))):
        write(str(spk / f"{name}.WAV"))
        (spk / f"{name}.PHN").write_text("" if name == "SX47" else "\n".join(phn) + "\n")  # SX47: no phones
        (spk / f"{name}.TXT").write_text("0 9190 She had.\n")
    (spk / "SI1657.PHN").write_text("\n".join(phn) + "\n")                             # phones without audio
    (spk / "SI1657.TXT").write_text("0 9190 She had.\n")
    shutil.copytree(bad / "TRAIN" / "DR2" / "MFXT0", bad / "TRAIN" / "DR3" / "MFXT0")  # a speaker twice
    return bad


def test_bad_files_are_counted_and_strict_fails(tree, tmp_path):
    bad = _bad_tree(tree, tmp_path)
    reports = prepare_timit(bad, tmp_path / "out", splits=["train"], progress=False)
    r = reports["train"]
    assert r.kept == 1 and read(tmp_path / "out", "train", "phn") == [EXPECTED["train"][1][4]]  # FCJF0_SX127
    assert dict(r.counts) == {"audio_without_transcript": 1, "unknown_phone": 1, "bad_line": 1,
                              "dropped_by_normalisation": 1, "wrong_rate": 1, "wrong_channels": 1, "empty": 1,
                              "unreadable": 1, "transcript_without_audio": 1, "empty_transcript": 1, "duplicate_id": 1}
    spk = bad / "TRAIN" / "DR1" / "FCJF0"
    assert r.examples["unknown_phone"] == [f"{spk}/SI1027.PHN:3: 'xx' is not one of TIMIT's 61 phones"]
    assert r.examples["bad_line"][0].startswith(f"{bad}/TRAIN/DR2/MFXT0/SX1.PHN:16: ")
    assert r.examples["audio_without_transcript"] == [f"{spk}/SX217.WAV: no SX217.PHN"]
    assert r.examples["transcript_without_audio"][0].startswith(f"{spk}/SI1657.")
    assert r.examples["duplicate_id"][0].startswith(f"{bad}/TRAIN/DR3/MFXT0: speaker MFXT0 also in")
    assert "8000 Hz" in r.examples["wrong_rate"][0] and "2 channels" in r.examples["wrong_channels"][0]
    assert json.load(open(tmp_path / "out" / "train.report.json"))["counts"]["unknown_phone"] == 1
    with pytest.raises(ManifestError, match=r"SI1027\.PHN:3"):
        prepare_timit(bad, tmp_path / "strict", splits=["train"], strict=True, progress=False)
    assert not (tmp_path / "strict" / "train.tsv").exists()


def test_cli(tree, tmp_path, capsys):
    assert sew_manifest(["timit", "--root", str(tree), "--dest", str(tmp_path / "o"), "--splits", "test",
                         "--no-progress"]) == 0
    assert read(tmp_path / "o", "test", "phn") == [p for *_, p in EXPECTED["test"]]
    assert not (tmp_path / "o" / "train.tsv").exists()
    bad = _bad_tree(tree, tmp_path)
    assert sew_manifest(["timit", "--root", str(bad), "--dest", str(tmp_path / "s"), "--strict", "--no-progress"]) == 1
    assert "unknown_phone" in capsys.readouterr().err
    assert sew_manifest(["timit", "--root", str(tmp_path / "nothing"), "--dest", str(tmp_path / "n")]) == 1
    assert "no TIMIT layout" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        sew_manifest(["timit", "--help"])
    assert e.value.code == 0 and "dev_spk.list" in capsys.readouterr().out
