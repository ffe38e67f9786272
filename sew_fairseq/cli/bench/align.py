"""``sew-bench align``: forced alignment of recordings with known spans, ``sew-align`` against ctc-segmentation on
the same emissions (:mod:`sew_fairseq.bench.align`)."""
import argparse

from ...bench import align
from ..options import add_split_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("align", help="forced alignment: sew-align against ctc-segmentation on recordings with known "
                                     "spans", description=align.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_split_arguments(p, "a fine-tuned CTC letter checkpoint", "the utterances to join into recordings")
    p.add_argument("--minutes", type=float, nargs="+", default=[3.0], help="recording lengths (default 3)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one recording per seed and length (default 0)")
    p.add_argument("--pauses", type=float, nargs=2, default=[0.3, 1.5], metavar=("MIN", "MAX"),
                   help="pause lengths between utterances, seconds (default 0.3 1.5)")
    p.add_argument("--unspoken", type=int, default=1, help="text lines that are not in the recording (default 1)")
    p.add_argument("--untranscribed", type=int, default=0,
                   help="utterances in the recording whose line is not in the text (default 0)")
    p.add_argument("--foreign-split", default=None,
                   help="split whose texts the unspoken lines come from (default: --split's own)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each child (default 2)")
    p.add_argument("--no-ctc-segmentation", action="store_true", help="ours only")
    p.add_argument("--out-dir", required=True, help="recordings, texts, emissions, results.json")


def run(args: argparse.Namespace) -> int:
    rows = align.run_align_bench(args.checkpoint, args.data, args.split, args.minutes, args.out_dir, args.seeds,
                                 args.unspoken, args.untranscribed, tuple(args.pauses), args.threads,
                                 not args.no_ctc_segmentation, args.foreign_split)
    print(align.format_rows(rows))
    return 0
