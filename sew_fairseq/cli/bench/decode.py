"""``sew-bench decode``: KenLM beam-search speed and WER, ours (flashlight-text) against pyctcdecode
(:mod:`sew_fairseq.bench.decode`)."""
import argparse
import os

from ..options import cli_error

PROG = "sew-bench"


def add_parser(sub) -> None:
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


def run(args: argparse.Namespace) -> int:
    """``sew-bench decode``: run :func:`sew_fairseq.bench.decode.run_decode_bench`, print the table."""
    import json

    from manifests.atomic import atomic_open
    from ...bench.decode import format_result, run_decode_bench

    if args.utterances < 1 or args.beam < 1 or args.threads < 1 or args.repeats < 1:
        return cli_error(PROG, "--utterances, --beam, --threads and --repeats must be positive", 2)
    text = None
    if args.text is not None:
        try:
            with open(args.text, encoding="utf-8") as f:
                text = f.read().splitlines()
        except OSError as e:
            return cli_error(PROG, f"cannot read --text {args.text}: {e}", 2)
    for flag, path in (("--lm", args.lm), ("--lexicon", args.lexicon)):
        if path is not None and not os.path.isfile(path):
            return cli_error(PROG, f"{flag} file not found: {path}", 2)
    try:
        result = run_decode_bench(
            utterances=args.utterances, beam=args.beam, lm_weight=args.lm_weight, word_score=args.word_score,
            noise=args.noise, jitter=args.jitter, peak=args.peak, seed=args.seed, threads=args.threads,
            repeats=args.repeats, beam_thresholds=args.beam_threshold, unk_offset=args.unk_offset, text=text,
            beam_size_token=args.beam_size_token,
            lm=args.lm, lexicon=args.lexicon, lm_order=args.lm_order)
    except (ImportError, ValueError) as e:
        return cli_error(PROG, e, 2)
    print(format_result(result))
    if args.json:
        with atomic_open(args.json, "w", encoding="utf-8") as f:
            json.dump(result.to_dict(with_hypotheses=args.hypotheses), f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0


