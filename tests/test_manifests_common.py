"""manifests.common: speller, number spelling, atomic split writer, corpus files, report, audio helpers.

Audio cases use the real recordings of tests/fixtures (LibriSpeech flac, its stereo derivative, the 44.1 kHz
stereo TIMIT wav); broken files are made here.
"""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from manifests import audio, common
from manifests.audio import convert_audio, probe_audio
from manifests.common import (ManifestError, Report, Utterance, parallel_map,
                              spell_number, write_corpus_files, write_split)

REPO = Path(__file__).resolve().parents[1]
FLAC = "librispeech/LibriSpeech/test-clean/1089/134691/1089-134691-0000.flac"


def fairseq_ltr(words: str) -> str:
    """The letter line as fairseq's examples/wav2vec/libri_labels.py writes it."""
    return " ".join(list(words.replace(" ", "|"))) + " |"


def test_one_speller_in_fairseq_format():
    from manifests.lexicon import to_letters

    assert to_letters is common.to_letters  # the builders spell with the lexicon's speller
    assert to_letters("HELLO WORLD") == "H E L L O | W O R L D |"
    for s in ("HE'S IN CHARGE HERE", "A", "I'M NOT FIXING TO START AN ANNEX TO KATE'S CAT HOME"):
        assert to_letters(s) == fairseq_ltr(s)


@pytest.mark.parametrize("digits,year,words", [
    ("0", False, "ZERO"), ("7", False, "SEVEN"), ("13", False, "THIRTEEN"), ("20", False, "TWENTY"),
    ("21", False, "TWENTY ONE"), ("100", False, "ONE HUNDRED"), ("305", False, "THREE HUNDRED FIVE"),
    ("1000", False, "ONE THOUSAND"), ("2014", False, "TWO THOUSAND FOURTEEN"),
    ("1984", False, "ONE THOUSAND NINE HUNDRED EIGHTY FOUR"), ("1984", True, "NINETEEN EIGHTY FOUR"),
    ("1900", True, "NINETEEN HUNDRED"), ("1905", True, "NINETEEN O FIVE"), ("2005", True, "TWO THOUSAND FIVE"),
    ("2019", True, "TWENTY NINETEEN"), ("1000000", False, "ONE MILLION"),
    ("2500312", False, "TWO MILLION FIVE HUNDRED THOUSAND THREE HUNDRED TWELVE"), ("007", False, "ZERO ZERO SEVEN"),
])
def test_spell_number(digits, year, words):
    assert spell_number(digits, year=year) == words


def test_spell_number_rejects_non_digits():
    for bad in ("12a", "", "-3", "\u0663"):  # the last: ARABIC-INDIC DIGIT THREE
        with pytest.raises(ValueError):
            spell_number(bad)


def test_ascii_quotes_and_alphabet():
    assert common.ascii_quotes("Commission\u02bcs \u2018a\u2019 \u201cb\u201d") == "Commission's 'a' \"b\""
    assert common.outside_alphabet("DON'T STOP 2 ME!") == ["!", "2"]


def _utts(tmp_path, n=3):
    audio = tmp_path / "audio"
    audio.mkdir(exist_ok=True)
    utts = []
    for i in range(n):
        p = audio / f"u{i}.flac"
        p.write_bytes(b"x")
        utts.append(Utterance(f"u{i}", str(p), 16000 + i, ["HELLO WORLD", "IT'S A TEST", "A"][i % 3]))
    return utts


def test_write_split_format(tmp_path):
    utts = _utts(tmp_path)
    report = Report("train")
    report.add("missing", "/x/y.flac", "no such file")
    write_split(tmp_path / "out", "train", utts, report)
    out = tmp_path / "out"
    tsv = (out / "train.tsv").read_text().split("\n")
    assert tsv[0] == str(tmp_path / "audio") and tsv[-1] == ""
    assert tsv[1:-1] == [f"u{i}.flac\t{16000 + i}" for i in range(3)]
    assert (out / "train.wrd").read_text() == "HELLO WORLD\nIT'S A TEST\nA\n"
    assert (out / "train.ltr").read_text().split("\n")[:-1] == [fairseq_ltr(u.words) for u in utts]
    rep = json.loads((out / "train.report.json").read_text())
    assert rep["kept"] == 3 and rep["counts"] == {"missing": 1} and rep["examples"]["missing"] == ["/x/y.flac: no such "
                                                                                                   "file"]
    assert sorted(os.listdir(out)) == ["train.ltr", "train.report.json", "train.tsv", "train.wrd"]  # no temp files


def test_write_split_failure_mid_write_keeps_old_files(tmp_path):
    """An exception while the utterances stream in leaves the previous split untouched and no temp file."""
    utts = _utts(tmp_path)
    out = tmp_path / "out"
    write_split(out, "train", utts)
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}

    def failing():
        yield utts[0]
        yield utts[1]
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError, match="worker died"):
        write_split(out, "train", failing(), audio_root=tmp_path / "audio")
    assert {p: (out / p).read_bytes() for p in os.listdir(out)} == before
    # and into an empty directory: nothing at all appears
    with pytest.raises(RuntimeError):
        write_split(tmp_path / "fresh", "train", failing(), audio_root=tmp_path / "audio")
    assert os.listdir(tmp_path / "fresh") == []


def test_write_split_extra_label_files(tmp_path):
    """``extra_labels`` adds ``<split>.<ext>`` files (TIMIT's phones) in the same atomic write, in manifest order."""
    utts = [Utterance(u.id, u.audio, u.num_samples, u.words, (("phn", f"sil p{i} sil"),))
            for i, u in enumerate(_utts(tmp_path))]
    out = tmp_path / "out"
    write_split(out, "train", utts, extra_labels=["phn"])
    assert (out / "train.phn").read_text() == "sil p0 sil\nsil p1 sil\nsil p2 sil\n"
    assert (out / "train.wrd").read_text() == "HELLO WORLD\nIT'S A TEST\nA\n"
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}
    # an utterance without a phone line: nothing of the split changes, no temporary file is left
    bad = utts[:2] + [Utterance("u9", utts[2].audio, 5, "A")]
    with pytest.raises(ManifestError, match=r"u9 .* phn label line"):
        write_split(out, "train", bad, extra_labels=["phn"])
    assert {p: (out / p).read_bytes() for p in os.listdir(out)} == before


def test_write_split_strict_and_bad_utterances(tmp_path):
    utts = _utts(tmp_path)
    report = Report("dev", strict=True)
    report.add("transcript_without_audio", "/c/1-2.trans.txt:7", "1-2-0003.flac not found")
    with pytest.raises(ManifestError, match=r"1-2\.trans\.txt:7"):
        write_split(tmp_path / "out", "dev", utts, report)
    assert sorted(os.listdir(tmp_path / "out")) == ["dev.report.json"]
    with pytest.raises(ManifestError, match="not under the audio root"):
        write_split(tmp_path / "out2", "dev", utts, audio_root=tmp_path / "elsewhere")
    assert not (tmp_path / "out2" / "dev.tsv").exists()


def test_corpus_files(tmp_path):
    utts = _utts(tmp_path)
    dev = [Utterance("d0", utts[0].audio, 5, "ZEBRA")]
    paths = write_corpus_files(tmp_path / "out", {"train": utts, "dev": dev}, lm_splits=["train"])
    letters = Counter(c for u in utts + dev for c in fairseq_ltr(u.words).split())
    expected = [f"{s} {n}" for s, n in sorted(letters.items(), key=lambda kv: (-kv[1], kv[0]))]
    assert open(paths["dict"]).read().split("\n")[:-1] == expected
    assert open(paths["lexicon"]).read().split("\n")[:-1] == [
        "A\tA |", "HELLO\tH E L L O |", "IT'S\tI T ' S |", "TEST\tT E S T |", "WORLD\tW O R L D |"]
    assert open(paths["lm_text"]).read() == "HELLO WORLD\nIT'S A TEST\nA\n"  # dev kept out of the LM


def _boom(x):
    if x == 5:
        raise ValueError("item 5 is bad")
    return x * x


def test_parallel_map_order_and_errors():
    assert parallel_map(_boom, [1, 2, 3, 4], workers=2, progress=False) == [1, 4, 9, 16]
    assert parallel_map(_boom, list(range(5)), workers=1, progress=False) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError, match="item 5"):
        parallel_map(_boom, list(range(10)), workers=2, progress=False)


def test_probe_audio(fixtures_dir, tmp_path):
    flac = fixtures_dir / FLAC
    assert probe_audio(flac) == (sf.info(str(flac)).frames, None, "")
    assert probe_audio(fixtures_dir / "derived/1089-134691-0000_stereo.flac").reason == "wrong_channels"
    timit = probe_audio(fixtures_dir / "timit/LDC93S1_pcms16le_2_44100.wav", channels=None)
    frames = sf.info(str(fixtures_dir / "timit/LDC93S1_pcms16le_2_44100.wav")).frames
    assert timit.reason == "wrong_rate" and timit.num_samples == frames
    (tmp_path / "empty.flac").write_bytes(b"")
    (tmp_path / "junk.flac").write_bytes(os.urandom(2000))
    (tmp_path / "cut.flac").write_bytes(flac.read_bytes()[:30])  # shorter than the header
    assert probe_audio(tmp_path / "empty.flac").reason == "empty"
    assert probe_audio(tmp_path / "junk.flac").reason == "unreadable"
    assert probe_audio(tmp_path / "cut.flac").reason == "unreadable"
    assert probe_audio(tmp_path / "absent.flac").reason == "missing"


def test_flac_streaminfo_matches_soundfile(fixtures_dir):
    for path in sorted((fixtures_dir / "librispeech").rglob("*.flac")):
        i = sf.info(str(path))
        assert audio.flac_streaminfo(str(path)) == (i.samplerate, i.channels, i.frames)


def test_convert_audio(fixtures_dir, tmp_path):
    src = fixtures_dir / "timit/LDC93S1_pcms16le_2_44100.wav"  # 44.1 kHz stereo, 2.925 s
    x, sr = sf.read(str(src), dtype="float32")
    dst = tmp_path / "a" / "b.flac"
    n = convert_audio(src, dst)
    info = sf.info(str(dst))
    assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
    assert n == info.frames and abs(n - round(len(x) * 16000 / sr)) <= 1
    y, _ = sf.read(str(dst), dtype="float32")
    # same speech: 10 ms RMS envelopes of the downmixed source and of the output agree
    env_x = np.sqrt((x.mean(axis=1)[: len(x) // 441 * 441].reshape(-1, 441) ** 2).mean(1))
    env_y = np.sqrt((y[: len(y) // 160 * 160].reshape(-1, 160) ** 2).mean(1))
    k = min(len(env_x), len(env_y))
    assert np.corrcoef(env_x[:k], env_y[:k])[0, 1] > 0.98
    # idempotent: an existing conversion is kept (not rewritten) unless overwrite
    mtime = os.stat(dst).st_mtime_ns
    assert convert_audio(src, dst) == n and os.stat(dst).st_mtime_ns == mtime
    # a segment of one channel
    m = convert_audio(src, tmp_path / "seg.flac", start=0.5, end=1.5, channel=1)
    assert m == 16000
    assert sorted(os.listdir(tmp_path)) == ["a", "seg.flac"] and os.listdir(tmp_path / "a") == ["b.flac"]


def test_cli_help():
    import subprocess
    import sys

    for mod in ("manifests", "manifests.librispeech", "manifests.voxpopuli"):
        out = subprocess.run([sys.executable, "-m", mod, "--help"], capture_output=True, text=True, check=True).stdout
        assert "--root" in out or "sew-manifest" in out


def test_written_files_get_the_permissions_open_would_give(tmp_path):
    # the builders write through mkstemp (0600); manifests and audio must be readable like plain open()'s files
    old = os.umask(0o022)
    try:
        common.atomic_write_text(tmp_path / "a.tsv", ["x"])
        audio.write_flac(tmp_path / "a.flac", np.zeros(1600, dtype=np.float32), 16000)
        assert {os.stat(tmp_path / n).st_mode & 0o777 for n in ("a.tsv", "a.flac")} == {0o644}
        os.chmod(tmp_path / "a.tsv", 0o640)
        common.atomic_write_text(tmp_path / "a.tsv", ["y"])
        assert os.stat(tmp_path / "a.tsv").st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_every_manifests_module_imports_without_torch_or_fairseq():
    """The light layer: each module of manifests/ imports in a Python where torch, fairseq and sew_fairseq cannot be
    imported at all."""
    import pkgutil

    import manifests

    names = sorted(m.name for m in pkgutil.iter_modules(manifests.__path__))
    assert {"atomic", "audio", "common", "lexicon", "records", "librispeech", "timit", "arpa", "error_rates", "trn",
            "sclite", "training_log", "check"} <= set(names)
    code = ("import sys\n"
            "for blocked in ('torch', 'fairseq', 'sew_fairseq'):\n"
            "    sys.modules[blocked] = None  # any import of them raises ImportError\n"
            f"for name in {names!r}:\n"
            "    __import__('manifests.' + name)\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
