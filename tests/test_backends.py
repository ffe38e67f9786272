"""sew_fairseq.engines: every backend/dtype against torch fp32 on reduced random-weight SEW and SEW-D CTC models
(tolerances per dtype), clear errors for what the machine or the backend cannot run, the ONNX cache (reused, rebuilt
when the checkpoint changes), graphs given by file, chunked long-form through ONNX Runtime, and the --backend /
--dtype flags of sew-transcribe, sew-infer and sew-bench. Real models and real speech; nothing mocked except the
CPU flags of the "no bf16 here" error."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from convert_helpers import audio, write_plugin_checkpoint
from sew_fairseq.engines import UnsupportedBackend, check_backend, cpu_bf16, load_engine
from sew_fairseq.engines.onnx_engine import cached_onnx
from sew_fairseq.engines.torch_engine import forward_log_probs
from sew_fairseq.transcribe import Transcriber

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

LIBRI = "librispeech/LibriSpeech/test-clean/1089/134686/1089-134686-0000.flac"
HAS_BF16, NO_BF16 = cpu_bf16()
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason=f"no bf16 on this CPU: {NO_BF16}")

# (max abs log-probability difference to torch fp32, least frame argmax agreement) per engine. fp32 is the
# interface's promise (measured 1.9e-6). bf16 and int8 were measured on these models and waves (2026-12-01, Xeon
# with AMX): bf16 max diff 0.023-0.025, agreement 98.9-99.5 %; int8 0.056-0.061, 98.4-100 %; the bounds leave
# about 4x on the difference (log-probabilities reach -5.7 here).
TOLERANCE = {("onnxruntime", "fp32"): (1e-4, 1.0), ("torch", "bf16"): (0.1, 0.95),
             ("onnxruntime", "int8"): (0.25, 0.95)}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict:
    """Reduced SEW (sew_c) and SEW-D (sew_d_c) CTC checkpoints, each in its own folder."""
    out = {}
    for name in ("sew_c", "sew_d_c"):
        folder = tmp_path_factory.mktemp(name)
        out[name] = write_plugin_checkpoint(folder / "checkpoint.pt", name, ctc=True)
    return out


@pytest.fixture(scope="module")
def waves(fixtures_dir) -> list:
    """Real speech: two 3 s pieces (equal lengths: one batch in ONNX Runtime) and a 1.37 s one."""
    speech, rate = sf.read(fixtures_dir / LIBRI, dtype="float32")
    assert rate == 16000
    return [speech[:48000], speech[48000:96000], speech[100000:100000 + 21920]]


def agreement(a, b) -> float:
    return sum(int((x.argmax(-1) == y.argmax(-1)).sum()) for x, y in zip(a, b)) / sum(x.shape[0] for x in a)


def max_diff(a, b) -> float:
    assert [x.shape for x in a] == [y.shape for y in b]
    return max((x - y).abs().max().item() for x, y in zip(a, b))


# ------------------------------------------------------------------------------------------- numbers


def test_torch_fp32_engine_is_forward_log_probs_bit_for_bit(checkpoints, waves):
    loaded = load_engine(str(checkpoints["sew_d_c"]))
    got = loaded.engine.log_probs(waves)
    with torch.inference_mode():  # as compute_emissions and Transcriber call it
        expected, _ = forward_log_probs(loaded.model, waves)
    assert all(torch.equal(a, b) for a, b in zip(got.log_probs, expected)) and got.exit_layers == [None] * 3
    assert all(lp.dtype == torch.float32 and lp.device.type == "cpu" for lp in got.log_probs)


@pytest.mark.parametrize("name", ["sew_c", "sew_d_c"])
@pytest.mark.parametrize("backend,dtype", [("onnxruntime", "fp32"), pytest.param("torch", "bf16", marks=needs_bf16),
                                           ("onnxruntime", "int8")])
def test_engine_against_torch_fp32(name, backend, dtype, checkpoints, waves, tmp_path):
    reference = load_engine(str(checkpoints[name])).engine.log_probs(waves).log_probs
    engine = load_engine(str(checkpoints[name]), backend, dtype, onnx_cache=str(tmp_path)).engine
    got = engine.log_probs(waves).log_probs
    tol, least = TOLERANCE[backend, dtype]
    diff, agree = max_diff(got, reference), agreement(got, reference)
    assert diff <= tol and agree >= least, (diff, agree)
    assert all(lp.dtype == torch.float32 for lp in got)
    assert max(lp.abs().max().item() for lp in reference) > 1.0  # not a trivially flat output
    if dtype != "fp32":
        assert diff > 1e-5  # the reduced precision did run
    # every wave gets what it gets alone (ONNX Runtime batches equal lengths; torch pads)
    alone = [engine.log_probs([w]).log_probs[0] for w in waves]
    assert max_diff(got, alone) <= (1e-5 if dtype == "fp32" else tol)


@needs_bf16
def test_bf16_prepares_the_model_once_and_keeps_the_first_block_and_norms_fp32(checkpoints):
    from sew_fairseq.engines.torch_engine import ChannelsLastConv1d, Fp32Conv1d

    loaded = load_engine(str(checkpoints["sew_d_c"]), "torch", "bf16")
    first, *convs = [m for m in loaded.model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert isinstance(first, Fp32Conv1d) and first.in_channels == 1 and first.weight.dtype == torch.float32
    assert len(convs) == 13 and all(isinstance(m, ChannelsLastConv1d) and m.weight.dtype == torch.bfloat16
                                    for m in convs)  # 12 extractor blocks and the positional conv
    assert all(m.weight.dtype == torch.bfloat16 for m in loaded.model.modules() if isinstance(m, torch.nn.Linear))
    assert all(m.weight.dtype == torch.float32 for m in loaded.model.modules() if isinstance(m, torch.nn.LayerNorm))
    assert not any("weight_g" in n for n, _ in loaded.model.named_parameters())  # weight norm folded
    # the frame stride still reads off the convolutions (Transcriber's chunk alignment)
    assert Transcriber(loaded.model, loaded.dictionary, engine=loaded.engine).frame_stride == 320


@needs_bf16
def test_early_exit_runs_in_bf16():
    from test_early_exit import build_model, padded_batch

    from sew_fairseq.engines.torch_engine import TorchEngine
    from sew_fairseq.modules.early_exit import ExitRule

    def model():
        torch.manual_seed(0)  # the same random weights for both
        return build_model("sew_d_tiny")[0]

    waves = [w[~p].numpy() for w, p in zip(*padded_batch())]
    fp32 = TorchEngine(model(), exit_rule=ExitRule("entropy", 0.0)).log_probs(waves)
    bf16 = TorchEngine(model(), dtype="bf16", exit_rule=ExitRule("entropy", 0.0)).log_probs(waves)
    assert fp32.exit_layers == bf16.exit_layers == [4, 4]  # a threshold that never fires: every layer
    assert max_diff(bf16.log_probs, fp32.log_probs) <= 0.25  # measured 0.050 (default init, 4 layers)


# ------------------------------------------------------------------------------------------- errors


def test_unsupported_combinations_are_clear_errors(checkpoints):
    from sew_fairseq.modules.early_exit import ExitRule

    with pytest.raises(UnsupportedBackend, match="^backend torch with dtype fp16 on device cpu: fp16 needs a CUDA "
                                                 "device .*; on a CPU use dtype bf16 or fp32$"):
        check_backend("torch", "fp16", "cpu")
    with pytest.raises(UnsupportedBackend, match=r"^backend torch with dtype int8 on device cpu: backend torch runs "
                                                 r"fp32 / bf16 / fp16, not int8 \(int8 runs with backend "
                                                 r"onnxruntime or openvino: "):
        check_backend("torch", "int8", "cpu")
    with pytest.raises(UnsupportedBackend, match=r"backend onnxruntime runs fp32 / int8, not bf16 \(bf16 runs with "
                                                 r"backend torch or openvino\)$"):
        check_backend("onnxruntime", "bf16", "cpu")
    with pytest.raises(UnsupportedBackend, match="early exit .* which only backend torch does .*; use backend torch$"):
        check_backend("onnxruntime", "fp32", "cpu", early_exit=True)
    with pytest.raises(UnsupportedBackend, match=r"an ONNX graph \(m.onnx\) runs with backend onnxruntime only$"):
        check_backend("torch", "fp32", "cpu", onnx_model="m.onnx")
    with pytest.raises(UnsupportedBackend, match="device 'mps' is neither cpu nor cuda$"):
        check_backend("torch", "fp32", "mps")
    with pytest.raises(UnsupportedBackend, match="device 'gpu0' is neither cpu nor cuda$"):
        check_backend("torch", "fp32", "gpu0")  # not a torch device at all
    with pytest.raises(UnsupportedBackend, match="dynamic int8 .* is a CPU path in onnxruntime; on CUDA use backend "
                                                 "onnxruntime with dtype fp32"):
        check_backend("onnxruntime", "int8", "cuda", hardware=False)
    if not torch.cuda.is_available():
        with pytest.raises(UnsupportedBackend, match="no CUDA device .*; use device cpu$") as info:
            check_backend("torch", "bf16", "cuda")
        assert info.value.reason == "no_cuda"
        check_backend("torch", "bf16", "cuda", hardware=False)  # the rules alone allow it; this machine does not
    # no command-line flag in any of the library's messages
    for args in (("torch", "fp16", "cpu"), ("torch", "int8", "cpu"), ("onnxruntime", "bf16", "cpu"),
                 ("onnxruntime", "int8", "cuda"), ("torch", "bf16", "cuda")):
        try:
            check_backend(*args)
        except UnsupportedBackend as e:
            assert "--" not in str(e), str(e)
    # through the public entry points, before anything is loaded or exported
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Transcriber.from_checkpoint(str(checkpoints["sew_c"]), dtype="fp16")
    with pytest.raises(ValueError, match="early exit"):
        load_engine(str(checkpoints["sew_c"]), "onnxruntime", exit_rule=ExitRule("entropy", 0.1))
    assert not (Path(checkpoints["sew_c"]).parent / "onnx-cache").exists()


def test_bf16_without_bf16_hardware_names_what_is_missing(monkeypatch):
    from sew_fairseq import hardware_probes
    from sew_fairseq.engines import hardware

    monkeypatch.setattr(hardware_probes, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    monkeypatch.setattr(hardware_probes, "_torch_probe", lambda name: False)
    assert hardware.cpu_bf16()[0] is False
    with pytest.raises(UnsupportedBackend, match=r"^backend torch with dtype bf16 on device cpu: bf16 on a CPU needs "
                                                 r"AVX512-BF16 or AMX-BF16.*neither.*Use dtype fp32, or backend "
                                                 r"onnxruntime or openvino with dtype int8$"):
        hardware.check_backend("torch", "bf16", "cpu")
    hardware.check_backend("torch", "bf16", "cpu", hardware=False)  # the machine is not asked
    monkeypatch.setattr(hardware_probes, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert hardware.cpu_bf16() == (True, "AVX512-BF16")


# ------------------------------------------------------------------------------------------- the ONNX cache


def test_onnx_cache_is_reused_and_rebuilt_when_the_checkpoint_changes(tmp_path, waves):
    (tmp_path / "model").mkdir()
    ckpt = write_plugin_checkpoint(tmp_path / "model" / "checkpoint_best.pt", "sew_c", ctc=True)
    first = load_engine(str(ckpt), "onnxruntime", "fp32").engine
    cache = tmp_path / "model" / "onnx-cache"  # default: beside the checkpoint
    assert not first.setup.reused and first.setup.export_seconds > 0 and Path(first.path).parent == cache
    mtime = os.stat(first.path).st_mtime_ns
    again = load_engine(str(ckpt), "onnxruntime", "fp32").engine
    assert again.setup.reused and again.setup.export_seconds == 0 and again.path == first.path
    assert os.stat(again.path).st_mtime_ns == mtime  # not exported again
    int8 = load_engine(str(ckpt), "onnxruntime", "int8").engine  # quantised from the cached fp32 graph
    assert int8.setup.export_seconds == 0 and int8.setup.quantize_seconds > 0
    assert os.stat(first.path).st_mtime_ns == mtime
    assert sorted(p.name for p in cache.iterdir()) == sorted([Path(first.path).name, Path(int8.path).name])
    # a copy with the same bytes elsewhere has the same key; a touched file too
    os.utime(ckpt)
    assert load_engine(str(ckpt), "onnxruntime", "fp32").engine.setup.reused
    # the checkpoint changes (other weights, same path): a new graph, the old ones removed, the new weights run
    write_plugin_checkpoint(ckpt, "sew_c", ctc=True, seed=1)
    changed = load_engine(str(ckpt), "onnxruntime", "fp32").engine
    assert not changed.setup.reused and changed.path != first.path
    assert [p.name for p in cache.iterdir()] == [Path(changed.path).name]
    expected = load_engine(str(ckpt)).engine.log_probs(waves).log_probs
    assert max_diff(changed.log_probs(waves).log_probs, expected) <= 1e-4
    # --onnx-cache elsewhere; a cache folder that cannot be made is a clear error
    other = cached_onnx(str(ckpt), "fp32", str(tmp_path / "elsewhere"))
    assert Path(other.path).parent == tmp_path / "elsewhere" and not other.setup.reused
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match=r"cannot create the ONNX cache .*: give a writable cache folder "
                                         r"\(onnx_cache\)$"):
        cached_onnx(str(ckpt), "fp32", str(tmp_path / "a_file" / "cache"))
    # a checkpoint that cannot be exported (a pretrained model: no CTC layer) leaves no empty cache folder
    (tmp_path / "pre").mkdir()
    pretrained = write_plugin_checkpoint(tmp_path / "pre" / "checkpoint.pt", "sew_c", ctc=False)
    with pytest.raises(ValueError, match="no CTC output layer"):
        cached_onnx(str(pretrained), "fp32")
    assert sorted(p.name for p in (tmp_path / "pre").iterdir()) == ["checkpoint.pt"]


def test_graphs_from_sew_convert_are_checked_and_run(checkpoints, waves, tmp_path, capsys):
    from sew_fairseq.cli.convert import main as convert

    ckpt = str(checkpoints["sew_d_c"])
    assert convert(["to-onnx", ckpt, str(tmp_path / "int8.onnx"), "--quantize", "int8"]) == 0
    assert convert(["to-onnx", ckpt, str(tmp_path / "fp32.onnx")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32.onnx", "int8.onnx"]  # no temporary left
    from sew_fairseq.checkpoints.onnx import file_sha256, read_metadata

    meta = read_metadata(str(tmp_path / "int8.onnx"))
    assert meta["sew_fairseq.dtype"] == "int8" and meta["sew_fairseq.checkpoint_sha256"] == file_sha256(ckpt)
    reference = load_engine(ckpt).engine.log_probs(waves).log_probs
    for dtype in ("fp32", "int8"):
        engine = load_engine(ckpt, "onnxruntime", dtype, onnx_model=str(tmp_path / f"{dtype}.onnx")).engine
        assert engine.setup.reused and engine.path == str(tmp_path / f"{dtype}.onnx")
        tol, least = TOLERANCE["onnxruntime", dtype]
        got = engine.log_probs(waves).log_probs
        assert max_diff(got, reference) <= tol and agreement(got, reference) >= least
    assert not (Path(ckpt).parent / "onnx-cache").exists()  # a given graph needs no cache
    with pytest.raises(ValueError, match="is a int8 graph, not fp32: run it with dtype int8, or make a fp32 one with "):
        load_engine(ckpt, "onnxruntime", "fp32", onnx_model=str(tmp_path / "int8.onnx"))
    with pytest.raises(ValueError, match="exported from another checkpoint .*, or leave out onnx_model to use the "
                                         "cache$"):
        load_engine(str(checkpoints["sew_c"]), "onnxruntime", "fp32", onnx_model=str(tmp_path / "fp32.onnx"))
    with pytest.raises(UnsupportedBackend, match=r"^backend torch with dtype fp32 on device cpu: an ONNX graph "
                                                 r"\(.*fp32.onnx\) runs with backend onnxruntime only$"):
        load_engine(ckpt, "torch", "fp32", onnx_model=str(tmp_path / "fp32.onnx"))


# ------------------------------------------------------------------------------------------- long-form and CLIs


def test_chunked_long_form_through_onnxruntime_equals_torch(checkpoints, fixtures_dir, tmp_path):
    speech, _ = sf.read(fixtures_dir / LIBRI, dtype="float32")
    wave = np.concatenate([speech, speech])  # 20.9 s in 4 s chunks
    kwargs = dict(chunk_seconds=4.0, overlap_seconds=1.0)
    torch_tr = Transcriber.from_checkpoint(str(checkpoints["sew_d_c"]), **kwargs)
    ort_tr = Transcriber.from_checkpoint(str(checkpoints["sew_d_c"]), backend="onnxruntime",
                                         onnx_cache=str(tmp_path), **kwargs)
    expected, got = torch_tr.log_probs(wave, 16000), ort_tr.log_probs(wave, 16000)
    assert got.shape == expected.shape and (got - expected).abs().max().item() <= 1e-4
    a, b = torch_tr.transcribe(wave, 16000), ort_tr.transcribe(wave, 16000)
    assert a.text == b.text and a.chunks == b.chunks == 10  # starts 0, 2, ..., 16 s and the last at 16.9 s
    int8 = Transcriber.from_checkpoint(str(checkpoints["sew_d_c"]), backend="onnxruntime", dtype="int8",
                                       onnx_cache=str(tmp_path), **kwargs)
    assert agreement([int8.log_probs(wave, 16000)], [expected]) >= TOLERANCE["onnxruntime", "int8"][1]


def test_sew_transcribe_accepts_backend_and_dtype(checkpoints, fixtures_dir, tmp_path, capsys):
    from sew_fairseq.cli.transcribe import main

    clip = tmp_path / "clip.flac"
    shutil.copy(fixtures_dir / LIBRI, clip)
    ckpt = str(checkpoints["sew_c"])
    texts = {}
    for flags in ([], ["--backend", "onnxruntime", "--dtype", "fp32", "--onnx-cache", str(tmp_path / "c")],
                  ["--backend", "onnxruntime", "--dtype", "int8", "--onnx-cache", str(tmp_path / "c")]):
        out = tmp_path / ("out" + "_".join(flags[1:4:2]))
        assert main([ckpt, str(clip), "--output-dir", str(out), "--quiet", *flags]) == 0
        texts[" ".join(flags[1:4:2])] = json.loads((out / "clip.json").read_text())["text"]
    assert texts[""] == texts["onnxruntime fp32"]
    assert sorted(p.name.split(".")[-2] for p in (tmp_path / "c").iterdir()) == ["fp32", "int8"]
    capsys.readouterr()
    assert main([ckpt, str(clip), "--output-dir", str(tmp_path / "x"), "--backend", "onnxruntime",
                 "--early-exit", "entropy"]) == 2
    assert "--early-exit needs --backend torch" in capsys.readouterr().err
    assert main([ckpt, str(clip), "--output-dir", str(tmp_path / "x"), "--dtype", "int8"]) == 2
    assert "--backend torch runs --dtype fp32 / bf16 / fp16, not int8" in capsys.readouterr().err
    assert main([ckpt, str(clip), "--output-dir", str(tmp_path / "x"), "--dtype", "int8", "--onnx", "m.onnx"]) == 2
    assert "--backend torch runs --dtype fp32 / bf16 / fp16, not int8" in capsys.readouterr().err
    assert main([ckpt, str(clip), "--output-dir", str(tmp_path / "x"), "--onnx", "m.onnx"]) == 2
    assert "--onnx FILE is a graph for --backend onnxruntime" in capsys.readouterr().err
    # fp16 on a CPU is refused on every machine: a usage error, before the checkpoint is read
    assert main([ckpt, str(clip), "--output-dir", str(tmp_path / "x"), "--dtype", "fp16", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sew-transcribe: error: --backend torch --dtype fp16 --device cpu: fp16 needs a CUDA device")
    assert "Traceback" not in err and not (tmp_path / "x").exists()
    if not HAS_BF16:  # what this machine cannot run is found when the engine is built, and said with the flags
        assert main([ckpt, str(clip), "--output-dir", str(tmp_path / "x"), "--dtype", "bf16", "--device", "cpu"]) == 1
        assert capsys.readouterr().err.startswith("sew-transcribe: error: --backend torch --dtype bf16 --device cpu: "
                                                  "bf16 on a CPU needs AVX512-BF16 or AMX-BF16")


def manifest(folder: Path, fixtures_dir: Path) -> Path:
    """A two-utterance split (the LibriSpeech fixture, whole and its first 3 s) with references."""
    audio_dir = folder / "audio"
    audio_dir.mkdir(parents=True)
    speech, _ = sf.read(fixtures_dir / LIBRI, dtype="float32")
    sf.write(audio_dir / "a.flac", speech, 16000)
    sf.write(audio_dir / "b.flac", speech[:48000], 16000)
    (folder / "test.tsv").write_text(f"{audio_dir}\na.flac\t{len(speech)}\nb.flac\t48000\n")
    (folder / "test.wrd").write_text("HE HOPED THERE WOULD BE STEW FOR DINNER\nHE HOPED\n")
    return folder


def test_sew_infer_accepts_backend_and_dtype(checkpoints, fixtures_dir, tmp_path, capsys):
    from sew_fairseq.cli.infer import main

    data = manifest(tmp_path / "data", fixtures_dir)
    ckpt = str(checkpoints["sew_d_c"])
    results = {}
    for backend, dtype in (("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")):
        out = tmp_path / f"r_{backend}_{dtype}"
        assert main([ckpt, "--data", str(data), "--split", "test", "--quiet", "--results-dir", str(out),
                     "--backend", backend, "--dtype", dtype, "--onnx-cache", str(tmp_path / "c")]
                    if backend == "onnxruntime" else
                    [ckpt, "--data", str(data), "--split", "test", "--quiet", "--results-dir", str(out)]) == 0
        results[backend, dtype] = json.loads((out / "results.json").read_text())
        assert results[backend, dtype]["backend"] == backend and results[backend, dtype]["dtype"] == dtype
        assert (out / "hyp.trn").read_text().count("\n") == 2
    hyps = {k: (tmp_path / f"r_{k}" / "hyp.trn").read_text() for k in ("torch_fp32", "onnxruntime_fp32")}
    assert hyps["torch_fp32"] == hyps["onnxruntime_fp32"]
    assert results["torch", "fp32"]["wer"] == results["onnxruntime", "fp32"]["wer"]


@pytest.mark.skipif(not HAS_BF16, reason=f"no bf16 on this CPU: {NO_BF16}")
def test_sew_infer_bf16(checkpoints, fixtures_dir, tmp_path):
    from sew_fairseq.cli.infer import main

    data = manifest(tmp_path / "data", fixtures_dir)
    out = tmp_path / "r"
    assert main([str(checkpoints["sew_c"]), "--data", str(data), "--split", "test", "--quiet", "--results-dir",
                 str(out), "--dtype", "bf16"]) == 0
    assert json.loads((out / "results.json").read_text())["dtype"] == "bf16"


def test_sew_bench_speed_and_accuracy_per_backend(checkpoints, fixtures_dir, tmp_path, capsys):
    pytest.importorskip("transformers")
    from sew_fairseq.cli.bench import main

    assert main(["speed", "--presets", "sew_d_tiny", "--seconds", "0.5", "--repeats", "1", "--backend", "torch",
                 "onnxruntime", "--dtype", "fp32", "int8", "--against", "hf"]) == 0
    out = capsys.readouterr().out
    assert "not run: torch int8: backend torch runs fp32 / bf16 / fp16, not int8 (int8 runs with backend " in out
    rows = {m.group(1): m for m in re.finditer(r"^sew_d_tiny\s+(transformers fp32|ours \w+ \w+)\s+([\d.]+)\s+[\d.]+"
                                                r"\s+([\d.]+)x\s*([\d.]+x\*?)?\s+([\d.e+-]+)\s+([\d.]+)%(.*)$",
                                                out, re.MULTILINE)}
    assert set(rows) == {"transformers fp32", "ours torch fp32", "ours onnxruntime fp32", "ours onnxruntime int8"}, out
    assert float(rows["ours torch fp32"].group(5)) <= 1e-4 and float(rows["ours onnxruntime fp32"].group(5)) <= 1e-4
    assert "export" in rows["ours onnxruntime fp32"].group(7) and "quantise" in rows["ours onnxruntime int8"].group(7)
    assert rows["ours onnxruntime int8"].group(4).endswith("*") and "* against transformers fp32" in out
    assert main(["speed", "--presets", "sew_d_tiny", "--seconds", "0.5", "--backend", "torch", "--dtype",
                 "fp16"]) == 2
    assert "fp16 needs a CUDA device" in capsys.readouterr().err
    # accuracy: greedy WER per engine on a split, against torch fp32
    data = manifest(tmp_path / "data", fixtures_dir)
    assert main(["accuracy", str(checkpoints["sew_c"]), "--data", str(data), "--split", "test", "--backend",
                 "onnxruntime", "--dtype", "fp32", "int8", "--onnx-cache", str(tmp_path / "c"), "--json",
                 str(tmp_path / "acc.json")]) == 0
    out = capsys.readouterr().out
    table = json.loads((tmp_path / "acc.json").read_text())
    assert [r["path"] for r in table] == ["torch fp32", "onnxruntime fp32", "onnxruntime int8"], out
    assert table[0]["max_diff"] == 0 and table[0]["same_text"] == 2 and table[1]["max_diff"] <= 1e-4
    assert table[1]["wer"] == table[0]["wer"] and table[1]["wer_delta"] == 0
    assert re.search(r"^onnxruntime int8\s+[\d.]+\s+[+-][\d.]+\s+[\d.]+\s+\d/2", out, re.MULTILINE), out


def test_hardware_detection_sees_the_cpuinfo_flags():
    from sew_fairseq.engines.hardware import cpu_flags

    flags = cpu_flags()
    if not {"avx512_bf16", "amx_bf16"} & flags:
        pytest.skip("this CPU lists no bf16 flag")
    assert HAS_BF16 and ("AMX-BF16" in NO_BF16 or "AVX512-BF16" in NO_BF16)  # NO_BF16: what was found


def test_torch_and_onnx_agree_on_an_odd_frame_count(checkpoints, tmp_path):
    """A wave of 1 s (49 frames: the squeeze drops the last one, the upsampling pads it back) through ONNX Runtime:
    the same frames as torch."""
    wave = audio(1.0, 3).numpy()
    expected = load_engine(str(checkpoints["sew_c"])).engine.log_probs([wave]).log_probs
    got = load_engine(str(checkpoints["sew_c"]), "onnxruntime", onnx_cache=str(tmp_path)).engine.log_probs([wave])
    assert expected[0].shape[0] % 2 == 1 and max_diff(got.log_probs, expected) <= 1e-4
