"""``sew-bench speed --backend ... --dtype ...`` and ``sew-bench accuracy``: every inference backend, fast and right.

    sew-bench speed --presets sew_tiny --seconds 11 --threads 2 --backend torch onnxruntime --dtype fp32 bf16 int8 \\
        --against hf
    sew-bench accuracy ckpt/checkpoint_best.pt --data corpus --split valid --threads 2

``speed`` with ``--backend`` / ``--dtype`` times each preset as a CTC model (its random weights, a random projection to
32 letters, written as a plugin checkpoint in a temporary folder) from the wave to the log-probabilities, through
each engine of :mod:`sew_fairseq.engines` asked for (the valid backend x dtype pairs; pairs this machine cannot run
are listed with the reason and not run). ``--against hf`` adds, in the same process, transformers' ``SEWForCTC`` /
``SEWDForCTC`` holding the same weights, in fp32 and under ``torch.autocast`` with each reduced dtype asked for
(bf16 / fp16), and prints for each of ours: time, transformers fp32 time / ours, transformers same-dtype time / ours
(for onnxruntime, fp32 and int8 alike, the comparison is transformers fp32: transformers has no int8 or ONNX path
here), the largest log-probability difference to transformers fp32 and the frame argmax agreement with it. Every
path runs once per repeat in turn, so that load changes hit all of them. ONNX Runtime's and OpenVINO's one-time
costs are reported separately: export, int8 quantisation (each engine gets a fresh cache, so both are measured;
openvino int8 is calibrated on the timed waves: speed does not depend on the ranges) and session creation /
compilation. With openvino among the backends, OpenVINO's plain run of the ``sew-convert to-onnx`` export
(``compile_model(onnx, "CPU")``, OpenVINO's defaults: :class:`PlainOpenVino`) is the anchor row. Each row gives
GFLOP/s (the network's FLOPs counted once, :func:`count_flops`, over its median time) and its share of the fp32
(and, on a CPU with bf16 units, bf16) matrix-product peak: a 2048^3 torch product timed in turn with the paths.

``accuracy`` decodes a split greedily through each engine (default: torch fp32 and bf16, onnxruntime fp32 and
int8) and prints, against torch fp32: WER and its change, identical transcripts, the largest log-probability
difference and the frame argmax agreement, with forward seconds. A fp32 path more than 1e-4 from its reference
makes both commands exit 1.
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

from ..engines import Engine, UnsupportedBackend, check_backend, load_engine, waves_calibration
from ..engines.base import GraphEngine
from ..engines.hardware import cpu_bf16, cpu_description
from ..engines.torch_engine import TORCH_DTYPES
from .speed import time_forward

#: fp32 paths must agree with their reference this closely (max abs log-probability)
FP32_TOL = 1e-4


class Pair(NamedTuple):
    backend: str
    dtype: str

    @property
    def name(self) -> str:
        return f"{self.backend} {self.dtype}"


def engine_pairs(backends: Sequence[str], dtypes: Sequence[str], device: str
                 ) -> Tuple[List[Pair], List[Tuple[Pair, str]]]:
    """(the backend x dtype pairs this machine runs, [(pair, why not)] for the others: the refusal of
    :func:`sew_fairseq.engines.hardware.check_backend`), in the order given."""
    run, skipped = [], []
    for backend in backends:
        for dtype in dtypes:
            pair = Pair(backend, dtype)
            try:
                check_backend(backend, dtype, device)
            except UnsupportedBackend as e:
                skipped.append((pair, e.detail))
                continue
            run.append(pair)
    return run, skipped


def preset_ctc_checkpoint(preset: str, path: str, seed: int = 0) -> str:
    """Write a ``sew_ctc`` checkpoint of ``preset`` (random weights, a random projection to the 32 symbols of
    :func:`~sew_fairseq.bench.synthetic_emissions.letter_dictionary`, the dictionary inside) to ``path``; returns
    it."""
    from ..checkpoints.plugin import atomic_save, checkpoint_dict, finetuning_cfg
    from ..models.presets import build_preset, preset_config
    from .synthetic_emissions import letter_dictionary

    torch.manual_seed(seed)
    model = build_preset(preset)
    model.remove_pretraining_modules()
    cfg = preset_config(preset)
    dictionary = letter_dictionary()
    dim = cfg.encoder_embed_dim
    weights = {"w2v_encoder.w2v_model." + k: v for k, v in model.state_dict().items()}
    weights["w2v_encoder.proj.weight"] = torch.randn(len(dictionary), dim) / math.sqrt(dim)
    weights["w2v_encoder.proj.bias"] = 0.1 * torch.randn(len(dictionary))
    atomic_save(checkpoint_dict(finetuning_cfg(cfg, False, os.path.dirname(path), f"preset {preset}"), weights,
                                dictionary), path)
    return path


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _max_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> Tuple[float, float]:
    """(max abs difference, share of equal frame argmaxes) of two lists of [T, V] log-probabilities."""
    diff, same, frames = 0.0, 0, 0
    for x, y in zip(a, b):
        if x.shape != y.shape:
            raise ValueError(f"log-probabilities of shape {list(x.shape)} against {list(y.shape)}")
        diff = max(diff, (x - y).abs().max().item() if x.numel() else 0.0)
        same += int((x.argmax(-1) == y.argmax(-1)).sum())
        frames += x.shape[0]
    return diff, same / max(frames, 1)


def count_flops(model, waves: Sequence) -> int:
    """Floating-point operations (multiply and add counted apart: 2 per multiply-accumulate) of one forward of the
    fairseq CTC model on ``waves``, counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and
    convolutions; the elementwise rest is not counted). Every path of ``sew-bench speed`` computes the same network,
    so this one count gives each its GFLOP/s."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..engines.torch_engine import forward_log_probs

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward_log_probs(model, waves)
    return int(counter.get_total_flops())


def matmul_call(dtype: torch.dtype = torch.float32, n: int = 2048) -> Tuple[Callable[[], object], int]:
    """(one ``n x n @ n x n`` torch matrix product at ``dtype`` on the CPU, its FLOPs): timed with the paths of
    ``sew-bench speed``, in turn with them, it gives this machine's matrix-product peak under the same load."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(dtype) for _ in range(2))
    return (lambda: torch.mm(a, b)), 2 * n ** 3


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of :func:`matmul_call` (median of ``repeats`` after a warm-up), alone."""
    fn, flops = matmul_call(dtype, n)
    return flops / statistics.median(time_forward(fn, repeats))


class PlainOpenVino(GraphEngine):
    """OpenVINO's plain run of an exported ONNX graph (``core.compile_model(onnx, "CPU")``, nothing set: what a user
    gets from ``sew-convert to-onnx`` and OpenVINO's defaults; bf16 by itself on an AMX CPU): the anchor row."""

    backend = "openvino-plain"

    def __init__(self, onnx_path: str, normalize: bool = False):
        import openvino as ov

        from ..engines.openvino_engine import precision_of

        self.compiled = ov.Core().compile_model(onnx_path, "CPU")
        self.precision = precision_of(self.compiled)
        super().__init__({"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(self.precision, self.precision), "cpu",
                         normalize)

    def run(self, source):
        return self.compiled(source)[0]


def run_backends_speed(presets: Sequence[str], pairs: Sequence[Pair], seconds: float, repeats: int, threads: int,
                       batch: int = 1, against_hf: bool = True, device: str = "cpu",
                       attn_implementation: Optional[str] = None, seed: int = 0) -> List[dict]:
    """Rows of ``sew-bench speed --backend/--dtype`` (see the module docstring), one per path and preset."""
    from ..checkpoints.plugin import read_plugin_checkpoint
    from ..checkpoints.hf import hf_model_for

    torch.set_num_threads(threads)
    rows: List[dict] = []
    with tempfile.TemporaryDirectory(prefix="sew-bench-") as tmp:
        for preset in presets:
            ckpt = preset_ctc_checkpoint(preset, os.path.join(tmp, f"{preset}.pt"), seed)
            g = torch.Generator().manual_seed(seed)
            source = torch.randn(batch, int(round(seconds * 16000)), generator=g)
            waves = [w.numpy() for w in source]
            paths: Dict[str, Callable[[], List[torch.Tensor]]] = {}
            info: Dict[str, dict] = {}
            if against_hf:
                hf = hf_model_for(read_plugin_checkpoint(ckpt), attn_implementation=attn_implementation)[0].to(device)
                on_device = source.to(device)

                def hf_run(dtype: Optional[torch.dtype] = None, hf=hf, on_device=on_device) -> List[torch.Tensor]:
                    with torch.inference_mode():
                        with torch.autocast(torch.device(device).type, dtype, enabled=dtype is not None):
                            logits = hf(on_device).logits
                        lp = torch.log_softmax(logits.float(), dim=-1).cpu()
                    return list(lp)

                paths["transformers fp32"] = hf_run
                info["transformers fp32"] = {"kind": "hf", "dtype": "fp32"}
                for dtype in dict.fromkeys(p.dtype for p in pairs if p.dtype in TORCH_DTYPES):
                    paths[f"transformers {dtype}"] = (lambda d=TORCH_DTYPES[dtype], f=hf_run: f(d))
                    info[f"transformers {dtype}"] = {"kind": "hf", "dtype": dtype}
            engines: List[Engine] = []
            anchor_graph, flop_model = None, None
            for pair in pairs:
                start = time.perf_counter()
                cache = tempfile.mkdtemp(prefix="onnx-", dir=tmp) if pair.backend != "torch" else None
                # openvino int8: calibrated on the timed waves themselves (speed does not depend on the ranges)
                calibration = waves_calibration(waves) if pair == Pair("openvino", "int8") else None
                loaded = load_engine(ckpt, pair.backend, pair.dtype, device, onnx_cache=cache, threads=threads,
                                     calibration=calibration)
                engine = loaded.engine
                if pair == Pair("torch", "fp32"):
                    flop_model = loaded.model
                engines.append(engine)
                paths[f"ours {pair.name}"] = (lambda e=engine: e.log_probs(waves).log_probs)
                info[f"ours {pair.name}"] = {"kind": "ours", "dtype": pair.dtype, "backend": pair.backend,
                                             "load_s": time.perf_counter() - start, "setup": engine.setup}
                if pair.backend == "openvino" and anchor_graph is None:
                    from ..engines.onnx_engine import cached_onnx

                    anchor_graph = cached_onnx(ckpt, "fp32", cache).path  # the export the engine was converted from
            if anchor_graph is not None:  # OpenVINO's plain run of our to-onnx export: the anchor row
                plain = PlainOpenVino(anchor_graph)
                engines.append(plain)
                name = f"openvino plain ({plain.precision})"
                paths[name] = (lambda e=plain: e.log_probs(waves).log_probs)
                info[name] = {"kind": "anchor", "dtype": plain.dtype, "backend": "openvino-plain"}
            flops = count_flops(flop_model if flop_model is not None else load_engine(ckpt).model, waves)
            flop_model = None
            reference_name = "transformers fp32" if against_hf else (
                "ours torch fp32" if "ours torch fp32" in paths else None)
            outputs = {name: fn() for name, fn in paths.items()}  # first call: warm-up and outputs to compare
            times: Dict[str, List[float]] = {name: [] for name in paths}
            peak_calls = matmul_calls(device)  # the matrix-product peaks, timed in turn with the paths
            peak_times: Dict[str, List[float]] = {dtype: [] for dtype in peak_calls}
            for fn, _ in peak_calls.values():
                fn()
            for _ in range(repeats):
                for name, fn in paths.items():
                    _sync(device)
                    t = time.perf_counter()
                    fn()
                    _sync(device)
                    times[name].append(time.perf_counter() - t)
                for dtype, (fn, _) in peak_calls.items():
                    peak_times[dtype] += time_forward(fn, 1)
            peaks = {dtype: flop / statistics.median(peak_times[dtype]) for dtype, (_, flop) in peak_calls.items()}
            params = sum(v.numel() for k, v in torch.load(ckpt, weights_only=False)["model"].items()) / 1e6
            for name in paths:
                row = {"model": preset, "path": name, "params_m": params, "median_s": statistics.median(times[name]),
                       "min_s": min(times[name]), "gflop": flops / 1e9,
                       "gflops": flops / 1e9 / statistics.median(times[name]), "peaks": peaks,
                       **{k: v for k, v in info[name].items() if k != "setup"}}
                setup = info[name].get("setup")
                if setup is not None:
                    row.update(export_s=setup.export_seconds, quantize_s=setup.quantize_seconds,
                               session_s=setup.session_seconds, hash_s=setup.hash_seconds)
                if reference_name is not None:
                    row["max_diff"], row["argmax_agree"] = _max_diff(outputs[name], outputs[reference_name])
                    row["reference"] = reference_name
                rows.append(row)
            _ratios(rows[-len(paths):], against_hf)
            add_peak_shares(rows[-len(paths):], peaks)
            del engines, outputs
    return rows


def matmul_calls(device: str = "cpu") -> Dict[str, Tuple[Callable[[], object], int]]:
    """{"fp32": :func:`matmul_call`, "bf16": one where this CPU has bf16 units}; none off the CPU."""
    if torch.device(device).type != "cpu":
        return {}
    calls = {"fp32": matmul_call(torch.float32)}
    if cpu_bf16()[0]:
        calls["bf16"] = matmul_call(torch.bfloat16)
    return calls


def add_peak_shares(rows: List[dict], peaks: Dict[str, float]) -> None:
    """Each row's GFLOP/s as a share of each matrix-product peak (``share_fp32``, ``share_bf16``)."""
    for r in rows:
        for dtype, peak in peaks.items():
            r[f"share_{dtype}"] = r["gflops"] * 1e9 / peak


def _ratios(rows: List[dict], against_hf: bool) -> None:
    by_path = {r["path"]: r for r in rows}
    for r in rows:
        if against_hf:
            r["hf_fp32_over"] = by_path["transformers fp32"]["median_s"] / r["median_s"]
            same = by_path.get(f"transformers {r['dtype']}") if r["dtype"] in TORCH_DTYPES else None
            r["same_dtype_ref"] = same["path"] if same else "transformers fp32"
            r["same_dtype_over"] = (same or by_path["transformers fp32"])["median_s"] / r["median_s"]


def speed_header(seconds: float, threads: int, repeats: int, batch: int, device: str,
                 peaks: Optional[Dict[str, float]] = None) -> str:
    import transformers

    try:
        import openvino

        ov_version = f", openvino {openvino.__version__.split('-')[0]}"
    except ImportError:
        ov_version = ""
    peak = ""
    if peaks:
        peak = ("# matrix-product peak (torch 2048^3, this run): " + ", ".join(
            f"{d} {p / 1e9:.1f} GFLOP/s" for d, p in peaks.items()) + ("" if "bf16" in peaks else
                                                                      " (no bf16 units on this CPU)")
                + ", median over the repeats, timed in turn with the paths\n")

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = "not installed"
    return (f"# CTC models (random weights, 32 letters), {seconds:g} s of audio, batch {batch}, {threads} threads, "
            f"{device}, median of {repeats} (all paths alternating), wave -> fp32 log-probabilities\n"
            f"# torch {torch.__version__}, transformers {transformers.__version__}, onnxruntime {ort_version}"
            f"{ov_version}; {cpu_description() if device == 'cpu' else torch.cuda.get_device_name(device)}\n" + peak)


def format_speed_rows(rows: List[dict]) -> str:
    shares = [k for k in ("share_fp32", "share_bf16") if rows and k in rows[0]]
    lines = [f"{'model':<12}{'path':<26}{'ms':>8}{'min ms':>8}{'HF fp32/x':>10}{'HF same/x':>10}  "
             f"{'max|dlogp|':>10}{'argmax':>8}{'GFLOP/s':>9}" + "".join(f"{k[6:] + ' pk':>9}" for k in shares)
             + "  one-time (s)"]
    for r in rows:
        same = ""
        if r["kind"] == "ours" and "same_dtype_over" in r:
            same = f"{r['same_dtype_over']:.2f}x" + ("*" if r["same_dtype_ref"] == "transformers fp32"
                                                     and r["dtype"] != "fp32" else "")
        hf = f"{r['hf_fp32_over']:.2f}x" if "hf_fp32_over" in r else ""
        diff = f"{r['max_diff']:.1e}" if "max_diff" in r else ""
        agree = f"{100 * r['argmax_agree']:.1f}%" if "argmax_agree" in r else ""
        once = ""
        if r.get("backend") in ("onnxruntime", "openvino"):
            once = f"export {r['export_s']:.1f}" + (f" + quantise {r['quantize_s']:.1f}" if r["dtype"] == "int8"
                                                    else "") + f", session {r['session_s']:.2f}"
        share = "".join(f"{100 * r[k]:>8.1f}%" for k in shares)
        lines.append(f"{r['model']:<12}{r['path']:<26}{1000 * r['median_s']:>8.1f}{1000 * r['min_s']:>8.1f}"
                     f"{hf:>10}{same:>10}  {diff:>10}{agree:>8}{r['gflops']:>9.1f}{share}  {once}")
    if any(r.get("same_dtype_ref") == "transformers fp32" and r.get("dtype") == "int8" for r in rows):
        lines.append("* against transformers fp32: transformers has no int8 path here")
    if rows:
        per_model = ", ".join(f"{m} {g:.2f}" for m, g in dict((r["model"], r["gflop"]) for r in rows).items())
        lines.append(f"GFLOP/s: GFLOP per forward ({per_model}; torch's FlopCounterMode on the fairseq model: matrix "
                     f"products and convolutions) / median time; pk: share of the matrix-product peak")
    return "\n".join(lines)


def fp32_failures(rows: List[dict]) -> List[str]:
    """Descriptions of fp32 paths further than :data:`FP32_TOL` from their reference."""
    return [f"{r['model']} {r['path']}: {r['max_diff']:.2e} from {r['reference']}" for r in rows
            if r.get("dtype") == "fp32" and r.get("max_diff", 0.0) > FP32_TOL]


# ---------------------------------------------------------------------------------------------------------------
# accuracy: greedy WER of a split through every engine against torch fp32


def run_accuracy(checkpoint: str, data: str, split: str, pairs: Sequence[Pair], device: str = "cpu",
                 threads: int = 2, max_samples: int = 1_600_000, onnx_cache: Optional[str] = None,
                 calibration=None) -> List[dict]:
    """Rows of ``sew-bench accuracy``: torch fp32 first (the reference), then each pair. ``calibration``: for
    openvino int8 (:func:`sew_fairseq.engines.load_engine`)."""
    from ..decoding import build_decoder, word_boundary_of
    from manifests.error_rates import cer, wer
    from ..evaluate.splits import compute_emissions, read_split

    torch.set_num_threads(threads)
    order = [Pair("torch", "fp32")] + [p for p in pairs if p != Pair("torch", "fp32")]
    utterances = read_split(data, split)
    refs = [u.words for u in utterances]
    rows: List[dict] = []
    reference: Optional[Tuple[List[torch.Tensor], List[str]]] = None
    for pair in order:
        start = time.perf_counter()
        loaded = load_engine(checkpoint, pair.backend, pair.dtype, device, onnx_cache=onnx_cache, threads=threads,
                             calibration=calibration)
        load_s = time.perf_counter() - start
        emissions, forward_s = compute_emissions(loaded.engine, utterances, max_samples, progress=False)
        if len(emissions) != len(utterances):
            raise ValueError(f"{split}: {len(utterances) - len(emissions)} utterances gave no emissions")
        dictionary = loaded.dictionary
        decoder = build_decoder("viterbi", dictionary, word_boundary=word_boundary_of(dictionary))
        hyps = [" ".join(decoder.decode(e.log_probs.unsqueeze(0))[0][0].words) for e in emissions]
        lps = [e.log_probs for e in emissions]
        row = {"path": pair.name, "backend": pair.backend, "dtype": pair.dtype, "utterances": len(emissions),
               "audio_s": sum(u.num_samples for u in utterances) / 16000, "forward_s": forward_s, "load_s": load_s,
               "setup": loaded.engine.setup._asdict()}
        if all(r is not None for r in refs):
            row.update(wer=100 * wer(refs, hyps).rate, cer=100 * cer(refs, hyps).rate)
        if reference is None:
            reference = (lps, hyps)
        row["max_diff"], row["argmax_agree"] = _max_diff(lps, reference[0])
        row["same_text"] = sum(a == b for a, b in zip(hyps, reference[1]))
        if "wer" in row:
            row["wer_delta"] = row["wer"] - rows[0]["wer"] if rows else 0.0
        rows.append(row)
        del loaded, emissions
    return rows


def format_accuracy_rows(rows: List[dict], checkpoint: str, split: str, threads: int) -> str:
    first = rows[0]
    head = (f"# {checkpoint}, {split}: {first['utterances']} utterances, {first['audio_s']:.1f} s, greedy decoding, "
            f"{threads} threads; against torch fp32; {platform.machine()} {cpu_description()}\n")
    lines = [f"{'path':<20}{'WER':>7}{'dWER':>7}{'CER':>7}{'same text':>11}{'max|dlogp|':>12}{'argmax':>9}"
             f"{'forward s':>11}"]
    for r in rows:
        wer_part = (f"{r['wer']:>7.2f}{r['wer_delta']:>+7.2f}{r['cer']:>7.2f}" if "wer" in r else f"{'':>21}")
        lines.append(f"{r['path']:<20}{wer_part}{r['same_text']:>6}/{r['utterances']:<4}{r['max_diff']:>12.1e}"
                     f"{100 * r['argmax_agree']:>8.2f}%{r['forward_s']:>11.3f}")
    return head + "\n".join(lines)


def accuracy_failures(rows: List[dict]) -> List[str]:
    return [f"{r['path']}: {r['max_diff']:.2e} from torch fp32" for r in rows
            if r["dtype"] == "fp32" and r["max_diff"] > FP32_TOL]


def describe_skipped(skipped: Sequence[Tuple[Pair, str]]) -> List[str]:
    return [f"not run: {pair.name}: {why}" for pair, why in skipped]
