"""``sew-manifest pack`` (manifests/pack.py): packed entries decode to the original samples, fairseq's
FileAudioDataset gives the same batches over the packed manifest as over the original, and the manifest check,
``sew-infer``'s split reader and the checked fine-tuning task accept packed manifests."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import soundfile as sf

from manifests.__main__ import main as sew_manifest
from manifests.check import check_manifest
from manifests.pack import pack_manifests
from manifests.records import ManifestError

LIBRI = ["test-clean/1089/134691/1089-134691-0000.flac", "test-clean/1089/134686/1089-134686-0001.flac",
         "dev-clean-2/1988/24833/1988-24833-0001.flac"]


def frames(path: Path) -> int:
    return sf.info(str(path)).frames


def write_split(directory: Path, split: str, root: Path, relpaths: List[str], words: List[str]) -> None:
    lines = [str(root)] + [f"{rel}\t{frames(root / rel)}" for rel in relpaths]
    (directory / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    (directory / f"{split}.wrd").write_text("".join(w + "\n" for w in words))
    (directory / f"{split}.ltr").write_text("".join(" ".join(w.replace(" ", "|")) + " |\n" for w in words))


@pytest.fixture(scope="module")
def corpus(demo_corpus, fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifests of three splits: the demo corpus's (16-bit WAV), real LibriSpeech FLAC files, and ``mixed``
    (24-bit, 8-bit unsigned and mu-law WAV, a WAV member of a stored zip named as archive.zip:offset:length, a
    file listed twice)."""
    out = tmp_path_factory.mktemp("pack") / "manifests"
    out.mkdir()
    demo = Path(demo_corpus.train_tsv).parent
    for name in ("train.tsv", "train.wrd", "train.ltr", "valid.tsv", "valid.wrd", "valid.ltr", "dict.ltr.txt"):
        shutil.copy(demo / name, out / name)
    libri = fixtures_dir / "librispeech" / "LibriSpeech"
    write_split(out, "libri", libri, LIBRI, ["A B", "C", "D E F"])

    audio = out.parent / "audio"
    audio.mkdir()
    samples, rate = sf.read(str(demo_corpus.audio_dir / "demo_00000.wav"), dtype="int16")
    for name, subtype in (("pcm24.wav", "PCM_24"), ("u8.wav", "PCM_U8"), ("ulaw.wav", "ULAW")):
        sf.write(str(audio / name), samples, rate, subtype=subtype)
    sf.write(str(audio / "member.wav"), samples[::-1], rate, subtype="PCM_16")
    with zipfile.ZipFile(audio / "old.zip", "w", compression=zipfile.ZIP_STORED) as z:
        z.write(audio / "member.wav", "member.wav")
    with zipfile.ZipFile(audio / "old.zip") as z:
        info = z.getinfo("member.wav")
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    rels = ["pcm24.wav", "u8.wav", "ulaw.wav", f"old.zip:{offset}:{info.file_size}", "pcm24.wav"]
    counts = [len(samples)] * 5
    (out / "mixed.tsv").write_text("\n".join([str(audio)] + [f"{r}\t{n}" for r, n in zip(rels, counts)]) + "\n")
    (out / "mixed.wrd").write_text("A\nB\nC\nD\nE\n")
    (out / "mixed.ltr").write_text("A |\nB |\nC |\nD |\nE |\n")
    (out / "mixed.report.json").write_text("{}\n")
    return out


@pytest.fixture(scope="module")
def packed(corpus: Path) -> Path:
    dest = corpus.parent / "packed"
    # 0.1 MB shards: the demo and mixed splits need several
    assert sew_manifest(["pack", str(corpus), "--dest", str(dest), "--shard-mb", "0.1", "--no-progress"]) == 0
    return dest


SPLITS = ("train", "valid", "libri", "mixed")


def entries(tsv: Path) -> List[str]:
    lines = tsv.read_text().splitlines()
    return [str(Path(lines[0]) / line.split("\t")[0]) for line in lines[1:]]


def test_packed_entries_decode_to_the_original_samples(corpus: Path, packed: Path) -> None:
    from fairseq.data.audio.audio_utils import is_sf_audio_data, parse_path, read_from_stored_zip

    for split in SPLITS:
        originals, packs = entries(corpus / f"{split}.tsv"), entries(packed / f"{split}.tsv")
        assert len(originals) == len(packs) > 0
        for original, entry in zip(originals, packs):
            archive, (offset, length) = parse_path(entry)  # fairseq's own reading of the packed line
            data = read_from_stored_zip(archive, offset, length)
            assert is_sf_audio_data(data) and data[:4] == b"fLaC"
            got, rate = sf.read(io.BytesIO(data), dtype="float32")
            if ":" in Path(original).name:
                src, (o, n) = parse_path(original)
                expected, _ = sf.read(io.BytesIO(read_from_stored_zip(src, o, n)), dtype="float32")
            else:
                expected, _ = sf.read(original, dtype="float32")
                if original.endswith(".flac"):  # FLAC files are stored as they are
                    assert data == Path(original).read_bytes()
            assert rate == 16000 and got.dtype == expected.dtype and np.array_equal(got, expected), entry
    shards = sorted(packed.glob("*.zip"))
    assert [p.name for p in shards if p.name.startswith("train-")] == ["train-00000.zip", "train-00001.zip",
                                                                       "train-00002.zip"]
    for shard in shards:
        with zipfile.ZipFile(shard) as z:
            assert all(i.compress_type == zipfile.ZIP_STORED and i.filename.endswith(".flac") for i in z.infolist())
            assert z.testzip() is None
        assert shard.stat().st_size <= 100_000 or len(zipfile.ZipFile(shard).infolist()) == 1
    # the file listed twice is stored once
    mixed = (packed / "mixed.tsv").read_text().splitlines()
    assert mixed[1].split("\t")[0] == mixed[5].split("\t")[0] and len(set(mixed[1:])) == 4


def test_labels_and_dictionaries_are_copied_unchanged(corpus: Path, packed: Path) -> None:
    copied = sorted(p.name for p in packed.iterdir() if not p.name.endswith((".zip", ".tsv")))
    assert copied == sorted(p.name for p in corpus.iterdir() if not p.name.endswith(".tsv"))
    assert all((packed / name).read_bytes() == (corpus / name).read_bytes() for name in copied)
    for split in SPLITS:  # the frame counts and the order stay
        original, new = ((d / f"{split}.tsv").read_text().splitlines() for d in (corpus, packed))
        assert new[0] == str(packed) and [x.split("\t")[1] for x in new[1:]] == [x.split("\t")[1] for x in original[1:]]


def batches(manifest: Path, max_tokens: int = 400_000) -> List[Dict]:
    from fairseq.data.audio.raw_audio_dataset import FileAudioDataset

    dataset = FileAudioDataset(str(manifest), sample_rate=16000, max_sample_size=40_000, pad=True, shuffle=False)
    out = []
    for i, batch in enumerate(dataset.batch_by_size(dataset.ordered_indices(), max_tokens=max_tokens)):
        np.random.seed(i)  # the crop of items above max_sample_size
        out.append(dataset.collater([dataset[j] for j in batch]))
    return out


def test_file_audio_dataset_gives_the_same_batches(corpus: Path, packed: Path) -> None:
    import torch

    for split in SPLITS:
        original, new = batches(corpus / f"{split}.tsv"), batches(packed / f"{split}.tsv")
        assert len(original) == len(new) > 0
        for a, b in zip(original, new):
            assert torch.equal(a["id"], b["id"])
            assert torch.equal(a["net_input"]["source"], b["net_input"]["source"])
            assert torch.equal(a["net_input"]["padding_mask"], b["net_input"]["padding_mask"])


def test_manifest_check_passes_and_names_a_bad_offset(packed: Path, tmp_path: Path) -> None:
    for split in SPLITS:
        report = check_manifest(packed / f"{split}.tsv")
        assert report.ok and report.num_kept == len(entries(packed / f"{split}.tsv"))
    lines = (packed / "libri.tsv").read_text().splitlines()
    shard, offset, length = lines[1].split("\t")[0].split(":")
    header = int(offset) - 30 - len("test-clean/1089/134691/1089-134691-0000.flac")  # the local header's offset
    assert header == 0
    (tmp_path / "bad.tsv").write_text(f"{packed}\n{shard}:{header}:{length}\t{lines[1].split(chr(9))[1]}\n")
    with pytest.raises(ManifestError, match="not WAV, FLAC or Ogg data, which fairseq requires .*local header"):
        check_manifest(tmp_path / "bad.tsv")


def test_sew_infer_reads_a_packed_split_as_the_original(corpus: Path, packed: Path) -> None:
    from sew_fairseq.evaluate.splits import load_audio, read_split

    for split in SPLITS:
        original, new = read_split(str(corpus), split), read_split(str(packed), split)
        # the same ids (zip members are named after the original paths), references and lengths
        assert [(u.id, u.words, u.num_samples) for u in new] == [(u.id, u.words, u.num_samples) for u in original]
        for a, b in zip(original, new):
            assert np.array_equal(load_audio(a, 16000), load_audio(b, 16000))
    assert [u.id for u in read_split(str(packed), "libri")] == [rel[:-len(".flac")] for rel in LIBRI]


def test_sew_infer_decodes_a_packed_split_as_the_original(ctc_checkpoint: Path, corpus: Path, packed: Path,
                                                          tmp_path: Path) -> None:
    from sew_fairseq.cli.infer import main as sew_infer

    for data in (corpus, packed):
        assert sew_infer([str(ctc_checkpoint), "--data", str(data), "--split", "libri", "--device", "cpu", "--quiet",
                          "--results-dir", str(tmp_path / data.name)]) == 0
    for name in ("hyp.trn", "ref.trn", "utterances.tsv"):
        assert (tmp_path / "packed" / name).read_text() == (tmp_path / "manifests" / name).read_text()
    assert "(test-clean/1089/134691/1089-134691-0000)" in (tmp_path / "packed" / "hyp.trn").read_text()


def test_checked_finetuning_task_loads_packed_splits(corpus: Path, packed: Path) -> None:
    import torch
    from fairseq.tasks import setup_task
    from omegaconf import OmegaConf

    import sew_fairseq  # noqa: F401  (registers the task)
    from sew_fairseq.tasks.audio_finetuning_checked import AudioFinetuningCheckedConfig

    items = {}
    for data in (corpus, packed):
        cfg = OmegaConf.structured(AudioFinetuningCheckedConfig(data=str(data), labels="ltr", tpu=False))
        cfg._name = "audio_finetuning_checked"
        task = setup_task(cfg)
        task.load_dataset("train")  # checks the manifest's audio and the labels first
        dataset = task.dataset("train")
        items[data] = [dataset[i] for i in range(len(dataset))]
    for a, b in zip(items[corpus], items[packed]):
        assert torch.equal(a["source"], b["source"]) and torch.equal(a["label"], b["label"])
    assert len(items[packed]) == 5


def test_repacking_is_byte_identical_and_drops_stale_shards(corpus: Path, packed: Path, tmp_path: Path) -> None:
    dest = tmp_path / "again"
    pack_manifests(corpus, dest, shard_mb=0.1, splits=["train"], progress=False)
    for name in ("train-00000.zip", "train-00001.zip", "train-00002.zip"):
        assert (dest / name).read_bytes() == (packed / name).read_bytes()
    (done,) = pack_manifests(corpus, dest, shard_mb=10, splits=["train"], progress=False)
    assert len(done.shards) == 1 and sorted(p.name for p in dest.glob("*.zip")) == ["train-00000.zip"]
    assert check_manifest(dest / "train.tsv").ok and not list(dest.glob(".tmp-*"))


def test_pack_errors(corpus: Path, tmp_path: Path, capsys) -> None:
    def error(*argv: str) -> str:
        assert sew_manifest(["pack", *argv, "--no-progress"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in err[0]
        return err[0]

    bad = tmp_path / "bad"
    bad.mkdir()
    sf.write(str(bad / "float.wav"), np.zeros(800, np.float32), 16000, subtype="FLOAT")
    (bad / "x.tsv").write_text(f"{bad}\nfloat.wav\t800\n")
    assert error(str(bad), "--dest", str(tmp_path / "out")) == (
        f"sew-manifest pack: error: {bad / 'x.tsv'}:2: {bad / 'float.wav'}: WAV FLOAT audio has no lossless FLAC "
        f"form [unpackable]. Fix: convert it to 16-bit FLAC or WAV first, or remove the line")
    assert not (tmp_path / "out" / "x.tsv").exists()
    (bad / "x.tsv").write_text(f"{bad}\nnowhere.flac\t800\n")
    assert error(str(bad), "--dest", str(tmp_path / "out")).startswith(
        f"sew-manifest pack: error: {bad / 'x.tsv'}:2: {bad / 'nowhere.flac'}: no such file [missing]")
    assert error(str(corpus), "--dest", str(tmp_path / "a:b")) == (
        f"sew-manifest pack: error: {tmp_path / 'a:b'}: a packed manifest's paths may not contain ':' (fairseq "
        f"splits them there); choose another --dest")
    assert error(str(corpus), "--dest", str(corpus)).endswith("--dest is the manifest directory itself; choose another")
    assert error(str(corpus), "--dest", str(tmp_path / "o"), "--splits", "test").startswith(
        f"sew-manifest pack: error: {corpus / 'test.tsv'}: no such manifest (splits here: libri, mixed, train, valid)")


def test_loader_bench_reads_the_same_audio_from_files_and_shards(corpus: Path, packed: Path) -> None:
    """``sew-bench loader``: one worker process and none deliver the same batches and audio from both manifests.

    In a child process, as the command runs: the loader forks its worker, and a fork of this test process (with the
    thread pools of OpenVINO and ONNX Runtime that earlier tests started) died with SIGSEGV now and then."""
    code = ("import json, sys; from sew_fairseq.bench.loader import run_loader_bench; "
            "rows = run_loader_bench(sys.argv[1], 'libri', sys.argv[2], workers=(0, 1), max_tokens=200_000); "
            "print(json.dumps(rows))")
    proc = subprocess.run([sys.executable, "-c", code, str(corpus), str(packed)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [(r["kind"], r["workers"]) for r in rows] == [("files", 0), ("packed", 0), ("files", 1), ("packed", 1)]
    assert len({(r["batches"], round(r["audio_hours"], 9)) for r in rows}) == 1 and rows[0]["audio_hours"] > 0
    assert all(r["hours_per_second"] > 0 and r["per_worker"] == r["hours_per_second"] for r in rows)
