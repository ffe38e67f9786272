"""fairseq's json training logs (``common.log_format=json``): the ``train_inner`` and ``valid`` records as rows, and
the table ``sew-log-summary`` prints (update, loss, contrastive loss, diversity loss, feature penalty, accuracy,
codebook perplexity), and that command.

    sew-log-summary demo_work/pretrain/train.log
"""
import argparse
import json
import re
import sys
from typing import Dict, Iterable, List, Optional, Sequence

from .records import cli_error

_RECORD = re.compile(r"\[(train_inner|valid)\]\[INFO\] - (\{.*\})\s*$")
COLUMNS = [("update", "num_updates"), ("loss", "loss"), ("contrastive", "loss_0"), ("diversity", "diversity"),
           ("feat_pen", "feature_pen"), ("accuracy", "accuracy"), ("code_ppl", "code_perplexity")]


def parse_log(lines: Iterable[str]) -> List[Dict[str, str]]:
    """Records of a fairseq json log, each with ``kind`` = ``train`` or ``valid`` and its values as strings."""
    records = []
    for line in lines:
        match = _RECORD.search(line)
        if not match:
            continue
        values = json.loads(match.group(2))
        kind = "train" if match.group(1) == "train_inner" else "valid"
        if kind == "valid":
            values = {k[len("valid_"):] if k.startswith("valid_") else k: v for k, v in values.items()}
        values["kind"] = kind
        # fairseq numbers the extra losses in order: diversity (only with a quantizer), feature penalty
        extra = ["diversity", "feature_pen"] if "prob_perplexity" in values else ["feature_pen"]
        for name, key in zip(extra, ("loss_1", "loss_2")):
            if key in values:
                values[name] = values[key]
        records.append({k: str(v) for k, v in values.items()})
    return records


def format_table(records: List[Dict[str, str]]) -> str:
    header = f"{'':6}" + "".join(f"{name:>12}" for name, _ in COLUMNS)
    rows = [header]
    for r in records:
        rows.append(f"{r['kind']:6}" + "".join(f"{r.get(key, '-'):>12}" for _, key in COLUMNS))
    return "\n".join(rows)


CLI_DESCRIPTION = """sew-log-summary: a table of a fairseq training log (common.log_format=json), one row per logged
step.

    sew-log-summary demo_work/pretrain/train.log

Reads the train_inner and valid JSON records that fairseq writes and prints update, loss, the contrastive loss
(loss_0), the weighted diversity loss and feature penalty (loss_1, loss_2; a model without quantizer has no
diversity loss and logs the feature penalty as loss_1), the accuracy of picking the true target among the
negatives, and the codebook perplexity."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``sew-log-summary`` (the light layer: it starts without torch or fairseq)."""
    parser = argparse.ArgumentParser(prog="sew-log-summary", description=CLI_DESCRIPTION,
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
