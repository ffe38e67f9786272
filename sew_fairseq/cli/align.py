"""``sew-align``: place every line of a transcript on its recording (forced alignment), leave out the lines that
were never spoken, and cut the result into training data.

    sew-align ckpt/checkpoint_best.pt talk.flac talk.txt --output-dir aligned
    sew-align ckpt/checkpoint_best.pt talks/ --output-dir aligned             # talks/x.flac with talks/x.txt
    sew-align ckpt/checkpoint_best.pt --pairs pairs.tsv --output-dir aligned  # lines AUDIO<TAB>TEXT
    sew-align ckpt/checkpoint_best.pt talks/ --output-dir aligned --manifest-dir data --split train --max-seconds 20
    sew-align ckpt/checkpoint_best.pt --pairs all.tsv --output-dir aligned --shard $SLURM_ARRAY_TASK_ID/8

TEXT holds one segment a line (blank lines ignored), in the order spoken. It is folded to the model's letters:
upper case, typographic quotes made ASCII, punctuation dropped (dashes and slashes separate words;
``--keep-punctuation`` keeps it, when the model has labels for it); any other character the model has no label for
(digits, symbols) is an error naming the file, the line and the characters, before any audio is read.

Audio is read as ``sew-transcribe`` reads it (any format, rate, channels, length; ``--skip-bad``), and its
log-probabilities come from the same engine (``--backend``, ``--dtype``, ``--chunk-seconds``). One Viterbi search
over the whole recording and the whole text places the lines in order; speech or noise that is not in the text goes
to a garbage path between lines (``--garbage-penalty`` per frame), and a line that is not in the recording is
skipped as a whole (``--skip-cost``) without moving its neighbours; a kept line scoring below ``--min-score`` is
skipped too. Memory does not grow with the recording's length.

Outputs, per recording, written as soon as it is done (a re-run skips recordings whose outputs exist):
``<stem>.json`` (audio, duration, segments: one per text line, in text order, with start, end, score and words, or
``skipped`` with its reason and score), ``<stem>.ctm`` (words), ``<stem>.TextGrid`` (Praat: segments and words
tiers), ``<stem>.srt``; ``summary.json`` (files, segments kept, skipped lines with their reason, seconds of audio,
forward and alignment seconds). Times are those of the first and last letter frames, without padding; scores are
mean log-posteriors per frame (0 = a perfect match). ``--manifest-dir M`` cuts the kept segments (padded by
``--pad-seconds`` into the surrounding silence, never into a neighbour) into 16 kHz mono FLACs and writes
``M/<split>.tsv``, ``.ltr``, ``.wrd`` and ``dict.ltr.txt`` for fine-tuning and ``sew-infer``.

``--shard K/N`` aligns every N-th pair from the K-th (K = 0 .. N-1), so that a SLURM array (``--array=0-7`` and
``--shard $SLURM_ARRAY_TASK_ID/8``) or any scheduler splits a corpus over machines without coordination; each part
writes ``summary.shard-K-of-N.json``.
"""
import argparse
import logging
import sys
import time
from typing import Optional, Sequence

from .options import (add_backend_arguments, add_chunking_arguments, add_device_argument, add_shard_argument,
                      backend_problem, check_backend_arguments, cli_error, engine_options)

PROG = "sew-align"
FORMATS = ("json", "ctm", "TextGrid", "srt")


def build_parser() -> argparse.ArgumentParser:
    from ..align.aligner import (ALIGN_CHUNK_SECONDS, DEFAULT_BEAM, DEFAULT_GARBAGE_PENALTY, DEFAULT_MIN_SCORE,
                                 DEFAULT_SKIP_COST)

    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="fine-tuned CTC letter checkpoint (sew_ctc, wav2vec_ctc)")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="AUDIO TEXT, or folders in which x.flac pairs with x.txt (searched recursively)")
    p.add_argument("--pairs", metavar="LIST", help="more pairs: lines AUDIO<TAB>TEXT (relative to the list's folder)")
    p.add_argument("--output-dir", "-o", required=True, help="where the alignments go")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS),
                   help="outputs per recording (default: all of %(default)s; the json is always written)")
    p.add_argument("--dict", help="output dictionary (dict.ltr.txt) for a checkpoint saved without one")
    p.add_argument("--channel", type=int, default=None, help="align channel N (0-based) instead of the mean")
    p.add_argument("--keep-punctuation", action="store_true",
                   help="keep punctuation in the text (it must then be in the model's labels)")
    g = p.add_argument_group("search")
    g.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE,
                   help="skip kept lines whose score (mean log-posterior per frame) is below this (default "
                        "%(default)s; --min-score=-inf keeps every line the search places)")
    g.add_argument("--garbage-penalty", type=float, default=DEFAULT_GARBAGE_PENALTY,
                   help="cost per frame of speech that is not in the text (default %(default)s)")
    g.add_argument("--skip-cost", type=float, default=DEFAULT_SKIP_COST,
                   help="cost of leaving a line out (default %(default)s; inf: every line must be placed)")
    g.add_argument("--beam", type=float, default=DEFAULT_BEAM,
                   help="search beam in nats (default %(default)s; small inputs are searched exactly)")
    add_chunking_arguments(p, chunk_seconds=ALIGN_CHUNK_SECONDS)
    add_device_argument(p)
    add_backend_arguments(p)
    m = p.add_argument_group("training manifest")
    m.add_argument("--manifest-dir", metavar="M", help="cut the kept segments into M/<split>.tsv/.ltr/.wrd + FLACs")
    m.add_argument("--split", default="train", help="the manifest's split name (default %(default)s)")
    m.add_argument("--max-seconds", type=float, default=None,
                   help="split longer segments at the widest pause between their words")
    m.add_argument("--pad-seconds", type=float, default=None,
                   help="padding of each cut into the surrounding silence (default: the manifest writer's, 0.15)")
    add_shard_argument(p, "pairs")
    p.add_argument("--skip-bad", action="store_true",
                   help="list unreadable recordings in summary.json and carry on, instead of stopping at the first")
    p.add_argument("--overwrite", action="store_true", help="redo recordings whose outputs exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s:%(lineno)d %(message)s")
    problem = check_backend_arguments(args)
    if problem:
        return cli_error(PROG, problem, 2)
    from manifests.audio import AudioError

    from ..align import Aligner, TextError
    from ..align.files import align_files, resolve_pairs
    from ..engines import UnsupportedBackend
    from ..transcribe import InputError

    start = time.perf_counter()
    try:
        pairs = resolve_pairs(args.inputs, args.pairs)
        if args.shard is not None:
            pairs = args.shard.select(pairs)
        aligner = Aligner.from_checkpoint(args.checkpoint, device=args.device, dictionary=args.dict,
                                          chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap_seconds,
                                          batch_size=args.batch_size, min_score=args.min_score,
                                          garbage_penalty=args.garbage_penalty, skip_cost=args.skip_cost,
                                          beam=args.beam, keep_punctuation=args.keep_punctuation,
                                          **engine_options(args, PROG))
        summary = align_files(aligner, pairs, args.output_dir, args.formats, skip_bad=args.skip_bad,
                              overwrite=args.overwrite, channel=args.channel, progress=not args.quiet,
                              manifest_dir=args.manifest_dir, split=args.split, max_seconds=args.max_seconds,
                              pad_seconds=args.pad_seconds, setup_seconds=time.perf_counter() - start,
                              shard=args.shard)
    except UnsupportedBackend as e:
        return cli_error(PROG, backend_problem(e))
    except (AudioError, InputError, TextError, ValueError, OSError) as e:
        return cli_error(PROG, e)
    print(f"{summary['files']} recording(s), {summary['audio_seconds']:.1f} s of audio, {summary['kept']} of "
          f"{summary['segments']} lines placed, forward {summary['forward_seconds']:.2f} s, alignment "
          f"{summary['align_seconds']:.2f} s" + (f", {summary['reused']} already done" if summary["reused"] else "")
          + f" -> {args.output_dir}")
    for s in summary["skipped"]:
        score = "-" if s["score"] is None else f"{s['score']:.2f}"
        print(f"{PROG}: skipped line {s['line']} of {s['audio']} ({s['reason']}, score {score}): {s['text']}",
              file=sys.stderr)
    for s in summary["bad_files"]:
        print(f"{PROG}: skipped {s['error']}", file=sys.stderr)
    if "manifest" in summary:
        r = summary["manifest"]
        print(f"manifest: {r['rows']} segments, {r['seconds']:.1f} s -> {r['tsv']}"
              + (f" ({len(r['rejected'])} rejected, listed in summary.json)" if r["rejected"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
