"""``sew-bench tradeoff``: early exit, WER against inference time over thresholds (CSV + PNG plot;
:mod:`sew_fairseq.bench.tradeoff`)."""
import argparse

from ...bench import tradeoff
from ...bench.tradeoff import DEFAULT_GRIDS
from ..options import add_split_arguments, cli_error

PROG = "sew-bench"


def add_parser(sub) -> None:
    p = sub.add_parser("tradeoff", help="early exit: WER against inference time over thresholds (CSV + PNG plot)",
                       description=tradeoff.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_split_arguments(p, "a sew_ctc_early_exit checkpoint (recipes/finetuning/early_exit_*.yaml)",
                        "the dev split to sweep on")
    p.add_argument("--criteria", nargs="+", choices=sorted(DEFAULT_GRIDS), default=["entropy", "confidence"],
                   help="exit criteria to sweep (default: both)")
    p.add_argument("--entropy-thresholds", type=float, nargs="+", default=DEFAULT_GRIDS["entropy"],
                   help=f"entropy thresholds (default {' '.join(map(str, DEFAULT_GRIDS['entropy']))})")
    p.add_argument("--confidence-thresholds", type=float, nargs="+", default=DEFAULT_GRIDS["confidence"],
                   help=f"confidence thresholds (default {' '.join(map(str, DEFAULT_GRIDS['confidence']))})")
    from ...models.presets import PRESETS

    p.add_argument("--presets", nargs="*", default=[], metavar="PRESET", choices=sorted(PRESETS),
                   help=f"add timing-only points of these presets (random weights) on the same utterances; any of "
                        f"{', '.join(PRESETS)}")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the split per point; median (default 3)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out-dir",
                   help="where tradeoff.csv and tradeoff.png go (default <checkpoint dir>/tradeoff-<split>)")
    p.add_argument("--title", help="plot title (default: model and split)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import torch

    if args.repeats < 1 or args.threads < 1:
        return cli_error(PROG, "--repeats and --threads must be positive", 2)
    torch.set_num_threads(args.threads)
    grids = {c: getattr(args, f"{c}_thresholds") for c in args.criteria}
    try:
        r = tradeoff.run_tradeoff(args.checkpoint, args.data, args.split, grids, args.presets, args.repeats,
                                  args.device, args.out_dir, args.title, progress=not args.quiet)
    except (ValueError, FileNotFoundError, OSError) as e:
        return cli_error(PROG, e)
    print(f"# {r.label}; exits after layers {r.exit_layers} of {r.num_layers}; {args.split}: "
          f"{r.utterances} utterances, {r.points[0].audio_seconds:.1f} s; batch 1, {args.threads} threads, "
          f"median of {args.repeats}; torch {torch.__version__}")
    print(tradeoff.format_points(r.points))
    print(f"wrote {r.out_dir}/tradeoff.csv and {r.out_dir}/tradeoff.png")
    return 0
