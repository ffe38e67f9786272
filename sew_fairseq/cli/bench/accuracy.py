"""``sew-bench accuracy``: greedy WER and log-probability differences of every backend against torch fp32
(:func:`sew_fairseq.bench.engines.run_accuracy`)."""
import argparse

from ..options import add_backend_arguments, add_split_arguments, cli_error
from .speed import runnable_pairs

PROG = "sew-bench"


def add_parser(sub) -> None:
    acc = sub.add_parser("accuracy", help="greedy WER and log-probability differences of every backend against "
                                          "torch fp32 on a split",
                         description="Example: sew-bench accuracy ckpt/checkpoint_best.pt --data corpus --split valid "
                                     "--backend torch onnxruntime openvino --dtype fp32 bf16 int8 --calibration "
                                     "corpus/train.tsv --threads 2")
    add_split_arguments(acc)
    acc.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default 2)")
    acc.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    acc.add_argument("--max-samples", type=int, default=1_600_000, help="padded samples per batch (default 1.6M)")
    acc.add_argument("--json", help="write the rows to this file")
    add_backend_arguments(acc, multiple=True, defaults=(["torch", "onnxruntime"], ["fp32", "bf16", "int8"]),
                          cache_only=True)



def run(args: argparse.Namespace) -> int:
    """``sew-bench accuracy``: :func:`sew_fairseq.bench.engines.run_accuracy`."""
    import json

    from manifests.atomic import atomic_open
    from ...bench.engines import accuracy_failures, format_accuracy_rows
    from ...bench.engines import run_accuracy as accuracy

    pairs = runnable_pairs(args, args.backend, args.dtype)
    if pairs is None:
        return 2
    try:
        from ...transcribe.calibration import read_calibration

        calibration = read_calibration(args.calibration) if args.calibration else None
        rows = accuracy(args.checkpoint, args.data, args.split, pairs, args.device, args.threads, args.max_samples,
                        args.onnx_cache, calibration)
    except (ValueError, FileNotFoundError, OSError) as e:
        return cli_error(PROG, e)
    print(format_accuracy_rows(rows, args.checkpoint, args.split, args.threads))
    if args.json:
        with atomic_open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    failures = accuracy_failures(rows)
    for f in failures:
        cli_error(PROG, f"fp32 outputs differ by more than 1e-4: {f}")
    return 1 if failures else 0


