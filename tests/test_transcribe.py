"""sew_fairseq.transcribe and sew-transcribe: chunking and stitching against a naive reference, exactness on short
files, resampling and channels, the Python API, outputs, bad files, re-runs. Real (reduced, random-weight) models
and real speech fixtures; nothing mocked."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from sew_fairseq.transcribe.chunking import chunk_stream, stitch
from sew_fairseq.engines.torch_engine import forward_log_probs
from sew_fairseq.transcribe import Shard, Transcriber, resolve_inputs

LIBRI = "librispeech/LibriSpeech/test-clean/1089/134686/1089-134686-0000.flac"


@pytest.fixture(scope="module")
def tr(ctc_checkpoint) -> Transcriber:
    torch.manual_seed(0)
    return Transcriber.from_checkpoint(str(ctc_checkpoint), chunk_seconds=4.0, overlap_seconds=1.0)


def speech(fixtures_dir: Path) -> np.ndarray:
    wave, rate = sf.read(fixtures_dir / LIBRI, dtype="float32")
    assert rate == 16000
    return wave


# ------------------------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("total", [0, 500, 6400, 6401, 12800, 12801, 33333, 100000])
def test_chunk_stream_layout(total):
    chunk, overlap, align = 6400, 1280, 640
    wave = np.arange(total, dtype=np.float32)
    whole = list(chunk_stream([wave], chunk, overlap, align))
    # the same chunks whatever the block size of the stream
    blocks = [wave[i:i + 777] for i in range(0, total, 777)]
    assert [(c.start, c.samples.tolist()) for c in chunk_stream(blocks, chunk, overlap, align)] == \
        [(c.start, c.samples.tolist()) for c in whole]
    if total == 0:
        assert whole == []
        return
    for c in whole:  # each chunk is the audio from its start
        assert c.samples.tolist() == wave[c.start:c.start + len(c.samples)].tolist()
    if total <= chunk:
        assert len(whole) == 1 and whole[0].start == 0 and len(whole[0].samples) == total
        return
    starts = [c.start for c in whole]
    assert all(s % align == 0 for s in starts) and starts[0] == 0
    assert all(b - a == chunk - 2 * overlap for a, b in zip(starts[:-1], starts[1:-1]))
    assert all(len(c.samples) == chunk for c in whole[:-1])
    last = whole[-1]
    assert last.start + len(last.samples) == total and chunk - align < len(last.samples) <= chunk
    assert starts[-2] < last.start <= starts[-2] + chunk - 2 * overlap


def test_stitch_takes_each_frame_from_a_chunk_interior():
    torch.manual_seed(0)
    T, V, F, step = 230, 5, 40, 28  # frames, classes, frames per chunk, frames between chunk starts
    full = torch.randn(T, V)
    starts = list(range(0, T - F, step)) + [T - F]
    pieces = [(s, full[s:s + F]) for s in starts]
    assert torch.equal(stitch(pieces), full)  # exact slices of one tensor stitch back to it
    # which chunk each output frame comes from: none within (overlap / 2) of a cut edge
    owners = stitch([(s, torch.full((F, 1), float(i))) for i, s in enumerate(starts)])[:, 0].long()
    for t in range(T):
        s = starts[owners[t]]
        left, right = t - s, s + F - 1 - t
        if s > 0:
            assert left >= (F - step) // 2
        if s + F < T:
            assert right >= (F - step) // 2 - 1
    assert torch.equal(stitch([(0, full)]), full)
    with pytest.raises(ValueError, match="do not overlap"):
        stitch([(0, full[:10]), (20, full[20:30])])


def test_blank_stitching_hands_over_in_a_pause_both_chunks_hear():
    """rule="blank": where two chunks overlap (frames 60..100 here), the hand-over is the middle of the longest run
    both read as blank inside the central half of the overlap (70..90), else the middle (80)."""
    V, blank = 3, 0

    def pieces(blank_frames_a, blank_frames_b):
        a = torch.full((100, V + 1), -5.0)
        b = torch.full((100, V + 1), -5.0)  # frames 60..159
        a[:, 1] = b[:, 1] = 0.0  # a letter everywhere ...
        for t in blank_frames_a:
            a[t, blank] = 1.0  # ... but where blank wins
        for t in blank_frames_b:
            b[t - 60, blank] = 1.0
        a[:, V], b[:, V] = -1000.0, -1001.0  # the chunk each row came from, never an argmax
        return [(0, a), (60, b)]

    def hand_over(blank_a, blank_b) -> int:
        owner = -1000 - stitch(pieces(blank_a, blank_b), "blank", blank)[:, V]
        assert owner.shape[0] == 160 and torch.equal(owner, owner.sort().values)
        return int((owner == 0).sum())

    assert hand_over(range(72, 77), range(70, 78)) == 74  # the shared run 72..76, its middle
    assert hand_over(list(range(71, 74)) + list(range(84, 90)), range(60, 100)) == 87  # the longer of two runs
    assert hand_over(range(60, 69), range(60, 69)) == 80  # a pause outside the central half: the middle
    assert hand_over(range(72, 77), []) == 80  # only one chunk hears it: the middle
    assert hand_over([], []) == stitch(pieces([], []), "middle", blank).shape[0] // 2  # nothing shared: the middle
    full = torch.randn(160, V)
    assert torch.equal(stitch([(0, full[:100]), (60, full[60:])], "blank", blank), full)  # slices of one tensor


def naive_chunked(model, wave: np.ndarray, chunk: int, overlap: int, align: int) -> torch.Tensor:
    """A reference: every chunk forwarded alone; each frame taken from the chunk where it is farthest from an
    edge (the middle of the overlap), written without the streaming code."""
    step = chunk - 2 * overlap
    starts = list(range(0, len(wave) - chunk, step))
    if not starts or starts[-1] + chunk < len(wave):
        starts.append(int(np.ceil((len(wave) - chunk) / align)) * align)
    outs = [forward_log_probs(model, [wave[s:s + chunk]])[0][0] for s in starts]
    frames = forward_log_probs(model, [wave])[0][0].shape[0]  # frame count of one pass over the whole wave
    rows = []
    for t in range(frames):
        best, best_margin = None, None
        for s, lp in zip(starts, outs):
            local = t - s // 320
            if 0 <= local < lp.shape[0]:
                margin = min(local if s > 0 else 10**9, lp.shape[0] - 1 - local if s + chunk < len(wave) else 10**9)
                if best_margin is None or margin > best_margin:
                    best, best_margin = lp[local], margin
        rows.append(best)
    return torch.stack(rows)


@torch.inference_mode()
def test_chunked_log_probs_match_a_naive_reference(tr, fixtures_dir):
    wave = np.concatenate([speech(fixtures_dir)] * 2)  # 2 x 10.4 s of real speech: six 4 s chunks
    got = tr.log_probs(wave, 16000)
    ref = naive_chunked(tr.model, wave, tr.chunk, tr.overlap, tr.align)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    # batching the chunks changes nothing
    one = Transcriber(tr.model, tr.dictionary, chunk_seconds=4.0, overlap_seconds=1.0, batch_size=1)
    assert torch.allclose(one.log_probs(wave, 16000), got, atol=1e-5)


@torch.inference_mode()
def test_short_recording_is_exactly_one_forward_pass(tr, fixtures_dir):
    wave = speech(fixtures_dir)[:3 * 16000]
    assert torch.equal(tr.log_probs(wave, 16000), forward_log_probs(tr.model, [wave])[0][0])


@torch.inference_mode()
def test_other_rates_are_resampled_once(tr, fixtures_dir):
    wave16 = speech(fixtures_dir)[:3 * 16000]
    wave8 = soxr.resample(wave16, 16000, 8000).astype(np.float32)
    expected = tr.log_probs(soxr.resample(wave8, 8000, 16000, quality="HQ").astype(np.float32), 16000)
    assert torch.allclose(tr.log_probs(wave8, 8000), expected, atol=1e-6)
    with pytest.raises(ValueError, match="1-D wave"):
        tr.log_probs(np.stack([wave16, wave16], 1), 16000)


def test_api_file_wave_and_labels(tr, fixtures_dir, tmp_path):
    assert tr.labels[:5] == ["<s>", "<pad>", "</s>", "<unk>", "|"] and len(tr.labels) == len(tr.dictionary)
    wave = speech(fixtures_dir)
    from_file = tr.transcribe(fixtures_dir / LIBRI)
    from_wave = tr.transcribe(wave, sample_rate=16000)
    assert from_file.text == from_wave.text and from_file.words == from_wave.words
    # starts 0, 2, 4, 6 s and the last at 6.44 s
    assert from_file.duration == pytest.approx(len(wave) / 16000) and from_file.chunks == 5
    for w in from_file.words:
        assert 0 <= w.start < w.end <= from_file.duration + 0.02 and 0 <= w.confidence <= 1
    # a stereo 44.1 kHz 24-bit FLAC of the same speech: channels averaged, resampled, true duration reported
    stereo = np.stack([wave, 0.5 * wave], 1)
    path = tmp_path / "stereo.flac"
    sf.write(path, soxr.resample(stereo, 16000, 44100), 44100, subtype="PCM_24")
    t = tr.transcribe(path)
    assert t.sample_rate == 44100 and t.channels == 2 and t.duration == pytest.approx(len(wave) / 16000, abs=1e-4)
    left = tr.transcribe(path, channel=0)
    assert left.duration == t.duration
    from manifests.audio import AudioError
    with pytest.raises(AudioError, match="channel 2 requested"):
        tr.transcribe(path, channel=2)


def test_checkpoint_without_dictionary_needs_dict(ctc_checkpoint, tmp_path):
    state = torch.load(ctc_checkpoint, weights_only=False)
    dictionary = state.pop("task_state")["target_dictionary"]
    state["cfg"]["task"]["data"] = str(tmp_path / "elsewhere")
    bare = tmp_path / "bare.pt"
    torch.save(state, bare)
    with pytest.raises(FileNotFoundError, match="holds no output dictionary.*--dict"):
        Transcriber.from_checkpoint(str(bare))
    dictionary.save(str(tmp_path / "dict.ltr.txt"))
    tr = Transcriber.from_checkpoint(str(bare), dictionary=str(tmp_path / "dict.ltr.txt"))
    assert tr.labels == list(dictionary.symbols)


def test_an_engine_carries_device_normalize_and_exit_rule(tr):
    """Given an engine, the Transcriber refuses a device, normalize or exit rule of its own (they were ignored),
    as compute_emissions does."""
    from sew_fairseq.evaluate.splits import compute_emissions
    from sew_fairseq.modules.early_exit import ExitRule

    for extra in ({"device": "cuda"}, {"normalize": True}, {"exit_rule": ExitRule("entropy", 0.1)}):
        message = "^{} with an engine: device, normalize and exit_rule belong to the engine$"
        with pytest.raises(ValueError, match=message.format("Transcriber")):
            Transcriber(tr.model, tr.dictionary, engine=tr.engine, **extra)
        with pytest.raises(ValueError, match=message.format("compute_emissions")):
            compute_emissions(tr.engine, [], **extra)
    same = Transcriber(tr.model, tr.dictionary, engine=tr.engine, device="cpu", normalize=False)
    assert same.engine is tr.engine and same.device == "cpu" and same.normalize is False


# ------------------------------------------------------------------------------------------- sew-transcribe


def run_cli(argv, capsys):
    from sew_fairseq.cli.transcribe import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def bad_files(folder: Path, fixtures_dir: Path) -> dict:
    """The four bad files of the issue: a truncated FLAC, non-audio bytes, an empty file, a WAV of zero frames."""
    flac = (fixtures_dir / LIBRI).read_bytes()
    files = {"truncated.flac": flac[:len(flac) // 3], "noise.wav": os.urandom(4000), "empty.flac": b""}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    sf.write(folder / "zero.wav", np.zeros(0, np.float32), 16000)
    return {"truncated.flac": "truncated", "noise.wav": "unreadable", "empty.flac": "empty", "zero.wav": "no_frames"}


@pytest.fixture
def folder(tmp_path, fixtures_dir) -> Path:
    """Good recordings: 44.1 kHz stereo 24-bit FLAC, 8 kHz WAV (the real yesno recording), one in a subfolder."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    wave = speech(fixtures_dir)
    sf.write(d / "hifi.flac", soxr.resample(np.stack([wave, wave], 1), 16000, 44100), 44100, subtype="PCM_24")
    (d / "yesno.wav").write_bytes((fixtures_dir / "yesno" / "1_0_1_0_1_0_0_1.wav").read_bytes())
    (d / "sub" / "libri.flac").write_bytes((fixtures_dir / LIBRI).read_bytes())
    (d / "notes.txt").write_text("not audio by its name: not picked up from a folder")
    return d


def test_cli_folder_outputs_mirror_paths(ctc_checkpoint, folder, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run_cli([ctc_checkpoint, folder, "--output-dir", out, "--quiet", "--chunk-seconds", "4",
                               "--overlap-seconds", "1"], capsys)
    assert code == 0 and "3 file(s)" in stdout
    for stem in ("hifi", "yesno", "sub/libri"):
        for fmt in ("txt", "json", "srt", "vtt"):
            assert (out / f"{stem}.{fmt}").is_file(), (stem, fmt)
    hifi = json.loads((out / "hifi.json").read_text())
    assert hifi["duration"] == pytest.approx(10.435, abs=1e-3) and hifi["sample_rate"] == 44100
    assert set(hifi) >= {"audio", "duration", "text", "words"}
    assert json.loads((out / "yesno.json").read_text())["duration"] == pytest.approx(4.94, abs=0.01)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == 3 and summary["skipped"] == [] and summary["forward_seconds"] > 0
    assert set(summary) >= {"files", "audio_seconds", "forward_seconds", "decode_seconds", "setup_seconds", "skipped"}
    # one CTM line per word of every file, in file order, times inside each recording
    ctm = [line.split() for line in (out / "transcripts.ctm").read_text().splitlines()]
    words = sum(len(json.loads((out / f"{s}.json").read_text())["words"]) for s in ("hifi", "sub/libri", "yesno"))
    assert len(ctm) == words and [r[0] for r in ctm] == sorted((r[0] for r in ctm), key=["hifi", "sub/libri",
                                                                                          "yesno"].index)
    assert all(r[1] == "1" and float(r[2]) >= 0 and float(r[3]) >= 0 and 0 <= float(r[5]) <= 1 for r in ctm)
    srt = (out / "hifi.srt").read_text()
    assert srt.startswith("1\n00:00:") and " --> " in srt
    assert (out / "hifi.vtt").read_text().startswith("WEBVTT\n\n00:00:")
    # a re-run redoes nothing; --overwrite redoes everything; --formats picks
    code, stdout, _ = run_cli([ctc_checkpoint, folder, "--output-dir", out, "--quiet"], capsys)
    assert code == 0 and "3 already done" in stdout and json.loads((out / "summary.json").read_text())["files"] == 0
    assert len((out / "transcripts.ctm").read_text().splitlines()) == words  # still every file's words
    code, _, _ = run_cli([ctc_checkpoint, folder, "--output-dir", out, "--quiet", "--overwrite"], capsys)
    assert code == 0 and json.loads((out / "summary.json").read_text())["files"] == 3
    only = tmp_path / "only"
    code, _, _ = run_cli([ctc_checkpoint, folder / "yesno.wav", "--output-dir", only, "--formats", "txt", "--quiet"],
                         capsys)
    assert code == 0 and sorted(p.name for p in only.iterdir()) == ["summary.json", "yesno.txt"]


def test_cli_bad_files_stop_or_are_skipped(ctc_checkpoint, folder, fixtures_dir, tmp_path, capsys):
    reasons = bad_files(folder, fixtures_dir)
    out = tmp_path / "out"
    # without --skip-bad: the first bad file (in sorted order: empty.flac) stops the run, one line, exit 1
    code, _, err = run_cli([ctc_checkpoint, folder, "--output-dir", out, "--quiet"], capsys)
    lines = [line for line in err.splitlines() if line.startswith("sew-transcribe:")]
    assert code == 1 and len(lines) == 1 and "empty.flac" in lines[0] and "[empty]" in lines[0]
    assert "empty.flac" in json.loads((out / "summary.json").read_text())["error"]
    assert not (out / "hifi.txt").exists()  # files are done in sorted order: it comes after empty.flac
    # with --skip-bad: every good file transcribed, every bad one listed with its reason
    code, stdout, err = run_cli([ctc_checkpoint, folder, "--output-dir", out, "--quiet", "--skip-bad"], capsys)
    assert code == 0 and "3 file(s)" in stdout and "4 skipped" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert {Path(s["audio"]).name: s["reason"] for s in summary["skipped"]} == reasons
    assert json.loads((out / "hifi.json").read_text())["duration"] == pytest.approx(10.435, abs=1e-3)
    assert all(name in err for name in reasons)


def test_cli_keeps_finished_files_when_a_later_one_fails(ctc_checkpoint, folder, tmp_path, capsys):
    (folder / "zz_broken.wav").write_bytes(b"RIFF not really")
    out = tmp_path / "out"
    code, _, err = run_cli([ctc_checkpoint, folder, "--output-dir", out, "--quiet"], capsys)
    assert code == 1 and "zz_broken.wav" in err
    for stem in ("hifi", "yesno", "sub/libri"):  # written atomically as each was done
        assert (out / f"{stem}.txt").is_file() and (out / f"{stem}.json").is_file()
    assert not list(out.rglob(".tmp-*"))
    assert len((out / "transcripts.ctm").read_text().splitlines()) > 0


def test_inputs_lists_and_name_clashes(folder, tmp_path):
    listing = tmp_path / "files.txt"
    listing.write_text(f"# a comment\n{folder / 'hifi.flac'}\n\nin/yesno.wav\n")
    files = resolve_inputs([f"@{listing}"])
    assert [(Path(f.path).name, f.stem) for f in files] == [("hifi.flac", "hifi"), ("yesno.wav", "yesno")]
    sf.write(folder / "hifi.wav", np.zeros(800, np.float32), 16000)
    stems = sorted(f.stem for f in resolve_inputs([str(folder)]))
    assert stems == ["hifi.flac", "hifi.wav", "sub/libri", "yesno"]
    from sew_fairseq.transcribe import InputError
    (tmp_path / "other").mkdir()
    sf.write(tmp_path / "other" / "yesno.wav", np.zeros(800, np.float32), 16000)
    with pytest.raises(InputError, match="would both write yesno"):
        resolve_inputs([str(folder / "yesno.wav"), str(tmp_path / "other" / "yesno.wav")])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="no audio files in the directory"):
        resolve_inputs([str(tmp_path / "empty_dir")])


def test_shards_split_the_inputs_once(folder):
    for i in range(4):
        sf.write(folder / f"extra{i}.wav", np.zeros(800, np.float32), 16000)
    files = resolve_inputs([str(folder)])
    assert len(files) == 7
    for n in (1, 2, 3, 7, 10):
        parts = [Shard(k, n).select(files) for k in range(n)]
        every = [f for part in parts for f in part]
        assert sorted(every) == sorted(files) and len(set(every)) == len(files), n  # all of them, each once
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert Shard(1, 3).select(files) == [files[1], files[4]]
    assert Shard.parse("3/8") == Shard(3, 8) and Shard.parse(" 0 / 1 ") == Shard(0, 1) and str(Shard(3, 8)) == "3/8"
    assert Shard(3, 8).file_name("summary.json") == "summary.shard-3-of-8.json"
    for bad, message in (("3/3", "K must be 0 to 2"), ("-1/2", "K must be 0 to 1"), ("x/2", "is not K/N"),
                         ("1/0", "at least 1"), ("1", "is not K/N"), ("1/2/3", "is not K/N"), ("", "is not K/N")):
        with pytest.raises(ValueError, match=message):
            Shard.parse(bad)


def test_cli_shards_share_an_output_folder(ctc_checkpoint, folder, tmp_path, capsys):
    from sew_fairseq.cli.transcribe import main

    out = tmp_path / "out"
    common = [ctc_checkpoint, folder, "--output-dir", out, "--quiet", "--formats", "txt", "ctm"]
    stems = [f.stem for f in resolve_inputs([str(folder)])]  # hifi, sub/libri, yesno
    for k, mine in ((0, ["hifi", "yesno"]), (1, ["sub/libri"])):
        code, stdout, _ = run_cli(common + ["--shard", f"{k}/2"], capsys)
        assert code == 0 and f"(shard {k}/2 of 3 inputs)" in stdout
        summary = json.loads((out / f"summary.shard-{k}-of-2.json").read_text())
        assert summary["shard"] == f"{k}/2" and summary["inputs"] == 3 and summary["files"] == len(mine)
        ctm = (out / f"transcripts.shard-{k}-of-2.ctm").read_text().splitlines()
        assert sorted({line.split()[0] for line in ctm}) == mine
    assert sorted(str(p.relative_to(out))[:-4] for p in out.rglob("*.txt")) == sorted(stems)
    assert not (out / "summary.json").exists()
    # a run without --shard redoes nothing and writes the summary and CTM of all
    code, stdout, _ = run_cli(common, capsys)
    assert code == 0 and "3 already done" in stdout
    assert json.loads((out / "summary.json").read_text())["shard"] is None
    assert {line.split()[0] for line in (out / "transcripts.ctm").read_text().splitlines()} == set(stems)
    # a bad value is a usage error (exit status 2), before anything is loaded
    for value, message in (("--shard=3/3", "K must be 0 to 2"), ("--shard=-1/2", "K must be 0 to 1"),
                           ("--shard=x/2", "is not K/N")):
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in common] + [value])
        err = capsys.readouterr().err
        assert e.value.code == 2 and "sew-transcribe: error: argument --shard" in err and message in err


def test_console_script_help():
    exe = Path(sys.executable).parent / "sew-transcribe"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "sew-transcribe ckpt/checkpoint_best.pt talk.mp3" in proc.stdout
    assert "--chunk-seconds" in proc.stdout and "--skip-bad" in proc.stdout and "--lexicon" in proc.stdout


# ------------------------------------------------------------------------------------------- sew-infer bad input


def test_sew_infer_bad_files(ctc_checkpoint, fixtures_dir, tmp_path, capsys):
    from sew_fairseq.cli.infer import main

    data = tmp_path / "data"
    audio = data / "audio"
    audio.mkdir(parents=True)
    (audio / "good.flac").write_bytes((fixtures_dir / LIBRI).read_bytes())
    flac = (fixtures_dir / LIBRI).read_bytes()
    (audio / "cut.flac").write_bytes(flac[:len(flac) // 3])
    n = sf.info(audio / "good.flac").frames
    (data / "test.tsv").write_text(f"{audio}\ngood.flac\t{n}\ncut.flac\t{n}\ngone.flac\t{n}\n")
    (data / "test.wrd").write_text("A\nB\nC\n")
    args = [str(ctc_checkpoint), "--data", str(data), "--split", "test", "--quiet", "--results-dir",
            str(tmp_path / "r")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{data / 'test.tsv'}:3: {audio / 'cut.flac'}" in err and "[truncated]" in err
    assert main(args + ["--skip-bad"]) == 0
    result = json.loads((tmp_path / "r" / "results.json").read_text())
    assert result["utterances"] == 1 and [(s["line"], s["reason"]) for s in result["skipped"]] == \
        [(3, "truncated"), (4, "missing")]
    assert len((tmp_path / "r" / "hyp.trn").read_text().splitlines()) == 1
