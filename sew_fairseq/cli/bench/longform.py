"""``sew-bench longform``: long recordings, ``sew-transcribe`` against transformers' chunked ASR pipeline
(:mod:`sew_fairseq.bench.longform`)."""
import argparse

from ...bench import longform
from ..options import add_split_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("longform", help="long recordings: sew-transcribe against transformers' chunked pipeline",
                       description=longform.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_split_arguments(p, "a fine-tuned CTC checkpoint (sew_ctc)", "the utterances to concatenate")
    p.add_argument("--minutes", type=float, nargs="+", default=[10.0], help="recording lengths (default 10)")
    p.add_argument("--gaps", "--gap", type=float, nargs="+", default=[0.25],
                   help="silence between utterances, seconds; one recording per value (default 0.25)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="cut positions: for each seed but 0, a leading silence of a random length below 10 s moves "
                        "every chunk cut (default 0: none)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each child (default 2)")
    p.add_argument("--hf-chunk-seconds", type=float, default=10.0,
                   help="transformers' chunk_length_s (default 10; 0 = one pass)")
    p.add_argument("--no-hf", action="store_true", help="ours only (no transformers)")
    p.add_argument("--out-dir", required=True, help="recordings, transcripts, the exported HF model, results.json")
    p.add_argument("--transcribe-args", default="", help="extra sew-transcribe options, e.g. '--chunk-seconds 30'")


def run(args: argparse.Namespace) -> int:
    rows = longform.run_longform(args.checkpoint, args.data, args.split, args.minutes, args.out_dir, args.gaps,
                                 args.threads, args.hf_chunk_seconds, not args.no_hf, args.transcribe_args.split(),
                                 args.seeds)
    print(longform.format_rows(rows, args.hf_chunk_seconds))
    return 0
