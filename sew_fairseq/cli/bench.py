"""``sew-bench``: benchmarks that print ratios (no pass/fail thresholds).

    sew-bench speed --presets sew_d_mid sew_tiny --seconds 10 --threads 2
    sew-bench speed --presets sew_d_mid sew_tiny --seconds 10 --threads 2 --against hf
    sew-bench speed --presets sew_tiny --seconds 11 --threads 2 --backend torch onnxruntime \
        --dtype fp32 bf16 int8 --against hf                                # every backend (bench/backends.py)
    sew-bench accuracy ckpt/checkpoint_best.pt --data corpus --split valid  # greedy WER per backend vs torch fp32
    sew-bench decode --utterances 200 --beam 50 --lm-weight 2 --word-score -1 --json decode.json
    sew-bench tradeoff ckpt/checkpoint_best.pt --data manifests --split dev-other   # early exit (bench/tradeoff.py)
    sew-bench longform ckpt/checkpoint_best.pt --data corpus --split valid --minutes 1 10 --out-dir longform
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
transformers fp32 and transformers under autocast with the same dtype, in the same process), and ONNX Runtime's
export and quantisation times separately; ``accuracy`` gives each engine's greedy WER on a split and its largest
log-probability difference against torch fp32. See :mod:`sew_fairseq.bench.engines`.

``decode`` times the KenLM beam search per second of audio: our flashlight-text lexicon decoder against
pyctcdecode (+ the ``kenlm`` module) on the same synthetic CTC emissions (50 frames/s), at the same beam
width, LM and weights (pyctcdecode's alpha = lm_weight / ln 10, beta = word_score), and prints both WERs and
the time ratio pyctcdecode / ours; see :mod:`sew_fairseq.bench.decode`. Needs ``pip install pyctcdecode kenlm``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence


from ..bench import longform
from ..bench import manifest_prep as bench_manifests
from ..bench import tradeoff as bench_tradeoff
from ..bench.speed import format_rows, format_rows_against_hf, run_speed, run_speed_against_hf
from .options import add_backend_arguments

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    from ..models.presets import PRESETS

    parser = argparse.ArgumentParser(
        prog="sew-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    speed = sub.add_parser("speed", help="inference speed of presets against fairseq's wav2vec 2.0 base",
                           description="Example: sew-bench speed --presets sew_d_mid sew_tiny --seconds 10 --threads 2")
    speed.add_argument("--presets", nargs="+", default=["sew_d_mid", "sew_tiny"], choices=sorted(PRESETS),
                       metavar="PRESET",
                       help=f"presets to time (default: sew_d_mid sew_tiny); one of {', '.join(PRESETS)}")
    speed.add_argument("--seconds", type=float, default=10.0, help="audio length in seconds (default 10)")
    speed.add_argument("--repeats", type=int, default=10, help="timed forwards per model (default 10)")
    speed.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    speed.add_argument("--batch", type=int, default=1, help="utterances per forward (default 1)")
    speed.add_argument("--against", choices=["fairseq", "hf"], default=None,
                       help="fairseq: speed-up over fairseq's wav2vec 2.0 base (the default without --backend/"
                            "--dtype); hf: the same weights in transformers' SEW / SEW-D port, converted in memory, "
                            "outputs checked to 1e-4, ratio HF time / our time (with --backend/--dtype: transformers "
                            "fp32 and with the same dtype)")
    speed.add_argument("--hf-attention", default=None,
                       help="with --against hf: transformers' attention kernel (default: its own default; "
                            "'eager' = the reference maths)")
    speed.add_argument("--device", default="cpu", help="with --backend/--dtype: cpu or cuda (default cpu)")
    add_backend_arguments(speed, multiple=True, cache=False, defaults=(None, None))

    acc = sub.add_parser("accuracy", help="greedy WER and log-probability differences of every backend against "
                                          "torch fp32 on a split",
                         description="Example: sew-bench accuracy ckpt/checkpoint_best.pt --data corpus --split valid "
                                     "--backend torch onnxruntime --dtype fp32 bf16 int8 --threads 2")
    acc.add_argument("checkpoint", help="fine-tuned CTC checkpoint")
    acc.add_argument("--data", required=True, help="manifest directory with <split>.tsv and <split>.wrd")
    acc.add_argument("--split", required=True, help="split to decode")
    acc.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default 2)")
    acc.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    acc.add_argument("--max-samples", type=int, default=1_600_000, help="padded samples per batch (default 1.6M)")
    acc.add_argument("--json", help="write the rows to this file")
    add_backend_arguments(acc, multiple=True, defaults=(["torch", "onnxruntime"], ["fp32", "bf16", "int8"]),
                          cache_only=True)

    dec = sub.add_parser(
        "decode", help="KenLM beam-search speed and WER: ours (flashlight-text) against pyctcdecode",
        description="Times our flashlight-text KenLM lexicon decoder and pyctcdecode on the same synthetic CTC "
                    "emissions (same beam, LM and weights) and prints time per audio second, WERs and the ratio. "
                    "Example: sew-bench decode --utterances 200 --beam 50 --json decode.json")
    dec.add_argument("--utterances", type=int, default=200, help="sentences to decode (default 200)")
    dec.add_argument("--beam", type=int, default=50, help="beam width, the same for both (default 50)")
    dec.add_argument("--lm-weight", type=float, default=2.0,
                     help="LM weight on log10 probabilities (ours); pyctcdecode gets alpha = this / ln 10 (default 2)")
    dec.add_argument("--word-score", type=float, default=-1.0,
                     help="score added per word: ours' word_score, pyctcdecode's beta (default -1)")
    dec.add_argument("--beam-threshold", type=float, nargs="+", default=[25.0, 10.0], metavar="T",
                     help="ours' beam_threshold, one result row each (default 25 10: 25 is its default, 10 matches "
                          "pyctcdecode's beam_prune_logp -10)")
    dec.add_argument("--beam-size-token", type=int, default=None,
                     help="ours: tokens considered per frame (default: all); the analogue of pyctcdecode's "
                          "per-frame token pruning (token_min_logp -5)")
    dec.add_argument("--unk-offset", type=float, default=-10.0,
                     help="pyctcdecode's unk_score_offset for words/prefixes outside the unigrams "
                          "(default -10, its own)")
    dec.add_argument("--noise", type=float, default=0.2,
                     help="probability that a letter is misheard (another letter on top, the true one second; "
                          "default 0.2)")
    dec.add_argument("--jitter", type=float, default=1.0, help="std of Gaussian noise on every logit (default 1)")
    dec.add_argument("--peak", type=float, default=8.0,
                     help="logit margin of the heard symbol: 8 ~ 98%% of a frame's mass (a fine-tuned model), "
                          "5 ~ 75%% (an uncertain one); default 8")
    dec.add_argument("--seed", type=int, default=0, help="random seed for texts and emissions (default 0)")
    dec.add_argument("--threads", type=int, default=1,
                     help="worker processes each decoder spreads the utterances over (default 1: in-process)")
    dec.add_argument("--repeats", type=int, default=3, help="timed passes over all utterances; the median is "
                                                           "reported (default 3)")
    dec.add_argument("--text", help="sentences to decode, one per line (default: a small built-in grammar); "
                                    "the LM is estimated from all its lines unless --lm")
    dec.add_argument("--lm", help="word LM (ARPA or KenLM binary) instead of the estimated one")
    dec.add_argument("--lexicon", help="lexicon (WORD L E T T E R S |) instead of the texts' words / the ARPA 1-grams; "
                                       "needed with a binary --lm")
    dec.add_argument("--lm-order", type=int, default=3, help="order of the estimated LM (default 3)")
    dec.add_argument("--json", help="write the results (and, with --hypotheses, every hypothesis) to this file")
    dec.add_argument("--hypotheses", action="store_true", help="include references and hypotheses in --json")
    bench_tradeoff.add_parser(sub)  # early exit: WER against inference time
    longform.add_parser(sub)  # long recordings: sew-transcribe against transformers' chunked pipeline
    bench_manifests.add_parser(sub)  # sew-manifest librispeech against fairseq's manifest scripts
    return parser


def run_decode(args: argparse.Namespace) -> int:
    """``sew-bench decode``: run :func:`sew_fairseq.bench.decode.run_decode_bench`, print the table."""
    import json

    from manifests.atomic import atomic_open
    from ..bench.decode import format_result, run_decode_bench

    if args.utterances < 1 or args.beam < 1 or args.threads < 1 or args.repeats < 1:
        print("error: --utterances, --beam, --threads and --repeats must be positive", file=sys.stderr)
        return 2
    text = None
    if args.text is not None:
        try:
            with open(args.text, encoding="utf-8") as f:
                text = f.read().splitlines()
        except OSError as e:
            print(f"error: cannot read --text {args.text}: {e}", file=sys.stderr)
            return 2
    for flag, path in (("--lm", args.lm), ("--lexicon", args.lexicon)):
        if path is not None and not os.path.isfile(path):
            print(f"error: {flag} file not found: {path}", file=sys.stderr)
            return 2
    try:
        result = run_decode_bench(
            utterances=args.utterances, beam=args.beam, lm_weight=args.lm_weight, word_score=args.word_score,
            noise=args.noise, jitter=args.jitter, peak=args.peak, seed=args.seed, threads=args.threads,
            repeats=args.repeats, beam_thresholds=args.beam_threshold, unk_offset=args.unk_offset, text=text,
            beam_size_token=args.beam_size_token,
            lm=args.lm, lexicon=args.lexicon, lm_order=args.lm_order)
    except (ImportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_result(result))
    if args.json:
        with atomic_open(args.json, "w", encoding="utf-8") as f:
            json.dump(result.to_dict(with_hypotheses=args.hypotheses), f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0


def _pairs(args: argparse.Namespace, backends: Sequence[str], dtypes: Sequence[str]):
    """The engine pairs to run, after printing those that will not; None (and the reason on stderr) if none can."""
    from ..bench.engines import describe_skipped, engine_pairs

    pairs, skipped = engine_pairs(backends, dtypes, args.device)
    for line in describe_skipped(skipped):
        print(line, file=sys.stderr if not pairs else sys.stdout)
    if not pairs or (len(backends) == 1 and len(dtypes) == 1 and skipped):
        print(f"error: nothing to run: {skipped[0][1] if skipped else 'no backend/dtype given'}", file=sys.stderr)
        return None
    return pairs


def run_backends(args: argparse.Namespace) -> int:
    """``sew-bench speed --backend ... --dtype ...``: :func:`sew_fairseq.bench.engines.run_backends_speed`."""
    from ..bench.engines import format_speed_rows, fp32_failures, run_backends_speed, speed_header

    if args.against == "fairseq":
        print("error: --backend/--dtype compare against transformers (--against hf), or nothing", file=sys.stderr)
        return 2
    pairs = _pairs(args, args.backend or ["torch"], args.dtype or ["fp32"])
    if pairs is None:
        return 2
    try:
        rows = run_backends_speed(args.presets, pairs, args.seconds, args.repeats, args.threads, args.batch,
                                  against_hf=args.against == "hf", device=args.device,
                                  attn_implementation=args.hf_attention)
    except (ImportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(speed_header(args.seconds, args.threads, args.repeats, args.batch, args.device) + format_speed_rows(rows))
    failures = fp32_failures(rows)
    for f in failures:
        print(f"error: fp32 outputs differ by more than 1e-4: {f}", file=sys.stderr)
    return 1 if failures else 0


def run_accuracy(args: argparse.Namespace) -> int:
    """``sew-bench accuracy``: :func:`sew_fairseq.bench.engines.run_accuracy`."""
    import json

    from manifests.atomic import atomic_open
    from ..bench.engines import accuracy_failures, format_accuracy_rows
    from ..bench.engines import run_accuracy as accuracy

    pairs = _pairs(args, args.backend, args.dtype)
    if pairs is None:
        return 2
    try:
        rows = accuracy(args.checkpoint, args.data, args.split, pairs, args.device, args.threads, args.max_samples,
                        args.onnx_cache)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_accuracy_rows(rows, args.checkpoint, args.split, args.threads))
    if args.json:
        with atomic_open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    failures = accuracy_failures(rows)
    for f in failures:
        print(f"error: fp32 outputs differ by more than 1e-4: {f}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s:%(lineno)d %(message)s")
    if args.command == "speed":
        if args.seconds <= 0 or args.repeats < 1 or args.threads < 1 or args.batch < 1:
            print("error: --seconds, --repeats, --threads and --batch must be positive", file=sys.stderr)
            return 2
        if args.backend is not None or args.dtype is not None:
            return run_backends(args)
        if args.against == "hf":
            try:
                rows = run_speed_against_hf(args.presets, args.seconds, args.repeats, args.threads, args.batch,
                                            attn_implementation=args.hf_attention)
            except (ImportError, ValueError) as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            print(format_rows_against_hf(rows, args.seconds, args.threads, args.repeats))
            worst = max(r["max_diff"] for r in rows)
            if worst > 1e-4:
                print(f"error: outputs differ by {worst:.2e} > 1e-4", file=sys.stderr)
                return 1
            return 0
        rows = run_speed(args.presets, args.seconds, args.repeats, args.threads, args.batch)
        print(format_rows(rows, args.seconds, args.threads, args.repeats))
    elif args.command == "decode":
        return run_decode(args)
    elif args.command == "accuracy":
        return run_accuracy(args)
    elif args.command == "tradeoff":
        return bench_tradeoff.run(args)
    elif args.command == "longform":
        return longform.run(args)
    elif args.command == "manifests":
        return bench_manifests.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
