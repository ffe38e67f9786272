"""``sew-bench speed``: inference speed of presets against fairseq's wav2vec 2.0 base, or (``--against hf``) against
the same weights in transformers' SEW / SEW-D port (random weights: speed does not depend on their values). The
``--backend`` / ``--dtype`` rows are :mod:`sew_fairseq.bench.engines`.
"""
import platform
import statistics
import time
from typing import Callable, List, Optional, Sequence

import torch


def time_forward(fn: Callable[[], object], repeats: int, warmup: int = 1) -> List[float]:
    """Seconds per call of ``fn`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _fairseq_w2v2_base() -> torch.nn.Module:
    from fairseq.models.wav2vec.wav2vec2 import Wav2Vec2Config, Wav2Vec2Model

    model = Wav2Vec2Model(Wav2Vec2Config())
    model.remove_pretraining_modules()
    return model


def _preset(name: str) -> torch.nn.Module:
    from ..models.presets import build_preset

    model = build_preset(name)
    model.remove_pretraining_modules()
    return model


def run_speed(presets: Sequence[str], seconds: float, repeats: int, threads: int, batch: int = 1,
              sample_rate: int = 16000, seed: int = 0) -> List[dict]:
    """Time each model; returns rows with name, params (M), median/min seconds, RTF and speed-up."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    source = torch.randn(batch, int(seconds * sample_rate))
    rows = []
    candidates = [("fairseq wav2vec2 base", _fairseq_w2v2_base)] + [(p, (lambda p=p: _preset(p))) for p in presets]
    for name, build in candidates:
        model = build().eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        with torch.inference_mode():
            times = time_forward(lambda: model.extract_features(source, None), repeats)
        rows.append({"model": name, "params_m": params, "median_s": statistics.median(times), "min_s": min(times)})
        model = None  # freed before the next one is built
    reference = rows[0]["median_s"]
    for row in rows:
        row["rtf"] = row["median_s"] / (seconds * batch)  # time / audio duration, every utterance of the batch
        row["speedup"] = reference / row["median_s"]
    return rows


def run_speed_against_hf(presets: Sequence[str], seconds: float, repeats: int, threads: int, batch: int = 1,
                         sample_rate: int = 16000, seed: int = 0, attn_implementation: Optional[str] = None
                         ) -> List[dict]:
    """Time each preset and the same weights in transformers' SEW / SEW-D (converted in memory), alternating
    the two per repeat so that load changes hit both; returns rows with both medians, the ratio HF / ours and
    the largest output difference."""
    from ..checkpoints.hf import hf_twin
    from ..models.presets import PRESETS, preset_config

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    source = torch.randn(batch, int(seconds * sample_rate))
    rows = []
    for name in presets:
        if PRESETS[name].model not in ("sew", "sew_d"):
            raise ValueError(f"--against hf: {name} is not a SEW / SEW-D preset (transformers has no port of it)")
        ours = _preset(name).eval()
        hf = hf_twin(ours, preset_config(name), attn_implementation=attn_implementation)
        with torch.inference_mode():
            a = ours.extract_features(source, None)["x"]
            b = hf(source).last_hidden_state
            diff = (a - b).abs().max().item()
            ours_t, hf_t = [], []
            for fn in (lambda: ours.extract_features(source, None), lambda: hf(source)):
                fn()  # warm-up
            for _ in range(repeats):
                ours_t += time_forward(lambda: ours.extract_features(source, None), 1, warmup=0)
                hf_t += time_forward(lambda: hf(source), 1, warmup=0)
        params = sum(p.numel() for p in ours.parameters()) / 1e6
        rows.append({"model": name, "params_m": params, "ours_s": statistics.median(ours_t),
                     "hf_s": statistics.median(hf_t), "ours_min_s": min(ours_t), "hf_min_s": min(hf_t),
                     "ratio": statistics.median(hf_t) / statistics.median(ours_t), "max_diff": diff,
                     "attn": getattr(hf.config, "_attn_implementation", "?")})
        ours = hf = None  # freed before the next preset is built
    return rows


def _header(seconds: float, batch: int, threads: int, timing: str, versions: str = "") -> str:
    return (f"# {seconds:g} s of audio, batch {batch}, fp32, {threads} threads, {timing}; torch {torch.__version__}, "
            f"{versions}{platform.processor() or platform.machine()}\n")


def format_rows_against_hf(rows: List[dict], seconds: float, threads: int, repeats: int, batch: int = 1) -> str:
    import transformers

    head = _header(seconds, batch, threads, f"median of {repeats} (alternating)",
                   f"transformers {transformers.__version__}, ")
    lines = [f"{'model':<18}{'params':>9}{'ours ms':>10}{'HF ms':>10}{'HF/ours':>9}{'max |diff|':>12}  HF attention"]
    for r in rows:
        lines.append(f"{r['model']:<18}{r['params_m']:>8.1f}M{1000 * r['ours_s']:>10.1f}{1000 * r['hf_s']:>10.1f}"
                     f"{r['ratio']:>8.2f}x{r['max_diff']:>12.1e}  {r['attn']}")
    return head + "\n".join(lines)


def format_rows(rows: List[dict], seconds: float, threads: int, repeats: int, batch: int = 1) -> str:
    head = _header(seconds, batch, threads, f"median of {repeats}")
    lines = [f"{'model':<24}{'params':>9}{'median ms':>11}{'min ms':>9}{'RTF':>8}{'x vs fairseq w2v2-base':>24}"]
    for r in rows:
        lines.append(f"{r['model']:<24}{r['params_m']:>8.1f}M{1000 * r['median_s']:>11.1f}{1000 * r['min_s']:>9.1f}"
                     f"{r['rtf']:>8.3f}{r['speedup']:>23.2f}x")
    return head + "\n".join(lines)
