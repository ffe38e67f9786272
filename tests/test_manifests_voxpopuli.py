"""manifests.voxpopuli on real VoxPopuli transcript lines with audio generated here.

Transcripts: tests/fixtures/voxpopuli/slue-voxpopuli_dev.slice.tsv, 41 real rows of SLUE-VoxPopuli's dev
TSV (VoxPopuli English ids and text; 5 rows with an empty raw_text, 5 with speaker_id None, digits,
curly apostrophes, em dashes, non-English letters). The tests write them in the layout of VoxPopuli's
get_asr_data.py: ``transcribed_data/en/asr_{train,dev}.tsv`` with its 6-column header (SLUE has no gender
column: written as ``None``) and ``asr_test.tsv`` with SLUE's own 7 columns (extra columns are ignored).

Audio: there is no real VoxPopuli audio here, so each row's ``<year>/<id>.ogg`` is cut from the real
LibriSpeech recordings of tests/fixtures (0.4-1.2 s segments) and written as OGG/Vorbis at 48 kHz
(resampled up with soxr) or 16 kHz with soundfile; the builder must return 16 kHz mono FLAC of the same
length in samples at 16 kHz.
"""
import csv
import doctest
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

import manifests.voxpopuli as vox
from manifests.common import ManifestError
from manifests.voxpopuli import main, normalize_transcript, prepare_voxpopuli

REPO = Path(__file__).resolve().parent.parent
HEADER6 = ["id", "raw_text", "normalized_text", "speaker_id", "split", "gender"]
SPLIT_ROWS = {"train": range(0, 25), "dev": range(25, 35), "test": range(35, 41)}


def fairseq_ltr(words: str) -> str:
    return " ".join(list(words.replace(" ", "|"))) + " |"


@pytest.fixture(scope="module")
def slue(fixtures_dir):
    path = fixtures_dir / "voxpopuli" / "slue-voxpopuli_dev.slice.tsv"
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def corpus(slue, fixtures_dir, tmp_path_factory):
    """ROOT with transcribed_data/en/{asr_*.tsv, <year>/<id>.ogg}; returns (ROOT, {id: samples at 16 kHz})."""
    header, rows = slue
    assert len(rows) == 41
    root = tmp_path_factory.mktemp("voxpopuli")
    en = root / "transcribed_data" / "en"
    en.mkdir(parents=True)
    for split in ("train", "dev"):
        with open(en / f"asr_{split}.tsv", "w", encoding="utf-8") as f:
            f.write("\t".join(HEADER6) + "\n")
            for i in SPLIT_ROWS[split]:
                r = rows[i]
                f.write("\t".join([r[0], r[1], r[2], r[3], split, "None"]) + "\n")
    with open(en / "asr_test.tsv", "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for i in SPLIT_ROWS["test"]:
            f.write("\t".join(rows[i]) + "\n")
    speech = [sf.read(str(p), dtype="float32")[0]
              for p in sorted((fixtures_dir / "librispeech/LibriSpeech/test-clean").rglob("*.flac"))]
    lengths = {}
    rng = np.random.default_rng(0)
    for i, r in enumerate(rows):
        x = speech[i % len(speech)]
        n16 = int(rng.integers(6400, 19200))
        start = int(rng.integers(0, len(x) - n16))
        seg = x[start:start + n16]
        out = en / r[0][:4] / f"{r[0]}.ogg"
        out.parent.mkdir(exist_ok=True)
        if i % 2 == 0:
            sf.write(str(out), soxr.resample(seg, 16000, 48000), 48000, format="OGG", subtype="VORBIS")
        else:
            sf.write(str(out), seg, 16000, format="OGG", subtype="VORBIS")
        lengths[r[0]] = n16
    return root, lengths


def expected_words(normalized_text: str) -> str:
    """VoxPopuli's normalized_text has only a-z, apostrophes and . ; ? ! : upper-case, drop the marks and the
    apostrophes that open or close a word (quotes: ``the rotten west'``)."""
    assert re.fullmatch(r"[a-z' .;?!]*", normalized_text)
    words = (w.strip("'") for w in re.sub(r"[.;?!]", " ", normalized_text).upper().split())
    return " ".join(w for w in words if w)


def read_split(dest: Path, split: str):
    tsv = (dest / f"{split}.tsv").read_text().split("\n")[:-1]
    rows = [line.split("\t") for line in tsv[1:]]
    wrd = (dest / f"{split}.wrd").read_text().split("\n")[:-1]
    ltr = (dest / f"{split}.ltr").read_text().split("\n")[:-1]
    assert len(rows) == len(wrd) == len(ltr)
    return Path(tsv[0]), rows, wrd, ltr


def test_normalisation_rules_on_real_lines(slue):
    _, rows = slue
    raw = {i: rows[i][1] for i in range(len(rows))}
    assert normalize_transcript(raw[22]) == (
        "AS FOR ENERGY THREE YEARS AGO THE EU HEADS OF GOVERNMENT DECIDED TO SET THE CURRENT YEAR TWO THOUSAND "
        "FOURTEEN AS A CLEAR DEADLINE FOR THE COMPLETION OF AN INTERNAL ENERGY MARKET", [])
    assert normalize_transcript(raw[8])[0].startswith(
        "IN ALL THESE EFFORTS AHEAD OF THE THIRTEENTH NATIONAL CONFERENCE")
    assert normalize_transcript(raw[25])[0].startswith("TWO THOUSAND THIRTEEN THIS MAY BE THE LAST")
    assert "TO MARK THE TWENTIETH ANNIVERSARY" in normalize_transcript(raw[32])[0]
    assert "THE COMMISSION'S AMENDING LETTER NO ONE GO IN" in normalize_transcript(raw[34])[0]       # U+02BC, digit
    assert "ADAPT THE EU'S LEGAL FRAMEWORK" in normalize_transcript(raw[39])[0]
    assert normalize_transcript(raw[40])[0] == ("IT IS NOT JUST MOTHERHOOD AND APPLE PIE TO USE THE AMERICAN "
                                                # U+02BD ... U+02BC
                                                "EXPRESSION BUT IT IS OF SOME REAL VALUE")
    assert "THIS IS A NON BINDING REPORT" in normalize_transcript(raw[24])[0]                              # em dash
    assert "WITH MR TELICKA THAT" in normalize_transcript(raw[36])[0]                                      # accent
    assert normalize_transcript(raw[37])[1] == ["Ł"]                                                        # dropped
    assert normalize_transcript(raw[38])[1] == ["°"]
    assert "IN THE EIGHTIES WHEN" in normalize_transcript(raw[37])[0]
    assert normalize_transcript(raw[18]) == ("", [])                                                        # empty
    # normalized_text: the builder's default column keeps every real line
    for r in rows:
        words, bad = normalize_transcript(r[2])
        assert not bad and words == expected_words(r[2])
    assert doctest.testmod(vox).failed == 0


def test_build(corpus, tmp_path):
    root, lengths = corpus
    dest = tmp_path / "out"
    reports = prepare_voxpopuli(root, dest, workers=2, progress=False)
    assert set(reports) == {"train", "dev", "test"} and all(r.ok for r in reports.values())
    for split, idx in SPLIT_ROWS.items():
        audio_root, rows, wrd, ltr = read_split(dest, split)
        assert audio_root == dest / "audio" and len(rows) == len(idx)
        for (rel, count), w, l in zip(rows, wrd, ltr):
            uid = Path(rel).stem
            assert rel == f"{uid[:4]}/{uid}.flac"
            info = sf.info(str(audio_root / rel))
            assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
            assert int(count) == info.frames == lengths[uid]
            assert l == fairseq_ltr(w)
    # the words: VoxPopuli's normalized_text, upper case, punctuation removed
    with open(root / "transcribed_data/en/asr_dev.tsv", encoding="utf-8") as f:
        dev = [r.split("\t") for r in f.read().split("\n")[1:] if r]
    assert read_split(dest, "dev")[2] == [expected_words(r[2]) for r in dev]
    # lexicon and LM text from train only
    lm = (dest / "lm.txt").read_text().split("\n")[:-1]
    assert lm == read_split(dest, "train")[2]
    lexicon_words = {line.split("\t")[0] for line in (dest / "lexicon.txt").read_text().split("\n")[:-1]}
    assert lexicon_words == {w for s in lm for w in s.split()}
    # the converted audio is the same speech: compare with the source ogg resampled here
    uid = Path(read_split(dest, "train")[1][0][0]).stem
    src, sr = sf.read(str(root / "transcribed_data/en" / uid[:4] / f"{uid}.ogg"), dtype="float32")
    out, _ = sf.read(str(dest / "audio" / uid[:4] / f"{uid}.flac"), dtype="float32")
    ref = soxr.resample(src, sr, 16000)
    assert np.abs(out - ref).max() < 2e-3


def test_bad_files_raw_text_strict_and_rerun(corpus, tmp_path, capsys):
    src_root, _ = corpus
    root = tmp_path / "vp"
    import shutil

    shutil.copytree(src_root, root)
    en = root / "transcribed_data/en"
    train = [l.split("\t") for l in (en / "asr_train.tsv").read_text().split("\n")[1:] if l]
    (en / train[5][0][:4] / f"{train[5][0]}.ogg").unlink()                      # transcript without audio
    (en / train[6][0][:4] / f"{train[6][0]}.ogg").write_bytes(os.urandom(3000))  # corrupt
    shutil.copyfile(en / train[7][0][:4] / f"{train[7][0]}.ogg", en / "2015" / "20150101-unlisted.ogg")  # no row
    with open(en / "asr_train.tsv", "a", encoding="utf-8") as f:
        f.write("only-two\tfields\n")                                             # malformed row
    dest = tmp_path / "out"
    args = ["--root", str(root), "--dest", str(dest), "--no-progress", "--workers", "2", "--text-column", "raw_text"]
    assert main(args) == 0
    tr = json.loads((dest / "train.report.json").read_text())
    assert tr["counts"] == {"transcript_without_audio": 1, "unreadable": 1, "bad_line": 1, "empty_transcript": 1}
    assert tr["kept"] == 25 - 3  # 25 rows - missing - corrupt - empty raw_text (row 18); the bad line is a 26th row
    assert tr["examples"]["transcript_without_audio"][0].startswith(f"{en / 'asr_train.tsv'}:7: ")
    assert tr["examples"]["bad_line"] == [f"{en / 'asr_train.tsv'}:27: 2 fields, header has 6"]
    dv = json.loads((dest / "dev.report.json").read_text())
    assert dv["counts"] == {"empty_transcript": 4} and dv["kept"] == 6
    ts = json.loads((dest / "test.report.json").read_text())
    assert ts["counts"] == {"dropped_by_normalisation": 2} and ts["kept"] == 4
    assert "Ł" in ts["examples"]["dropped_by_normalisation"][0] and "°" in ts["examples"]["dropped_by_normalisation"][1]
    un = json.loads((dest / "unassigned.report.json").read_text())
    assert un["counts"] == {"audio_without_transcript": 1}
    assert "20150101-unlisted.ogg" in un["examples"]["audio_without_transcript"][0]
    # idempotent: converted files are not rewritten and the outputs are byte-identical
    flacs = sorted((dest / "audio").rglob("*.flac"))
    mtimes = [f.stat().st_mtime_ns for f in flacs]
    before = {p.name: p.read_bytes() for p in dest.iterdir() if p.is_file()}
    assert main(args) == 0
    assert [f.stat().st_mtime_ns for f in flacs] == mtimes
    assert {p.name: p.read_bytes() for p in dest.iterdir() if p.is_file()} == before
    # --strict fails, naming the file and line
    capsys.readouterr()
    assert main(args + ["--strict"]) == 1
    err = capsys.readouterr().err
    assert "asr_train.tsv:7" in err and "asr_train.tsv:27" in err
    with pytest.raises(ManifestError):
        prepare_voxpopuli(root, tmp_path / "strict", strict=True, progress=False)
    assert not (tmp_path / "strict" / "train.tsv").exists()


def test_recipe_manifest_stage(corpus, tmp_path):
    """recipes/voxpopuli.sh stage 0 on the generated corpus, as CI runs it."""
    root, lengths = corpus
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"
    proc = subprocess.run(["bash", str(REPO / "recipes/voxpopuli.sh"), "--stage", "0", "--stop-stage", "0",
                           "--corpus-dir", str(root / "transcribed_data/en"), "--work-dir", str(work), "--workers",
                           "2"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    for split, idx in SPLIT_ROWS.items():
        rows = read_split(work / "data", split)[1]
        assert len(rows) == len(idx) and all(int(n) == lengths[Path(rel).stem] for rel, n in rows)
    assert (work / "data/dict.ltr.txt").read_text().split("\n")[0].startswith("| ")
