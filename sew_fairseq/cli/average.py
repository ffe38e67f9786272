"""``sew-average``: the parameter average of fairseq checkpoints of one model, written as one checkpoint.

    sew-average ckpt/checkpoint8.pt ckpt/checkpoint9.pt ckpt/checkpoint10.pt -o ckpt/average.pt   # these files
    sew-average --last 5 ckpt/ -o ckpt/average_last5.pt     # the 5 newest checkpoint<E>.pt / checkpoint_<E>_<U>.pt
    sew-average --best 5 ckpt/ -o ckpt/average_best5.pt     # the 5 with the best validation value (e.g. dev WER)
    sew-infer ckpt/average_best5.pt --data manifests --split dev-other                       # use it as any other

Pretrained, fine-tuned and early-exit checkpoints alike. Every floating tensor of the model is averaged (in float64,
cast back to its dtype); integer and bool tensors and everything else (config, output dictionary, optimizer state,
training position) are the first checkpoint's, so the result loads wherever that one does (``sew-infer``,
``sew-transcribe``, ``sew-convert``, ``model.w2v_path``, resuming). With ``--last`` the newest is first, with
``--best`` the best. ``--best`` ranks by the value each checkpoint was saved with (fairseq's ``extra_state
["val_loss"]``: the run's ``checkpoint.best_checkpoint_metric`` on the first valid subset), higher is better when
the run set ``checkpoint.maximize_best_checkpoint_metric``; checkpoints saved without validation are left out.
``checkpoint_best.pt`` and ``checkpoint_last.pt`` are copies of numbered checkpoints and never chosen.
Checkpoints of different models (a tensor name, shape or dtype differs) are refused with the first difference.
The output is written atomically; the files averaged are printed and kept in its ``extra_state["averaged_from"]``.
"""
import argparse
import logging
import sys
from typing import Optional, Sequence

PROG = "sew-average"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="CKPT_OR_DIR",
                   help="checkpoints to average; with --last / --best, the one checkpoint directory to choose from")
    choose = p.add_mutually_exclusive_group()
    choose.add_argument("--last", type=int, metavar="N", help="average the N newest numbered checkpoints of DIR")
    choose.add_argument("--best", type=int, metavar="N",
                        help="average the N checkpoints of DIR with the best validation value")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="checkpoint to write (.pt)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what is chosen and why")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s:%(lineno)d %(message)s")
    from ..checkpoints.average import AverageError, best_checkpoints, last_checkpoints, write_average
    from ..checkpoints.safe_load import CheckpointLoadError
    from .options import cli_error

    count = args.last if args.last is not None else args.best
    if count is not None and len(args.inputs) != 1:
        return cli_error(PROG, f"--{'last' if args.last is not None else 'best'} takes one checkpoint directory, "
                               f"got {len(args.inputs)} paths", 2)
    try:
        if args.last is not None:
            paths = last_checkpoints(args.inputs[0], args.last)
        elif args.best is not None:
            paths = best_checkpoints(args.inputs[0], args.best)
        else:
            paths = list(args.inputs)
        write_average(paths, args.output)
    except (AverageError, CheckpointLoadError, OSError) as e:
        return cli_error(PROG, e)
    print(f"averaged {len(paths)} checkpoints: {' '.join(paths)}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
