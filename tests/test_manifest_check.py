"""Manifest checking on real audio fixtures, and the ``audio_pretraining_checked`` fairseq task."""
from __future__ import annotations

import logging
import os
import shutil
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
import soundfile as sf

import sew_fairseq  # noqa: F401  (the plugin as users load it: registers models and tasks)
from manifests.check import ManifestError, check_manifest, write_filtered_labels, write_filtered_manifest

GOOD = ("1089-134691-0000.flac", "1089-134686-0001.flac")  # real LibriSpeech (test-clean), 16 kHz mono


@pytest.fixture()
def audio_root(tmp_path: Path, fixtures_dir: Path) -> Path:
    """A root directory holding the real fixtures plus broken files made here."""
    root = tmp_path / "audio"
    root.mkdir()
    for name in GOOD:
        chapter = name.split("-")[1]
        shutil.copy(fixtures_dir / "librispeech/LibriSpeech/test-clean/1089" / chapter / name, root / name)
    shutil.copy(fixtures_dir / "yesno" / "1_0_1_0_1_0_0_1.wav", root / "yesno_8k.wav")
    shutil.copy(fixtures_dir / "derived" / "1089-134691-0000_stereo.flac", root / "stereo.flac")
    shutil.copy(fixtures_dir / "timit" / "LDC93S1_pcms16le_2_44100.wav", root / "timit_44k.wav")
    (root / "empty.wav").write_bytes(b"")
    (root / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    sf.write(str(root / "no_frames.wav"), np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")
    return root


def frames(path: Path) -> int:
    return sf.info(str(path)).frames


def good_lines(root: Path) -> List[str]:
    return [f"{n}\t{frames(root / n)}" for n in GOOD]


def write_tsv(path: Path, root: Path, lines: List[str]) -> Path:
    path.write_text("\n".join([str(root)] + lines) + "\n", encoding="utf-8")
    return path


# name -> (bad manifest line built from the root, expected reason, file named in the error)
BAD_CASES: Dict[str, Tuple[Callable[[Path], str], str, str]] = {
    "missing": (lambda r: "nowhere.wav\t16000", "missing", "nowhere.wav"),
    "empty": (lambda r: "empty.wav\t16000", "empty", "empty.wav"),
    "corrupt": (lambda r: "corrupt.wav\t2000", "unreadable", "corrupt.wav"),
    "no_frames": (lambda r: "no_frames.wav\t1", "no_frames", "no_frames.wav"),
    "rate_8k": (lambda r: f"yesno_8k.wav\t{frames(r / 'yesno_8k.wav')}", "wrong_rate",
                "yesno_8k.wav"),
    "stereo": (lambda r: f"stereo.flac\t{frames(r / 'stereo.flac')}", "wrong_channels", "stereo.flac"),
    "stereo_44k": (lambda r: f"timit_44k.wav\t{frames(r / 'timit_44k.wav')}",
                   "wrong_rate", "timit_44k.wav"),
    "count": (lambda r: f"{GOOD[0]}\t{frames(r / GOOD[0]) + 1}", "count_mismatch", GOOD[0]),
    "spaces": (lambda r: f"{GOOD[0]} {frames(r / GOOD[0])}", "malformed_line", GOOD[0]),
    "three_fields": (lambda r: f"{GOOD[0]}\t1\t2", "malformed_line", GOOD[0]),
    "blank": (lambda r: "", "malformed_line", ""),
    "not_int": (lambda r: f"{GOOD[0]}\t33k", "bad_count", "33k"),
}


def test_good_manifest_on_real_librispeech(audio_root: Path, tmp_path: Path) -> None:
    tsv = write_tsv(tmp_path / "train.tsv", audio_root, good_lines(audio_root))
    report = check_manifest(tsv, sample_rate=16000)
    assert report.ok and report.num_kept == 2 and report.num_entries == 2
    assert report.total_samples == sum(frames(audio_root / n) for n in GOOD)
    assert "all 2 lines ok" in report.summary()


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_line_raises_in_error_mode(case: str, audio_root: Path, tmp_path: Path) -> None:
    make_line, reason, named = BAD_CASES[case]
    lines = good_lines(audio_root)
    lines.insert(1, make_line(audio_root))  # manifest line 3
    tsv = write_tsv(tmp_path / "train.tsv", audio_root, lines)
    with pytest.raises(ManifestError) as info:
        check_manifest(tsv, sample_rate=16000, mode="error")
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.line_no, err.reason) == (3, reason)
    assert f"{tsv}:3" in str(err) and named in str(err) and reason in str(err)
    assert "Fix: " in str(err) and err.hint


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_line_is_skipped_and_counted(case: str, audio_root: Path, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    make_line, reason, _ = BAD_CASES[case]
    lines = good_lines(audio_root)
    lines.insert(1, make_line(audio_root))
    tsv = write_tsv(tmp_path / "train.tsv", audio_root, lines)
    with caplog.at_level(logging.WARNING, logger="manifests.check"):
        report = check_manifest(tsv, sample_rate=16000, mode="skip")
    assert report.reason_counts == {reason: 1}
    assert [e.line_no for e in report.kept] == [2, 4] and report.kept_indices == [0, 2]
    assert report.problems[0].index == 1
    assert any(f"{tsv}:3" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    out = write_filtered_manifest(report, tmp_path / "filtered" / "train.tsv")
    assert check_manifest(out, sample_rate=16000).num_kept == 2


def test_messages_give_the_fix(audio_root: Path, tmp_path: Path) -> None:
    tsv = write_tsv(tmp_path / "t.tsv", audio_root, [BAD_CASES["rate_8k"][0](audio_root)])
    with pytest.raises(ManifestError, match=r"sample rate 8000 Hz, expected 16000 Hz.*resample"):
        check_manifest(tsv)
    tsv = write_tsv(tmp_path / "t.tsv", audio_root, [BAD_CASES["stereo_44k"][0](audio_root)])
    with pytest.raises(ManifestError, match=r"44100 Hz.*2 channels"):
        check_manifest(tsv)
    tsv = write_tsv(tmp_path / "t.tsv", audio_root, [BAD_CASES["spaces"][0](audio_root)])
    with pytest.raises(ManifestError, match=r"no TAB .*spaces"):
        check_manifest(tsv)


def test_every_bad_audio_reason_has_its_fix_in_one_list(tmp_path: Path) -> None:
    """manifests.records.AUDIO_HINTS is the one list of bad-audio reasons: AudioError's reasons, the manifest
    errors' hints and the corpus builders' report reasons all come from it."""
    from manifests.audio import AUDIO_REASONS, AudioError, read_audio
    from manifests.common import REASONS
    from manifests.records import AUDIO_HINTS, HINTS

    assert AUDIO_REASONS == tuple(AUDIO_HINTS) and REASONS[:len(AUDIO_REASONS)] == AUDIO_REASONS
    assert all(HINTS[reason] == hint for reason, hint in AUDIO_HINTS.items())
    # a real FLAC cut in half (an interrupted copy): its reason had no fix before the lists were one
    wave = (0.1 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    sf.write(str(tmp_path / "whole.flac"), wave, 16000)
    data = (tmp_path / "whole.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[:len(data) // 2])
    with pytest.raises(AudioError) as info:
        read_audio(tmp_path / "cut.flac", 16000)
    error = ManifestError(tmp_path / "t.tsv", 2, info.value.reason, info.value.detail, str(tmp_path / "cut.flac"))
    assert error.reason == "truncated" and str(error).endswith("[truncated]. Fix: " + AUDIO_HINTS["truncated"])


def test_error_mode_counts_the_other_bad_lines(audio_root: Path, tmp_path: Path) -> None:
    lines = [f"{n}\t1" for n in ("nowhere.wav", "empty.wav", "corrupt.wav")] + good_lines(audio_root)
    tsv = write_tsv(tmp_path / "t.tsv", audio_root, lines)
    with pytest.raises(ManifestError, match="2 more bad line") as info:
        check_manifest(tsv)
    assert info.value.line_no == 2 and info.value.more == 2
    report = check_manifest(tsv, mode="skip")
    assert report.reason_counts == {"missing": 1, "empty": 1, "unreadable": 1}
    assert "3 of 5 lines bad" in report.summary()


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_whole_manifest_problems_always_raise(mode: str, audio_root: Path, tmp_path: Path) -> None:
    tsv = tmp_path / "t.tsv"
    tsv.write_text("\n".join(good_lines(audio_root)) + "\n")  # no root line
    with pytest.raises(ManifestError, match="not the audio root directory") as info:
        check_manifest(tsv, mode=mode)
    assert info.value.line_no == 1 and info.value.reason == "missing_root"
    write_tsv(tsv, tmp_path / "gone", good_lines(audio_root))
    with pytest.raises(ManifestError, match="does not exist") as info:
        check_manifest(tsv, mode=mode)
    assert info.value.reason == "root_not_found"
    tsv.write_text("")
    with pytest.raises(ManifestError, match="empty"):
        check_manifest(tsv, mode=mode)
    with pytest.raises(ManifestError, match="not found"):
        check_manifest(tmp_path / "nope.tsv", mode=mode)


def test_bad_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        check_manifest(tmp_path / "x.tsv", mode="ignore")


def test_relative_root_and_crlf(audio_root: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tsv = tmp_path / "t.tsv"
    tsv.write_bytes(("audio\r\n" + "\r\n".join(good_lines(audio_root)) + "\r\n").encode())
    assert check_manifest(tsv).num_kept == 2


def test_zip_slices(audio_root: Path, tmp_path: Path) -> None:
    """fairseq also accepts ``archive.zip:offset:length`` entries (stored, uncompressed)."""
    archive = audio_root / "audio.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as z:
        z.write(audio_root / GOOD[0], GOOD[0])
    with zipfile.ZipFile(archive) as z:
        member = z.getinfo(GOOD[0])
    offset = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra)
    line = f"audio.zip:{offset}:{member.file_size}\t{frames(audio_root / GOOD[0])}"
    tsv = write_tsv(tmp_path / "t.tsv", audio_root, [line])
    assert check_manifest(tsv).ok
    tsv = write_tsv(tmp_path / "t.tsv", audio_root, [f"audio.zip:{offset + 7}:{member.file_size}\t1"])
    assert check_manifest(tsv, mode="skip").reason_counts == {"unreadable": 1}


def test_large_manifest_uses_batches(audio_root: Path, tmp_path: Path) -> None:
    lines = good_lines(audio_root) * 1100 + ["nowhere.wav\t5"]
    tsv = write_tsv(tmp_path / "t.tsv", audio_root, lines)
    report = check_manifest(tsv, mode="skip", num_threads=4, progress=False)
    assert report.num_kept == 2200 and report.problems[0].line_no == 2202


def test_filtered_labels_stay_aligned(audio_root: Path, tmp_path: Path) -> None:
    lines = good_lines(audio_root)
    lines.insert(1, "nowhere.wav\t5")
    tsv = write_tsv(tmp_path / "t.tsv", audio_root, lines)
    ltr = tmp_path / "t.ltr"
    ltr.write_text("A |\nB |\nC |\n")
    report = check_manifest(tsv, mode="skip")
    out = write_filtered_labels(report, ltr, tmp_path / "f" / "t.ltr")
    assert out.read_text() == "A |\nC |\n"
    ltr.write_text("A |\n")
    with pytest.raises(ManifestError, match="1 label lines for 3 manifest entries"):
        write_filtered_labels(report, ltr, tmp_path / "f" / "t.ltr")


# --- the fairseq task -------------------------------------------------------------------------


def make_task(data: Path, **overrides: object):
    from fairseq.tasks import setup_task
    from omegaconf import OmegaConf

    import sew_fairseq.tasks.audio_pretraining_checked  # noqa: F401  (registers the task)

    cfg = OmegaConf.create({"_name": "audio_pretraining_checked", "data": str(data),
                            "tpu": False, "seed": 1, **overrides})
    return setup_task(cfg)


def test_task_is_registered() -> None:
    from fairseq.tasks import TASK_DATACLASS_REGISTRY, TASK_REGISTRY

    import sew_fairseq.tasks.audio_pretraining_checked as mod

    assert TASK_REGISTRY["audio_pretraining_checked"] is mod.AudioPretrainingCheckedTask
    assert TASK_DATACLASS_REGISTRY["audio_pretraining_checked"] is mod.AudioPretrainingCheckedConfig
    assert mod.AudioPretrainingCheckedConfig().manifest_check == "error"


def test_task_error_mode(audio_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_tsv(data / "valid.tsv", audio_root, good_lines(audio_root))
    write_tsv(data / "train.tsv", audio_root, good_lines(audio_root) + [
        BAD_CASES["rate_8k"][0](audio_root)])
    task = make_task(data)
    with pytest.raises(ManifestError) as info:
        task.load_dataset("train")
    assert info.value.line_no == 4 and "yesno_8k.wav" in str(info.value)
    task.load_dataset("valid")
    ds = task.datasets["valid"]
    assert len(ds) == 2
    assert ds[0]["source"].shape[0] == frames(audio_root / GOOD[0])


def test_task_skip_mode_uses_a_filtered_copy(audio_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = good_lines(audio_root)
    lines.insert(1, BAD_CASES["stereo"][0](audio_root))
    write_tsv(data / "train.tsv", audio_root, lines)
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    cache = tmp_path / "cache"
    task = make_task(data, manifest_check="skip", manifest_check_cache_dir=str(cache))
    task.load_dataset("train")
    ds = task.datasets["train"]
    assert len(ds) == 2
    assert ds.skipped_indices == {1}  # original numbering: labels in data/ stay aligned
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before
    assert task.cfg.data == str(data)
    assert len(list(cache.rglob("train.tsv"))) == 1


def test_task_off_mode_does_not_check(audio_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_tsv(data / "train.tsv", audio_root, ["nowhere.wav\t16000"])
    task = make_task(data, manifest_check="off")
    task.load_dataset("train")
    assert len(task.datasets["train"]) == 1
    assert os.path.exists(data / "train.tsv")


def test_task_skip_mode_keeps_min_sample_size_skips_in_original_numbering(
        audio_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = good_lines(audio_root)  # 33360 and 52400 samples
    lines.insert(1, "nowhere.wav\t40000")
    write_tsv(data / "train.tsv", audio_root, lines)
    task = make_task(data, manifest_check="skip", manifest_check_cache_dir=str(tmp_path / "c"),
                     min_sample_size=40000)
    task.load_dataset("train")
    ds = task.datasets["train"]
    assert len(ds) == 1 and ds.sizes.tolist() == [frames(audio_root / GOOD[1])]
    assert ds.skipped_indices == {0, 1}  # too short (fairseq's own skip) + missing file
