"""``sew-bench``: benchmarks that print ratios (no pass/fail thresholds).

    sew-bench speed --presets sew_d_mid sew_tiny --seconds 10 --threads 2

``speed`` times the inference forward (``extract_features``, eval mode, fp32, no autograd) of each preset on
N seconds of audio, and fairseq's own ``wav2vec2`` base model in the same process, and prints time per
forward, real-time factor (time / audio duration) and the speed-up over fairseq's wav2vec 2.0 base.
Weights are random: speed does not depend on their values.
"""
from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time
from typing import Callable, List, Optional, Sequence

import torch

logger = logging.getLogger(__name__)


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
    from ..presets import build_preset

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
        del model
    reference = rows[0]["median_s"]
    for row in rows:
        row["rtf"] = row["median_s"] / seconds
        row["speedup"] = reference / row["median_s"]
    return rows


def format_rows(rows: List[dict], seconds: float, threads: int, repeats: int) -> str:
    head = (f"# {seconds:g} s of audio, batch 1, fp32, {threads} threads, median of {repeats}; torch {torch.__version__}, "
            f"{platform.processor() or platform.machine()}\n")
    lines = [f"{'model':<24}{'params':>9}{'median ms':>11}{'min ms':>9}{'RTF':>8}{'x vs fairseq w2v2-base':>24}"]
    for r in rows:
        lines.append(f"{r['model']:<24}{r['params_m']:>8.1f}M{1000 * r['median_s']:>11.1f}{1000 * r['min_s']:>9.1f}"
                     f"{r['rtf']:>8.3f}{r['speedup']:>23.2f}x")
    return head + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from ..presets import PRESETS

    parser = argparse.ArgumentParser(
        prog="sew-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    speed = sub.add_parser("speed", help="inference speed of presets against fairseq's wav2vec 2.0 base",
                           description="Example: sew-bench speed --presets sew_d_mid sew_tiny --seconds 10 --threads 2")
    speed.add_argument("--presets", nargs="+", default=["sew_d_mid", "sew_tiny"], choices=sorted(PRESETS),
                       metavar="PRESET", help=f"presets to time (default: sew_d_mid sew_tiny); one of {', '.join(PRESETS)}")
    speed.add_argument("--seconds", type=float, default=10.0, help="audio length in seconds (default 10)")
    speed.add_argument("--repeats", type=int, default=10, help="timed forwards per model (default 10)")
    speed.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    speed.add_argument("--batch", type=int, default=1, help="utterances per forward (default 1)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s:%(lineno)d %(message)s")
    if args.command == "speed":
        if args.seconds <= 0 or args.repeats < 1 or args.threads < 1 or args.batch < 1:
            print("error: --seconds, --repeats, --threads and --batch must be positive", file=sys.stderr)
            return 2
        rows = run_speed(args.presets, args.seconds, args.repeats, args.threads, args.batch)
        print(format_rows(rows, args.seconds, args.threads, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
