"""manifests.librispeech on real LibriSpeech files (tests/fixtures/librispeech/LibriSpeech: test-clean whose
trans.txt lack the final newline, mini_librispeech dev-clean-2), a Libri-light ``librispeech_finetuning``
tree and a train-960 tree arranged here from copies of those flacs, and bad files made here.
"""
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from manifests.common import ManifestError
from manifests.librispeech import main, prepare_librispeech

REPO = Path(__file__).resolve().parent.parent


def fairseq_ltr(words: str) -> str:
    """The letter line as fairseq's examples/wav2vec/libri_labels.py writes it."""
    return " ".join(list(words.replace(" ", "|"))) + " |"


def transcripts(split_dir: Path) -> dict:
    """id -> text of every trans.txt under a split folder, read independently of the builder."""
    out = {}
    for t in split_dir.rglob("*.trans.txt"):
        for line in t.read_text().split("\n"):
            if line.strip():
                uid, text = line.split(" ", 1)
                out[uid] = text
    return out


def read_split(dest: Path, split: str):
    tsv = (dest / f"{split}.tsv").read_text().split("\n")
    assert tsv[-1] == ""
    rows = [line.split("\t") for line in tsv[1:-1]]
    wrd = (dest / f"{split}.wrd").read_text().split("\n")[:-1]
    ltr = (dest / f"{split}.ltr").read_text().split("\n")[:-1]
    assert len(rows) == len(wrd) == len(ltr)
    return Path(tsv[0]), rows, wrd, ltr


def snapshot(dest: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(dest.iterdir())}


@pytest.fixture(scope="module")
def libri(fixtures_dir) -> Path:
    return fixtures_dir / "librispeech" / "LibriSpeech"


def test_real_splits(libri, tmp_path):
    dest = tmp_path / "out"
    reports = prepare_librispeech(libri, dest, workers=2, progress=False)
    assert list(reports) == ["test-clean", "dev-clean-2"]  # standard split first, then other LibriSpeech-layout folders
    for split, n in (("test-clean", 4), ("dev-clean-2", 7)):
        root, rows, wrd, ltr = read_split(dest, split)
        assert root == libri / split and len(rows) == n and reports[split].ok
        ref = transcripts(libri / split)
        assert len(ref) == n
        ids = [Path(rel).name[: -len(".flac")] for rel, _ in rows]
        assert ids == sorted(ref)
        for (rel, count), w, l, uid in zip(rows, wrd, ltr, ids):
            assert rel == "/".join(uid.split("-")[:2]) + f"/{uid}.flac"
            assert int(count) == sf.info(str(root / rel)).frames
            assert w == ref[uid] and l == fairseq_ltr(ref[uid])
    # the last line of a trans.txt without a trailing newline is kept
    assert (libri / "test-clean/1089/134691/1089-134691.trans.txt").read_bytes()[-1:] != b"\n"
    assert "FOR A FULL HOUR HE HAD PACED UP AND DOWN WAITING BUT HE COULD WAIT NO LONGER" in read_split(dest,
                                                                                                        "test-clean")[2]
    # dictionary: letter counts of all .ltr lines, most frequent first
    letters = Counter(c for s in ("test-clean", "dev-clean-2") for line in read_split(dest, s)[3] for c in line.split())
    assert (dest / "dict.ltr.txt").read_text().split("\n")[:-1] == [
        f"{c} {n}" for c, n in sorted(letters.items(), key=lambda kv: (-kv[1], kv[0]))]
    assert letters["|"] == sum(len(t.split()) for s in ("test-clean",
                                                        "dev-clean-2") for t in transcripts(libri / s).values())
    # no train split here: lexicon and LM text from all splits
    words = sorted({w for s in ("test-clean",
                                "dev-clean-2") for t in transcripts(libri / s).values() for w in t.split()})
    assert (dest / "lexicon.txt").read_text().split("\n")[:-1] == [f"{w}\t{' '.join(w)} |" for w in words]
    assert "HE'S" in words
    assert len((dest / "lm.txt").read_text().split("\n")[:-1]) == 11
    assert json.loads((dest / "test-clean.report.json").read_text())["kept"] == 4


def _copy_chapter(src: Path, dst: Path, utts=None):
    """Copy a SPK/CHAP folder (only ``utts`` if given, with a trans.txt listing just those)."""
    dst.mkdir(parents=True)
    trans = next(src.glob("*.trans.txt"))
    lines = [l for l in trans.read_text().split("\n") if l.strip()]
    if utts is not None:
        lines = [l for l in lines if l.split()[0] in utts]
    for l in lines:
        shutil.copyfile(src / f"{l.split()[0]}.flac", dst / f"{l.split()[0]}.flac")
    (dst / trans.name).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def full_tree(libri, tmp_path_factory) -> Path:
    """LibriSpeech/{train-clean-100,train-clean-360,train-other-500,dev-other} + librispeech_finetuning/ beside."""
    base = tmp_path_factory.mktemp("tree")
    ls = base / "LibriSpeech"
    tc, dc = libri / "test-clean/1089", libri / "dev-clean-2"
    _copy_chapter(tc / "134686", ls / "train-clean-100/1089/134686")
    _copy_chapter(tc / "134691", ls / "train-clean-100/1089/134691")
    _copy_chapter(dc / "1988/24833", ls / "train-clean-360/1988/24833")
    _copy_chapter(dc / "3752/4944", ls / "train-other-500/3752/4944")
    _copy_chapter(dc / "3752/4944", ls / "dev-other/3752/4944")
    ft = base / "librispeech_finetuning"
    _copy_chapter(tc / "134686", ft / "1h/0/clean/1089/134686")                                   # 2
    _copy_chapter(dc / "3752/4944", ft / "1h/0/other/3752/4944", {"3752-4944-0000"})              # 1
    for fold, uid in zip(range(1, 5), ("1988-24833-0000", "1988-24833-0001", "1988-24833-0002", "1988-24833-0003")):
        _copy_chapter(dc / "1988/24833", ft / f"1h/{fold}/clean/1988/24833", {uid})               # 4 x 1
        (ft / f"1h/{fold}/other").mkdir(parents=True)
    _copy_chapter(dc / "3752/4944", ft / "1h/5/clean/3752/4944", {"3752-4944-0001"})              # 1
    (ft / "1h/5/other").mkdir(parents=True)
    _copy_chapter(tc / "134691", ft / "9h/clean/1089/134691")                                     # 2
    _copy_chapter(dc / "3752/4944", ft / "9h/other/3752/4944", {"3752-4944-0002"})                # 1
    return base


def test_train_960_and_librilight_sets(full_tree, tmp_path):
    dest = tmp_path / "out"
    assert main(["--root", str(full_tree / "LibriSpeech"), "--dest", str(dest), "--workers", "2", "--no-progress"]) == 0
    ls, ft = full_tree / "LibriSpeech", full_tree / "librispeech_finetuning"
    names = {p.name[:-4] for p in dest.glob("*.tsv")}
    assert names == {"train-clean-100", "train-clean-360", "train-other-500", "dev-other", "train-960",
                     "train-10m", "train-1h", "train-10h"}
    # the subsets the LibriSpeech recipes/finetuning/*.yaml train and validate on all exist (timit.yaml: TIMIT's)
    for yaml in sorted(set((REPO / "recipes/finetuning").glob("*.yaml")) - {REPO / "recipes/finetuning/timit.yaml"}):
        for line in yaml.read_text().split("\n"):
            if line.strip().startswith(("train_subset:", "valid_subset:")):
                assert line.split(":")[1].strip() in names, (yaml.name, line)
    root, rows, wrd, _ = read_split(dest, "train-960")
    assert root == ls and len(rows) == 4 + 4 + 3
    assert [r[0].split("/")[0] for r in rows] == \
        ["train-clean-100"] * 4 + ["train-clean-360"] * 4 + ["train-other-500"] * 3
    sets = {}
    for name in ("train-10m", "train-1h", "train-10h"):
        root, rows, wrd, ltr = read_split(dest, name)
        assert root == ft
        for (rel, count), w in zip(rows, wrd):
            assert int(count) == sf.info(str(ft / rel)).frames
            assert w == transcripts(ft)[Path(rel).stem]
        sets[name] = [r[0] for r in rows]
    assert len(sets["train-10m"]) == 3 and all(r.startswith("1h/0/") for r in sets["train-10m"])
    assert len(sets["train-1h"]) == 3 + 5 and {r.split("/")[1] for r in sets["train-1h"]} == {"0", "1", "2", "3",
                                                                                              "4", "5"}
    assert sets["train-10h"] == sets["train-1h"] + ["9h/clean/1089/134691/1089-134691-0000.flac",
                                                    "9h/clean/1089/134691/1089-134691-0001.flac",
                                                    "9h/other/3752/4944/3752-4944-0002.flac"]
    # lexicon and LM text from train-960 only: dev-other's transcripts equal train-other-500's here, so count lines
    assert len((dest / "lm.txt").read_text().split("\n")[:-1]) == 11
    # --splits restricts the output
    only = tmp_path / "only"
    prepare_librispeech(ls, only, splits=["train-10m"], progress=False)
    assert sorted(p.name for p in only.glob("*.tsv")) == ["train-10m.tsv"]


def test_bad_files_counted_and_strict(libri, fixtures_dir, tmp_path, capsys):
    split = tmp_path / "LibriSpeech/test-clean"
    shutil.copytree(libri / "test-clean", split)
    c1, c2 = split / "1089/134686", split / "1089/134691"
    # transcript without audio
    (c1 / "1089-134686-0001.flac").unlink()
    shutil.copyfile(fixtures_dir / "derived/1089-134691-0000_stereo.flac", c1 / "1089-134686-0000.flac")  # stereo
    (c2 / "1089-134691-0001.flac").write_bytes(b"")                                               # empty
    # audio without transcript
    shutil.copyfile(c2 / "1089-134691-0000.flac", c2 / "1089-134691-0002.flac")
    (c2 / "1089-134691-0003.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)                   # corrupt
    with open(c2 / "1089-134691.trans.txt", "a") as f:
        f.write("\n1089-134691-0003 A CORRUPT FILE\n1089-134691-0004\n")                          # + empty transcript
    dest = tmp_path / "out"
    report = prepare_librispeech(tmp_path / "LibriSpeech", dest, workers=2, progress=False)["test-clean"]
    assert dict(report.counts) == {"transcript_without_audio": 1, "wrong_channels": 1, "empty": 1,
                                   "audio_without_transcript": 1, "unreadable": 1, "empty_transcript": 1}
    assert report.kept == 1
    _, rows, wrd, _ = read_split(dest, "test-clean")
    assert [r[0] for r in rows] == ["1089/134691/1089-134691-0000.flac"]
    saved = json.loads((dest / "test-clean.report.json").read_text())
    assert saved["problems"] == 6 and saved["examples"]["transcript_without_audio"] == [
        f"{c1 / '1089-134686.trans.txt'}:2: 1089-134686-0001.flac not found"]
    assert saved["examples"]["empty_transcript"] == [f"{c2 / '1089-134691.trans.txt'}:4: 1089-134691-0004"]
    # --strict: exit 1, nothing written for the split, the message names the files and lines
    strict_dest = tmp_path / "strict"
    rc = main(["--root", str(tmp_path / "LibriSpeech"), "--dest", str(strict_dest), "--strict", "--no-progress",
               "--workers", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and "--strict" in err and "1089-134686.trans.txt:2" in err and "1089-134686-0000.flac" in err
    assert not (strict_dest / "test-clean.tsv").exists()
    with pytest.raises(ManifestError):
        prepare_librispeech(tmp_path / "LibriSpeech", strict_dest, strict=True, progress=False)


def test_idempotent_and_atomic_rerun(libri, tmp_path, capsys):
    root = tmp_path / "LibriSpeech"
    shutil.copytree(libri, root)
    dest = tmp_path / "out"
    args = ["--root", str(root), "--dest", str(dest), "--no-progress", "--workers", "2"]
    assert main(args) == 0
    first = snapshot(dest)
    assert main(args) == 0
    assert snapshot(dest) == first  # byte-identical re-run
    # a run that fails in a worker (a trans.txt that cannot be opened) writes nothing and keeps the old files
    bad = root / "dev-clean-2/1988/24834"
    (bad / "1988-24834.trans.txt").mkdir(parents=True)
    shutil.copyfile(root / "dev-clean-2/1988/24833/1988-24833-0000.flac", bad / "1988-24834-0000.flac")
    assert main(args) == 1
    assert "1988-24834.trans.txt" in capsys.readouterr().err
    assert snapshot(dest) == first  # no partial or temporary file
    shutil.rmtree(bad)
    assert main(args) == 0 and snapshot(dest) == first


def test_overwrite_has_nothing_to_redo_and_says_so(libri, tmp_path, caplog):
    """The converting builders convert audio again with --overwrite; LibriSpeech converts nothing, so the flag
    changes no output (the manifests are rewritten on every run anyway) and a warning says it has no effect."""
    args = ["--root", str(libri), "--no-progress", "--workers", "1"]
    assert main(args + ["--dest", str(tmp_path / "plain")]) == 0
    assert "--overwrite" not in caplog.text
    assert main(args + ["--dest", str(tmp_path / "plain"), "--overwrite"]) == 0
    assert "--overwrite has no effect: LibriSpeech's FLACs are used where they are" in caplog.text
    assert main(args + ["--dest", str(tmp_path / "again"), "--overwrite"]) == 0
    assert snapshot(tmp_path / "again") == snapshot(tmp_path / "plain")
    assert not list(tmp_path.rglob("*.flac"))  # nothing converted, with or without it


def test_no_split_found(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["--root", str(tmp_path / "empty"), "--dest", str(tmp_path / "out")]) == 1
    assert "no LibriSpeech split found" in capsys.readouterr().err


def test_recipe_manifest_and_lm_stages(libri, tmp_path):
    """recipes/librispeech.sh stages 0 (sew-manifest) and 1 (lexicon, LM) on the fixtures, as CI runs them."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"
    proc = subprocess.run(["bash", str(REPO / "recipes/librispeech.sh"), "--stage", "0", "--stop-stage", "1",
                           "--corpus-dir", str(libri), "--work-dir", str(work), "--workers", "2", "--lm-order", "3"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    _, rows, wrd, _ = read_split(work / "data", "test-clean")
    assert len(rows) == 4 and wrd == [transcripts(libri / "test-clean")[Path(r[0]).stem] for r in rows]
    assert len(read_split(work / "data", "dev-clean-2")[1]) == 7
    assert (work / "lm/lexicon.txt").read_text() == (work / "data/lexicon.txt").read_text()
    arpa = (work / "lm/lm.arpa").read_text()
    assert "\\3-grams:" in arpa and "\nSTUFF\t" not in arpa and "all 113 lexicon words are in the LM" in proc.stdout
