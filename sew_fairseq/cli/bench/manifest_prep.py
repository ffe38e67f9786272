"""``sew-bench manifests``: the LibriSpeech manifest builder against fairseq's ``wav2vec_manifest.py`` +
``libri_labels.py`` (:mod:`sew_fairseq.bench.manifest_prep`)."""
import argparse
import os

from ...bench import manifest_prep
from ..options import cli_error

PROG = "sew-bench"


def add_parser(sub) -> None:
    p = sub.add_parser("manifests", help="LibriSpeech manifests: sew-manifest against fairseq's wav2vec_manifest.py",
                       description=manifest_prep.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="a LibriSpeech-layout folder whose flacs and transcripts are "
                                                   "replicated into the benchmark tree")
    p.add_argument("--files", type=int, default=4000, help="flac files in the tree (default 4000)")
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8),
                   help="--workers of our builder (default min(cpu count, 8) = %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each, best kept (default 3)")
    p.add_argument("--fairseq-examples", help="fairseq's examples/wav2vec folder (default: the installed one)")
    p.add_argument("--tmp", help="where to build the tree (default: a temporary folder)")


def run(args: argparse.Namespace) -> int:
    try:
        result = manifest_prep.compare_builders(args.source, args.files, args.workers, args.repeats,
                                                args.fairseq_examples, args.tmp)
    except FileNotFoundError as e:
        return cli_error(PROG, e, 2)
    print(manifest_prep.format_comparison(result))
    return 0 if result.same else 1
