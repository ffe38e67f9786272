"""Damaged audio at any byte: every damaged file transcribes or is skipped with a reason, never a traceback.

FLAC (24-bit), WAV, OGG/Vorbis and MP3 versions of a real LibriSpeech recording (its first 3 s), cut at many offsets
(densely through the first 6 kB, where every format's header and first frames lie, then through the data) and with
random bytes overwritten, run through ``sew-transcribe`` (44.1 kHz stereo, resampled) and ``sew-infer`` (16 kHz
mono, as its manifests must be). The checkpoint is the suite's small random-weight CTC model: what is checked is
that each file ends either transcribed or listed with a reason, and that the run goes on to the next file.
"""
import io
import json
import random
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import soundfile as sf
import soxr

from manifests.audio import AUDIO_REASONS

LIBRI = "librispeech/LibriSpeech/dev-clean-2/1988/24833/1988-24833-0000.flac"
FORMATS = {"flac": dict(format="FLAC", subtype="PCM_24"), "wav": dict(format="WAV", subtype="PCM_16"),
           "ogg": dict(format="OGG", subtype="VORBIS"), "mp3": dict(format="MP3", subtype="MPEG_LAYER_III")}


def encoded(wave: np.ndarray, rate: int, fmt: str) -> bytes:
    out = io.BytesIO()
    sf.write(out, wave, rate, **FORMATS[fmt])
    return out.getvalue()


def damaged_versions(data: bytes, seed: int) -> Dict[str, bytes]:
    """The intact file, cuts at many offsets and random byte corruption, by name."""
    offsets = set(range(1, 600, 23)) | set(range(600, 6000, 450)) | {100, 500, 3000}
    offsets |= {len(data) * k // 8 for k in range(1, 8)}
    versions = {"intact": data}
    versions.update({f"cut{o:07d}": data[:o] for o in sorted(offsets) if o < len(data)})
    rng = random.Random(seed)
    for k in range(8):
        d = bytearray(data)
        for _ in range(rng.choice([1, 8, 64])):
            d[rng.randrange(len(d))] = rng.randrange(256)
        versions[f"rand{k}"] = bytes(d)
    return versions


def write_damaged(folder: Path, wave: np.ndarray, rate: int) -> List[Path]:
    folder.mkdir(parents=True)
    paths = []
    for n, fmt in enumerate(FORMATS):
        for name, data in damaged_versions(encoded(wave, rate, fmt), seed=n).items():
            path = folder / f"{fmt}_{name}.{fmt}"
            path.write_bytes(data)
            paths.append(path)
    return paths


@pytest.fixture(scope="module")
def recording(fixtures_dir) -> np.ndarray:
    wave, rate = sf.read(fixtures_dir / LIBRI, dtype="float32")
    assert rate == 16000
    return wave[:3 * rate]


def test_sew_transcribe_skips_each_damaged_file_with_a_reason(ctc_checkpoint, recording, tmp_path, capsys):
    from sew_fairseq.cli.transcribe import main

    stereo = soxr.resample(np.stack([recording, 0.5 * recording], 1), 16000, 44100)  # 44.1 kHz, two channels
    paths = write_damaged(tmp_path / "in", stereo, 44100)
    out = tmp_path / "out"
    argv = [str(ctc_checkpoint), str(tmp_path / "in"), "--output-dir", str(out), "--formats", "txt", "json",
            "--quiet"]
    assert main(argv + ["--skip-bad"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    skipped = {Path(s["audio"]).name: s["reason"] for s in summary["skipped"]}
    transcribed = {p.name for p in paths if (out / f"{p.stem}.json").is_file()}
    assert summary["files"] == len(transcribed) and len(transcribed) + len(skipped) == len(paths)
    assert not transcribed & set(skipped) and set(skipped.values()) <= set(AUDIO_REASONS)
    assert {f"{fmt}_intact.{fmt}" for fmt in FORMATS} <= transcribed
    # the cuts of a 44.1 kHz stereo 24-bit FLAC, and every format cut inside its header
    assert {"flac_cut0000100.flac", "flac_cut0000500.flac", "flac_cut0003000.flac"} <= set(skipped)
    assert {f"{fmt}_cut0000047.{fmt}" for fmt in FORMATS} <= set(skipped)
    # a WAV file cut in its data opens and reads what is there: only its data chunk's size shows the cut
    wav_data_cuts = [p.name for p in paths if p.name.startswith("wav_cut") and int(p.stem[7:]) >= 600]
    assert wav_data_cuts and all(skipped.get(name) == "truncated" for name in wav_data_cuts)
    for name in transcribed:  # a transcript covers the whole of what the file holds
        assert json.loads((out / f"{Path(name).stem}.json").read_text())["duration"] > 0
    # without --skip-bad: one line naming the first bad file (files go in sorted order), exit 1
    first_bad = sorted(skipped)[0]
    assert main(argv + ["--overwrite"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sew-transcribe:")]
    assert len(lines) == 1 and first_bad in lines[0] and f"[{skipped[first_bad]}]" in lines[0]


def test_sew_infer_skips_each_damaged_file_with_a_reason(ctc_checkpoint, recording, tmp_path, capsys):
    from sew_fairseq.cli.infer import main

    data = tmp_path / "data"
    paths = write_damaged(data / "audio", recording, 16000)
    lines = [str(data / "audio")] + [f"{p.name}\t{len(recording)}" for p in paths]
    (data / "test.tsv").write_text("\n".join(lines) + "\n")
    (data / "test.wrd").write_text("A WORD\n" * len(paths))
    argv = [str(ctc_checkpoint), "--data", str(data), "--split", "test", "--quiet", "--results-dir",
            str(tmp_path / "r")]
    assert main(argv + ["--skip-bad"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    result = json.loads((tmp_path / "r" / "results.json").read_text())
    reasons = {Path(s["audio"]).name: s["reason"] for s in result["skipped"]}
    assert result["utterances"] + len(reasons) == len(paths) and set(reasons.values()) <= set(AUDIO_REASONS)
    assert not {f"{fmt}_intact.{fmt}" for fmt in FORMATS} & set(reasons)
    assert {f"{fmt}_cut0000047.{fmt}" for fmt in FORMATS} <= set(reasons)
    assert main(argv) == 1  # without --skip-bad: the first bad line, one error line, no traceback
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("sew-infer:")]
    assert "Traceback" not in err and len(errors) == 1 and "[" in errors[0]
