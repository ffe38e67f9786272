"""``sew-bench``: benchmarks that print ratios (no pass/fail thresholds); one module per sub-command, each
its options (``add_parser``) and its printing (``run``); the measuring is in :mod:`sew_fairseq.bench`.

    sew-bench speed --presets sew_d_mid sew_tiny --seconds 10 --threads 2
    sew-bench speed --presets sew_d_mid sew_tiny --seconds 10 --threads 2 --against hf
    sew-bench speed --presets sew_tiny --seconds 11 --threads 2 --backend torch onnxruntime openvino \
        --dtype fp32 bf16 int8 --against hf                                # every backend (bench/engines.py)
    sew-bench accuracy ckpt/checkpoint_best.pt --data corpus --split valid  # greedy WER per backend vs torch fp32
    sew-bench decode --utterances 200 --beam 50 --lm-weight 2 --word-score -1 --json decode.json
    sew-bench tradeoff ckpt/checkpoint_best.pt --data manifests --split dev-other   # early exit (bench/tradeoff.py)
    sew-bench longform ckpt/checkpoint_best.pt --data corpus --split valid --minutes 1 10 --out-dir longform
    sew-bench align ckpt/checkpoint_best.pt --data corpus --split valid --minutes 1 10 60 --out-dir align
    sew-bench loader --data corpus --packed packed --split train --workers 0 1 2   # files vs zip shards
    sew-bench train --preset sew_tiny --precision fp32 bf16-mixed --generate 16 --max-tokens 250000   # training
    sew-bench manifests --source tests/fixtures/librispeech/LibriSpeech --files 4000 --repeats 5

``speed`` times the inference forward (``extract_features``, eval mode, fp32, no autograd) of each preset on
N seconds of audio, and fairseq's own ``wav2vec2`` base model in the same process, and prints time per
forward, real-time factor (time / audio duration) and the speed-up over fairseq's wav2vec 2.0 base.
Weights are random: speed does not depend on their values.

``speed --against hf`` times the same weights in Hugging Face transformers' SEW / SEW-D port instead (converted
in memory with :func:`sew_fairseq.checkpoints.hf.hf_twin`), checks that both give the same output (1e-4) and prints
the ratio HF time / our time.

``speed --backend B [B ...] --dtype D [D ...]`` times each preset as a CTC model from the wave to the
log-probabilities through each engine of :mod:`sew_fairseq.engines` (every valid pair; ``--against hf`` adds
transformers fp32 and transformers under autocast with the same dtype, in the same process; with openvino,
OpenVINO's plain run of the to-onnx export as the anchor row), each path's GFLOP/s and share of the matrix-product
peak timed in the same run, and the export, quantisation and compilation times separately; ``accuracy`` gives each
engine's greedy WER on a split and its largest log-probability difference against torch fp32. See
:mod:`sew_fairseq.bench.engines`.

``decode`` times the KenLM beam search per second of audio: our flashlight-text lexicon decoder against
pyctcdecode (+ the ``kenlm`` module) on the same synthetic CTC emissions (50 frames/s), at the same beam
width, LM and weights (pyctcdecode's alpha = lm_weight / ln 10, beta = word_score), and prints both WERs and
the time ratio pyctcdecode / ours; see :mod:`sew_fairseq.bench.decode`. Needs ``pip install pyctcdecode kenlm``.
"""
import argparse
import logging
import sys
from typing import Optional, Sequence

from . import accuracy, align, decode, loader, longform, manifest_prep, speed, tradeoff, train

COMMANDS = {"speed": speed, "accuracy": accuracy, "decode": decode, "tradeoff": tradeoff, "longform": longform,
            "align": align, "manifests": manifest_prep, "loader": loader, "train": train}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sew-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s:%(lineno)d %(message)s")
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
