"""``sew-bench speed``: inference speed of presets (against fairseq's wav2vec 2.0 base, transformers, or every
backend and dtype; see :mod:`sew_fairseq.bench.speed` and :mod:`sew_fairseq.bench.engines`)."""
import argparse
import sys
from typing import Sequence

from ..options import add_backend_arguments, cli_error

PROG = "sew-bench"


def add_parser(sub) -> None:
    from ...models.presets import PRESETS

    speed = sub.add_parser("speed", help="inference speed of presets against fairseq's wav2vec 2.0 base",
                           description="Example: sew-bench speed --presets sew_d_mid sew_tiny --seconds 10 --threads 2")
    speed.add_argument("--presets", nargs="+", default=["sew_d_mid", "sew_tiny"], choices=sorted(PRESETS),
                       metavar="PRESET",
                       help=f"presets to time (default: sew_d_mid sew_tiny); one of {', '.join(PRESETS)}")
    speed.add_argument("--seconds", type=float, default=10.0, help="audio length in seconds (default 10)")
    speed.add_argument("--repeats", type=int, default=10, help="timed forwards per model (default 10)")
    speed.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    speed.add_argument("--batch", type=int, default=1, help="utterances per forward (default 1)")
    speed.add_argument("--against", choices=["fairseq", "hf"], default=None,
                       help="fairseq: speed-up over fairseq's wav2vec 2.0 base (the default without --backend/"
                            "--dtype); hf: the same weights in transformers' SEW / SEW-D port, converted in memory, "
                            "outputs checked to 1e-4, ratio HF time / our time (with --backend/--dtype: transformers "
                            "fp32 and with the same dtype)")
    speed.add_argument("--hf-attention", default=None,
                       help="with --against hf: transformers' attention kernel (default: its own default; "
                            "'eager' = the reference maths)")
    speed.add_argument("--device", default="cpu", help="with --backend/--dtype: cpu or cuda (default cpu)")
    add_backend_arguments(speed, multiple=True, cache=False, defaults=(None, None))



def runnable_pairs(args: argparse.Namespace, backends: Sequence[str], dtypes: Sequence[str]):
    """The engine pairs to run, after printing those that will not; None (and the reason on stderr) if none can."""
    from ...bench.engines import describe_skipped, engine_pairs

    pairs, skipped = engine_pairs(backends, dtypes, args.device)
    for line in describe_skipped(skipped):
        print(line, file=sys.stderr if not pairs else sys.stdout)
    if not pairs or (len(backends) == 1 and len(dtypes) == 1 and skipped):
        why = skipped[0][1] if skipped else "no backend/dtype given"
        cli_error(PROG, f"nothing to run: {why}", 2)
        return None
    return pairs


def run_backends(args: argparse.Namespace) -> int:
    """``sew-bench speed --backend ... --dtype ...``: :func:`sew_fairseq.bench.engines.run_backends_speed`."""
    from ...bench.engines import format_speed_rows, fp32_failures, run_backends_speed, speed_header

    if args.against == "fairseq":
        return cli_error(PROG, "--backend/--dtype compare against transformers (--against hf), or nothing", 2)
    pairs = runnable_pairs(args, args.backend or ["torch"], args.dtype or ["fp32"])
    if pairs is None:
        return 2
    try:
        rows = run_backends_speed(args.presets, pairs, args.seconds, args.repeats, args.threads, args.batch,
                                  against_hf=args.against == "hf", device=args.device,
                                  attn_implementation=args.hf_attention)
    except (ImportError, ValueError) as e:
        return cli_error(PROG, e, 2)
    print(speed_header(args.seconds, args.threads, args.repeats, args.batch, args.device, rows[0].get("peaks") if rows
                       else None)
          + format_speed_rows(rows))
    failures = fp32_failures(rows)
    for f in failures:
        cli_error(PROG, f"fp32 outputs differ by more than 1e-4: {f}")
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    from ...bench.speed import format_rows, format_rows_against_hf, run_speed, run_speed_against_hf

    if args.seconds <= 0 or args.repeats < 1 or args.threads < 1 or args.batch < 1:
        return cli_error(PROG, "--seconds, --repeats, --threads and --batch must be positive", 2)
    if args.backend is not None or args.dtype is not None:
        return run_backends(args)
    if args.against == "hf":
        try:
            rows = run_speed_against_hf(args.presets, args.seconds, args.repeats, args.threads, args.batch,
                                        attn_implementation=args.hf_attention)
        except (ImportError, ValueError) as e:
            return cli_error(PROG, e, 2)
        print(format_rows_against_hf(rows, args.seconds, args.threads, args.repeats, args.batch))
        worst = max(r["max_diff"] for r in rows)
        if worst > 1e-4:
            return cli_error(PROG, f"outputs differ by {worst:.2e} > 1e-4")
        return 0
    rows = run_speed(args.presets, args.seconds, args.repeats, args.threads, args.batch)
    print(format_rows(rows, args.seconds, args.threads, args.repeats, args.batch))
    return 0
