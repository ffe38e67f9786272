"""manifests.demo, the synthetic eSpeak NG demo corpus: format, labels, determinism, idempotency, errors."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import soundfile as sf

from manifests.demo import DemoCorpus, DemoDataError, make_sentence, prepare_demo
from manifests.demo import main as demo_data_main
from manifests.lexicon import to_letters


def read_tsv(path: Path) -> Tuple[str, List[Tuple[str, int]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0], [(rel, int(n)) for rel, n in (line.split("\t") for line in lines[1:])]


def file_mtimes(root: Path) -> Dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_letter_labels() -> None:
    assert to_letters("HELLO WORLD") == "H E L L O | W O R L D |"
    assert to_letters("A") == "A |"


def test_sentences_reuse_a_small_vocabulary() -> None:
    import random

    rng = random.Random(0)
    words = Counter(w for _ in range(300) for w in make_sentence(rng).split())
    assert len(words) < 120
    assert words.most_common(1)[0][1] > 50  # words recur across utterances


def test_corpus_audio_is_16k_mono_and_counts_match(demo_corpus: DemoCorpus) -> None:
    assert (demo_corpus.num_train, demo_corpus.num_valid) == (5, 1)
    total = 0
    for split in ("train", "valid"):
        root, entries = read_tsv(demo_corpus.manifest(split))
        assert Path(root).is_absolute() and Path(root) == demo_corpus.audio_dir
        for rel, count in entries:
            info = sf.info(str(Path(root) / rel))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert info.frames == count
            assert 1.5 <= count / 16000 <= 4.05
            total += count
    assert total / 16000 == pytest.approx(demo_corpus.total_seconds, abs=0.01)


def test_labels_are_consistent(demo_corpus: DemoCorpus) -> None:
    letters: Counter = Counter()
    for split in ("train", "valid"):
        _, entries = read_tsv(demo_corpus.manifest(split))
        wrd = demo_corpus.labels(split, "wrd").read_text(encoding="utf-8").splitlines()
        ltr = demo_corpus.labels(split, "ltr").read_text(encoding="utf-8").splitlines()
        assert len(wrd) == len(ltr) == len(entries)
        for w, l in zip(wrd, ltr):
            assert w == w.upper() and w.strip()
            assert l == to_letters(w)
            letters.update(l.split())
    dict_lines = [line.split(" ") for line in
                  demo_corpus.dict_ltr.read_text(encoding="utf-8").splitlines()]
    counts = [int(n) for _, n in dict_lines]
    assert counts == sorted(counts, reverse=True)
    assert {sym: int(n) for sym, n in dict_lines} == dict(letters)
    assert "|" in letters


def test_speech_is_not_silence_and_durations_vary(demo_corpus: DemoCorpus) -> None:
    durations = []
    for split in ("train", "valid"):
        root, entries = read_tsv(demo_corpus.manifest(split))
        for rel, count in entries:
            x, _ = sf.read(str(Path(root) / rel), dtype="float32")
            assert float(np.sqrt(np.mean(x ** 2))) > 0.02
            frames = x[: len(x) // 400 * 400].reshape(-1, 400)  # 25 ms frames
            voiced = np.sqrt(np.mean(frames ** 2, axis=1)) > 0.01
            assert voiced.mean() > 0.3  # speech most of the time, not one click
            durations.append(count)
    assert len(set(durations)) == len(durations)
    assert max(durations) - min(durations) > 0.2 * 16000


def test_same_seed_same_bytes_via_cli(demo_corpus: DemoCorpus, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "again"
    assert demo_data_main(["--dest", str(dest), "--num-utterances", "6", "--seed", "0",
                           "--workers", "2", "--quiet"]) == 0
    assert "generated" in capsys.readouterr().out
    for split in ("train", "valid"):
        for ext in ("wrd", "ltr"):
            assert (dest / f"{split}.{ext}").read_bytes() == \
                demo_corpus.labels(split, ext).read_bytes()
        _, a = read_tsv(demo_corpus.manifest(split))
        _, b = read_tsv(dest / f"{split}.tsv")
        assert a == b
        for rel, _ in a:
            assert (dest / "audio" / rel).read_bytes() == (demo_corpus.audio_dir / rel).read_bytes()
    assert demo_data_main(["--dest", str(dest), "--num-utterances", "6", "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_other_seed_other_corpus(demo_corpus: DemoCorpus, tmp_path: Path) -> None:
    other = prepare_demo(tmp_path / "c", num_utterances=6, seed=1, progress=False)
    assert other.labels("train", "wrd").read_text() != demo_corpus.labels("train", "wrd").read_text()


def test_second_call_is_a_no_op(demo_corpus: DemoCorpus) -> None:
    before = file_mtimes(demo_corpus.root)
    again = prepare_demo(demo_corpus.root, num_utterances=6, seed=0, progress=False)
    assert not again.generated
    assert again.train_tsv == demo_corpus.train_tsv and again.num_train == demo_corpus.num_train
    assert file_mtimes(demo_corpus.root) == before
    leftovers = [p.name for p in demo_corpus.root.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_new_parameters_replace_the_corpus(tmp_path: Path) -> None:
    dest = tmp_path / "c"
    prepare_demo(dest, num_utterances=3, seed=0, progress=False)
    c = prepare_demo(dest, num_utterances=4, seed=0, progress=False)
    assert c.generated and c.num_utterances == 4
    assert len(list((dest / "audio").iterdir())) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_refuses_to_overwrite_other_directories(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DemoDataError, match="not a demo corpus"):
        prepare_demo(tmp_path, num_utterances=2, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_utterances"):
        prepare_demo(tmp_path / "x", num_utterances=1)
    with pytest.raises(ValueError, match="audio_format"):
        prepare_demo(tmp_path / "x", audio_format="mp3")


def test_missing_espeak_gives_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESPEAK_NG_LIBRARY", raising=False)
    monkeypatch.delenv("ESPEAK_NG_DATA", raising=False)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import now raises ImportError
    with pytest.raises(DemoDataError, match="pip install espeakng-loader"):
        prepare_demo(tmp_path / "x", num_utterances=2, progress=False)
    assert not (tmp_path / "x").exists()


def test_broken_library_fails_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "libespeak-ng.so"
    fake.write_bytes(b"not a library")
    monkeypatch.setenv("ESPEAK_NG_LIBRARY", str(fake))
    monkeypatch.setenv("ESPEAK_NG_DATA", str(tmp_path))
    with pytest.raises(DemoDataError, match="not an espeak-ng-data directory"):
        prepare_demo(tmp_path / "x", num_utterances=2, progress=False)
    (tmp_path / "phontab").write_bytes(b"\0" * 64)
    with pytest.raises(DemoDataError, match="cannot load the eSpeak NG library"):
        prepare_demo(tmp_path / "x", num_utterances=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["libespeak-ng.so", "phontab"]


def test_worker_failure_is_reported_and_cleaned_up(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import espeakng_loader

    data = tmp_path / "espeak-ng-data"
    data.mkdir()
    (data / "phontab").write_bytes(b"\0" * 64)  # passes the parent's check, fails in the worker
    monkeypatch.setenv("ESPEAK_NG_LIBRARY", espeakng_loader.get_library_path())
    monkeypatch.setenv("ESPEAK_NG_DATA", str(data))
    with pytest.raises(DemoDataError, match="worker failed"):
        prepare_demo(tmp_path / "x", num_utterances=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["espeak-ng-data"]
