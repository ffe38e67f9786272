"""``sew-bench train``: training throughput of a pretraining recipe in fp32 or bf16 mixed precision
(:mod:`sew_fairseq.bench.train`)."""
import argparse
import sys
import tempfile

from ...bench import train


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="training throughput: updates/s, audio s/s, data-wait share (fp32, bf16-mixed)",
                       description=train.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="sew_tiny", help="recipes/pretraining/<preset>.yaml (default %(default)s)")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=list(train.PRECISIONS),
                   help="one row each (default fp32)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="manifest directory with <split>.tsv")
    source.add_argument("--generate", type=int, metavar="N", help="N generated utterances of 2-4 s instead")
    p.add_argument("--split", default="train", help="split (default %(default)s)")
    p.add_argument("--updates", type=int, default=5, help="timed updates (default %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="updates before timing (default %(default)s)")
    p.add_argument("--max-tokens", type=int, default=None, help="samples per batch (default: the recipe's)")
    p.add_argument("--workers", type=int, default=0, help="loader processes (default %(default)s)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even with CUDA")
    p.add_argument("overrides", nargs="*", help="more recipe overrides (key=value)")


def run(args: argparse.Namespace) -> int:
    from ...compat import UnsupportedPrecision

    with tempfile.TemporaryDirectory() as tmp:
        data, split = (args.data, args.split) if args.data else (train.generate_corpus(tmp, args.generate), "train")
        rows = []
        for precision in args.precision:
            try:
                rows.append(train.train_throughput(data, split, args.preset, precision, args.updates, args.warmup,
                                                   args.max_tokens, args.workers, args.cpu, args.overrides))
            except UnsupportedPrecision as e:
                print(f"sew-bench train: error: {e}", file=sys.stderr)
                return 2
    print(train.format_rows(rows))
    return 0
