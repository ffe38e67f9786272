"""``sew-log-summary``: a table of a fairseq training log (``common.log_format=json``), one row per logged step.

    sew-log-summary demo_work/pretrain/train.log

Reads the ``train_inner`` and ``valid`` JSON records that fairseq writes and prints update, loss, the
contrastive loss (``loss_0``), the weighted diversity loss and feature penalty (``loss_1``, ``loss_2``; a model
without quantizer has no diversity loss and logs the feature penalty as ``loss_1``), the accuracy of picking
the true target among the negatives, and the codebook perplexity.
"""
import argparse
import sys
from typing import Optional, Sequence

from ..training.logs import format_table, parse_log
from .options import cli_error


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="sew-log-summary", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", help="a fairseq training log written with common.log_format=json")
    args = parser.parse_args(argv)
    try:
        with open(args.log, encoding="utf-8") as f:
            records = parse_log(f)
    except OSError as e:
        return cli_error(parser.prog, f"cannot read {args.log}: {e.strerror}")
    if not records:
        return cli_error(parser.prog, f"{args.log} has no train_inner/valid json records (was common.log_format=json?)")
    print(format_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
