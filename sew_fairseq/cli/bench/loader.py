"""``sew-bench loader``: fairseq's audio loader over a folder of files and over packed zip shards
(:mod:`sew_fairseq.bench.loader`)."""
import argparse

from ...bench import loader


def add_parser(sub) -> None:
    p = sub.add_parser("loader", help="training data loader throughput: files against packed shards, per worker",
                       description=loader.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="manifest directory with <split>.tsv (audio files)")
    p.add_argument("--packed", default=None, help="the same directory packed by sew-manifest pack")
    p.add_argument("--split", default="train", help="split (default %(default)s)")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader processes (default 0 1 2)")
    p.add_argument("--max-tokens", type=int, default=1_400_000, help="samples per batch (default %(default)s)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the split, after a warm-up batch (default 1)")


def run(args: argparse.Namespace) -> int:
    rows = loader.run_loader_bench(args.data, args.split, args.packed, args.workers, args.max_tokens, args.epochs)
    print(loader.format_rows(rows))
    return 0
