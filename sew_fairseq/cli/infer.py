"""``sew-infer``: decode a manifest split with a fine-tuned CTC checkpoint and score it.

    sew-infer ckpt/checkpoint_best.pt --data manifests --split dev-other                      # greedy
    sew-infer ckpt/checkpoint_best.pt --data manifests --split dev-other --decoder kenlm \\
        --lexicon lexicon.txt --lm 4-gram.arpa --beam 500 --lm-weight 2 --word-score -1
    sew-infer ckpt/checkpoint_best.pt --data manifests --split dev-other --decoder kenlm \\
        --lexicon lexicon.txt --lm 4-gram.arpa --tune --tune-budget 40                       # search weights
    sew-infer ckpt/checkpoint_best.pt --data manifests --split dev-other --early-exit entropy --exit-threshold 0.0035
    sew-infer timit_ckpt/checkpoint_best.pt --data data/timit --split test --labels phn   # TIMIT phones: PER
    sew-infer ckpt/checkpoint_best.pt --data manifests --split dev-other --backend onnxruntime --dtype int8

Prints WER, CER and the real-time factor (model forward + decoding time / audio duration) and writes, in
``--results-dir`` (default: ``<checkpoint dir>/decode-<split>-<decoder>``): ``hyp.trn`` and ``ref.trn`` in NIST
sclite format (``text (utterance-id)``), ``utterances.tsv`` (id, reference, hypothesis, errors) and
``results.json``. ``--early-exit entropy|confidence --exit-threshold X`` decodes a ``sew_ctc_early_exit`` checkpoint
(recipes/finetuning/early_exit_*.yaml) with early exit: per utterance, the first exit branch whose criterion passes
(entropy below X, or confidence above X) gives the emissions and the later layers are not computed; utterances then
run one at a time (batch size 1), ``results.json`` adds the exit-layer histogram and ``utterances.tsv`` an
``exit_layer`` column. ``--tune`` computes the emissions once, decodes the split for each (lm weight, word score)
of a grid (a random subset of it when the grid exceeds ``--tune-budget``) and prints and saves
(``tune.json``) the best setting. An utterance whose audio is missing, empty, unreadable or truncated stops the run
with a one-line error naming the manifest line and the file (exit status 1); ``--skip-bad`` leaves such utterances
out, lists them in ``results.json`` (``skipped``) and decodes the rest.

``--labels phn`` (the default for a checkpoint fine-tuned with ``task.labels=phn``, e.g. recipes/finetuning/timit.yaml)
decodes phones: greedy, token by token (a phone dictionary has no word boundary ``|``; the hypothesis is the
collapsed phone sequence), references from ``<split>.phn``, and prints the phone error rate PER: edit distance over
the phones with ``sil`` not scored, as TIMIT results are reported (``results.json`` also has ``per_with_sil``,
every symbol scored, as Kaldi's TIMIT scoring counts). ``hyp.trn``/``ref.trn`` then hold phone sequences and
``utterances.tsv`` phone error counts (without ``sil``).

``--backend torch|onnxruntime --dtype fp32|bf16|fp16|int8`` chooses what computes the emissions (README, "Speed");
``results.json`` records both. Early exit runs with ``--backend torch`` only.
"""
import argparse
import json
import logging
import os
import sys
import time
from typing import Dict, Optional, Sequence

from manifests.atomic import atomic_open

from ..evaluate.scoring import (DEFAULT_LM_WEIGHTS, DEFAULT_WORD_SCORES, decode_all, reference_oov, summarize,
                                tune_lm_weights, tuning_grid, write_results)
from .options import (add_backend_arguments, add_decoder_arguments, add_device_argument, add_early_exit_arguments,
                      add_split_arguments, backend_problem, check_backend_arguments, cli_error, check_decoder_arguments,
                      check_early_exit_arguments, decoder_from_arguments, engine_options, exit_rule_from_arguments)

PROG = "sew-infer"



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sew-infer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_split_arguments(p, "fine-tuned CTC checkpoint (sew_ctc / wav2vec_ctc)")
    add_decoder_arguments(p, nbest=True)
    p.add_argument("--max-samples", type=int, default=1_600_000, help="padded samples per batch (default 1.6M)")
    add_device_argument(p)
    add_backend_arguments(p)
    p.add_argument("--results-dir", help="output directory (default <checkpoint dir>/decode-<split>-<decoder>)")
    p.add_argument("--tune", action="store_true", help="search --lm-weight and --word-score on this split")
    p.add_argument("--tune-lm-weights", type=float, nargs="+", default=DEFAULT_LM_WEIGHTS, help="grid of LM weights")
    p.add_argument("--tune-word-scores", type=float, nargs="+", default=DEFAULT_WORD_SCORES, help="grid of word scores")
    p.add_argument("--tune-budget", type=int, default=40, help="decodes at most; a random subset of a larger grid")
    p.add_argument("--seed", type=int, default=0, help="seed of the random tuning subset")
    add_early_exit_arguments(p)
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out utterances whose audio is missing, empty, unreadable or truncated (listed in "
                        "results.json under 'skipped') instead of stopping at the first one")
    p.add_argument("--labels", choices=["wrd", "phn"], default=None,
                   help="what to score: wrd = words of <split>.wrd (WER, CER), phn = phones of <split>.phn (PER "
                        "without sil; greedy token-level decoding); default: phn for a checkpoint fine-tuned with "
                        "task.labels=phn, else wrd")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def results_dir(args, kind: str) -> str:
    """``--results-dir``, or ``<checkpoint dir>/<kind>-<split>-<decoder>[-exit-<criterion><threshold>]``."""
    name = f"{kind}-{args.split}-{args.decoder}"
    if args.early_exit:
        name += f"-exit-{args.early_exit}{args.exit_threshold:g}"
    return args.results_dir or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), name)


def tune(args, dictionary, emissions) -> Dict:
    """``--tune``: decode with each (lm weight, word score) of the grid (or a random subset); the best by WER."""
    grid = tuning_grid(args.tune_lm_weights, args.tune_word_scores, args.decoder == "kenlm-lexfree", args.tune_budget,
                       args.seed)

    def report(row: Dict) -> None:
        print(f"lm_weight {row['lm_weight']:5.2f}  word_score {row['word_score']:5.2f}  WER {row['wer']:6.2f}  "
              f"CER {row['cer']:6.2f}", flush=True)

    return tune_lm_weights(emissions, grid, lambda w, s: decoder_from_arguments(args, dictionary, w, s), report)


def resolve_labels(args, cfg, dictionary) -> Optional[str]:
    """Set ``args.labels`` when not given: ``phn`` for a phone model (the one rule,
    :func:`sew_fairseq.decoding.is_phone_dictionary` of the checkpoint's output dictionary; a checkpoint fine-tuned
    with ``task.labels=phn`` has one), else ``wrd``; a message if ``--labels`` disagrees with the model."""
    from ..decoding import is_phone_dictionary

    trained = getattr(cfg.task, "labels", None)  # named in the messages only
    phones = is_phone_dictionary(dictionary)
    if args.labels is None:
        args.labels = "phn" if phones else "wrd"
    if args.labels == "phn" and not phones:
        return (f"--labels phn needs a checkpoint fine-tuned on phones (task.labels=phn); {args.checkpoint} has "
                f"task.labels={trained}")
    if args.labels == "wrd" and phones:
        return f"{args.checkpoint} was fine-tuned on phones (task.labels=phn): score it with --labels phn"
    return phone_decoder_problem(args)


def phone_decoder_problem(args) -> Optional[str]:
    """Phones are decoded greedily: the usage error of ``--labels phn`` with a word decoder, or None."""
    if args.labels == "phn" and args.decoder != "viterbi":
        return (f"--labels phn decodes phones greedily (--decoder viterbi); --decoder {args.decoder} searches words "
                f"of a lexicon and LM")
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s:%(lineno)d %(message)s")
    problem = (check_decoder_arguments(args) or check_early_exit_arguments(args) or check_backend_arguments(args)
               or phone_decoder_problem(args))
    if problem is None and args.tune and args.decoder == "viterbi":
        problem = "--tune searches LM weights; use it with --decoder kenlm or kenlm-lexfree"
    if problem:
        return cli_error(PROG, problem, 2)
    from ..checkpoints.ctc import sample_rate
    from ..engines import UnsupportedBackend, load_engine
    from ..evaluate.splits import compute_emissions, exit_summary, read_split

    exit_rule = exit_rule_from_arguments(args)
    skipped = [] if args.skip_bad else None
    try:
        engine, model, dictionary, cfg = load_engine(args.checkpoint, device=args.device, data=args.data,
                                                     exit_rule=exit_rule, **engine_options(args, PROG))
        problem = resolve_labels(args, cfg, dictionary)
        if problem:
            return cli_error(PROG, problem, 2)
        utterances = read_split(args.data, args.split, args.labels)
        emissions, forward_s = compute_emissions(engine, utterances, args.max_samples, sample_rate=sample_rate(cfg),
                                                 progress=not args.quiet, skipped=skipped)
        if not emissions:
            raise ValueError(f"no utterance of {args.split} could be decoded ({len(skipped or [])} skipped)")
        if args.tune:
            result = tune(args, dictionary, emissions)
            out_dir = results_dir(args, "tune")
            os.makedirs(out_dir, exist_ok=True)
            with atomic_open(os.path.join(out_dir, "tune.json"), "w", encoding="utf-8") as f:
                json.dump(result, f, indent=2)
            b = result["best"]
            print(f"best: --lm-weight {b['lm_weight']} --word-score {b['word_score']}  WER {b['wer']:.2f}  "
                  f"CER {b['cer']:.2f}  ({len(result['trials'])} decodes; {out_dir}/tune.json)")
            return 0
        decoder = decoder_from_arguments(args, dictionary)
        start = time.perf_counter()
        nbests = decode_all(decoder, emissions)
        decode_s = time.perf_counter() - start
    except UnsupportedBackend as e:  # what this machine cannot run
        return cli_error(PROG, backend_problem(e))
    except (ValueError, FileNotFoundError, OSError) as e:
        return cli_error(PROG, e)
    summary = {"checkpoint": os.path.abspath(args.checkpoint), "split": args.split, "decoder": args.decoder,
               "backend": args.backend, "dtype": args.dtype,
               **summarize(emissions, nbests, sample_rate(cfg), forward_s, decode_s, args.labels)}
    audio_s = summary["audio_seconds"]
    if skipped is not None:
        summary["skipped"] = [{"id": k.utterance.id, "audio": k.utterance.audio, "line": k.utterance.line,
                               "reason": k.reason, "error": k.message} for k in skipped]
        if skipped:
            print(f"sew-infer: warning: {len(skipped)} utterance(s) skipped (listed in results.json): "
                  + "; ".join(k.message.split(". Fix:")[0] for k in skipped[:3]), file=sys.stderr)
    if args.decoder != "viterbi":
        summary.update(lm=args.lm, lexicon=args.lexicon, beam=args.beam, lm_weight=args.lm_weight,
                       word_score=args.word_score)
    if args.decoder == "kenlm" and "wer" in summary:
        summary.update(reference_oov(args.lexicon, emissions))
        if summary["oov_words"]:
            print(f"sew-infer: warning: {summary['oov_words']} of {summary['reference_words']} reference words "
                  f"({summary['oov_rate']:.2f} %) are not in {args.lexicon} and cannot be recognised, e.g. "
                  f"{' '.join(summary['oov_examples'])}", file=sys.stderr)
    if exit_rule is not None:
        summary["early_exit"] = {"criterion": exit_rule.criterion, "threshold": exit_rule.threshold,
                                 "exit_layers": list(model.exit_layers), **exit_summary(emissions, model.num_layers)}
    out_dir = results_dir(args, "decode")
    write_results(out_dir, emissions, nbests, summary, args.labels)
    if exit_rule is not None:
        ee = summary["early_exit"]
        print(f"early exit ({exit_rule.criterion} threshold {exit_rule.threshold:g}): utterances per exit layer "
              f"{ee['exit_layer_histogram']} of {ee['num_layers']} layers, mean {ee['mean_layers']:.2f} layers")
    scores = f"WER {summary['wer']:.2f}  CER {summary['cer']:.2f}  " if "wer" in summary else ""
    if "per" in summary:
        scores = f"PER {summary['per']:.2f} (sil not scored; {summary['per_with_sil']:.2f} with sil)  "
    print(f"{args.split}: {len(emissions)} utterances, {audio_s:.1f} s  {scores}RTF {summary['rtf']:.4f} "
          f"(forward {forward_s:.2f} s, decode {decode_s:.2f} s) -> {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
