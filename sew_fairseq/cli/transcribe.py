"""``sew-transcribe``: transcribe audio files with a fine-tuned CTC checkpoint: any format, any length, timestamps.

    sew-transcribe ckpt/checkpoint_best.pt talk.mp3 --output-dir out              # one file -> out/talk.{txt,json,...}
    sew-transcribe ckpt/checkpoint_best.pt recordings/ --output-dir out           # a folder, searched recursively
    sew-transcribe ckpt/checkpoint_best.pt @files.txt --output-dir out --formats txt ctm
    sew-transcribe ckpt/checkpoint_best.pt recordings/ --output-dir out --backend onnxruntime --dtype int8
    sew-transcribe ckpt/checkpoint_best.pt @test.list --output-dir out --references ref.trn      # + WER
    sew-transcribe ckpt/checkpoint_best.pt recordings/ --output-dir out --decoder kenlm \\
        --lexicon lexicon.txt --lm 4-gram.arpa --beam 500 --lm-weight 2 --word-score -1 --skip-bad
    sew-transcribe ckpt/checkpoint_best.pt recordings/ --output-dir out --shard $SLURM_ARRAY_TASK_ID/8  # 1 of 8 jobs

INPUT is an audio file (anything libsndfile reads: wav, flac, ogg/opus, mp3, NIST SPHERE, ...; any rate, resampled
to the model's with soxr; channels averaged, or ``--channel N``), a folder (searched recursively) or ``@LIST`` (one
path per line). Outputs mirror each input's path relative to the folder it was found in (a file given by itself: its
base name): ``<rel>.txt``, ``<rel>.json`` (text, words with start/end seconds and confidence), ``<rel>.srt``,
``<rel>.vtt``, and for all files ``transcripts.ctm`` (NIST CTM, for sclite) and ``summary.json`` (files,
audio_seconds, forward_seconds, decode_seconds, setup_seconds, skipped). Each file's outputs are written as soon
as it is done; a re-run skips files whose outputs exist (``--overwrite`` redoes them). ``--shard K/N`` does every
N-th input from the K-th (K from 0), so that N jobs (a Slurm array, ``#SBATCH --array=0-7`` and ``--shard
$SLURM_ARRAY_TASK_ID/8``) share the inputs and one output folder; each writes ``summary.shard-K-of-N.json`` and
``transcripts.shard-K-of-N.ctm``, and a last run without ``--shard`` (every output reused) writes them for all files.

Long recordings run in chunks of ``--chunk-seconds`` with ``--overlap-seconds`` of context on each side, so memory
does not grow with the length; each output frame comes from the interior of one chunk. A file that cannot be read
(missing, empty, not audio, truncated, no samples) stops the run with a one-line error naming it (exit status 1;
what was done is kept); ``--skip-bad`` lists it in summary.json and carries on.

``--backend torch|onnxruntime --dtype fp32|bf16|fp16|int8`` chooses what runs the network (README, "Speed"): torch
fp32 (default), bf16 (CPUs with AVX512-BF16 / AMX, CUDA), fp16 (CUDA), or the exported graph in ONNX Runtime, fp32
or int8, exported on first use into ``--onnx-cache`` (default ``onnx-cache/`` beside the checkpoint).
"""
import argparse
import logging
import sys
import time
from typing import Optional, Sequence

from .options import (add_backend_arguments, add_chunking_arguments, add_decoder_arguments, add_device_argument,
                      add_early_exit_arguments, add_shard_argument, backend_problem, check_backend_arguments,
                      check_decoder_arguments, check_early_exit_arguments, cli_error, decoder_from_arguments,
                      engine_options, exit_rule_from_arguments)

PROG = "sew-transcribe"


def build_parser() -> argparse.ArgumentParser:
    from ..transcribe.outputs import FORMATS
    from ..transcribe.chunking import STITCH_RULES
    from ..transcribe.transcriber import DEFAULT_STITCH

    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="fine-tuned CTC checkpoint (sew_ctc, sew_ctc_early_exit, wav2vec_ctc)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file, folder, or @LIST of paths")
    p.add_argument("--output-dir", "-o", required=True, help="where the transcripts go")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS),
                   help="outputs to write (default: all of %(default)s)")
    p.add_argument("--dict", help="output dictionary (dict.ltr.txt) for a checkpoint saved without one")
    p.add_argument("--channel", type=int, default=None, help="transcribe channel N (0-based) instead of the mean")
    add_chunking_arguments(p)
    p.add_argument("--stitch", choices=STITCH_RULES, default=DEFAULT_STITCH,
                   help="where overlapping chunks hand over: the middle of the overlap, or the middle of the longest "
                        "run both chunks read as blank (a pause; default %(default)s)")
    add_device_argument(p)
    add_backend_arguments(p)
    add_decoder_arguments(p)
    add_early_exit_arguments(p)
    p.add_argument("--references", metavar="TRN",
                   help="reference transcripts as an sclite trn file ('TEXT (id)', id = the output path without "
                        "its extension, e.g. sub/talk): WER and CER (a phone model: PER without and with sil) of "
                        "the files that have one, printed and in summary.json")
    p.add_argument("--skip-bad", action="store_true",
                   help="list unreadable files in summary.json and carry on, instead of stopping at the first")
    p.add_argument("--overwrite", action="store_true", help="redo files whose outputs exist")
    add_shard_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s:%(lineno)d %(message)s")
    problem = check_decoder_arguments(args) or check_early_exit_arguments(args) or check_backend_arguments(args)
    if problem:
        return cli_error(PROG, problem, 2)
    from manifests.audio import AudioError

    from manifests.trn import read_trn
    from ..engines import UnsupportedBackend
    from ..transcribe import InputError, Transcriber, resolve_inputs, transcribe_files

    start = time.perf_counter()
    try:
        references = dict(read_trn(args.references)) if args.references else None
        files = resolve_inputs(args.inputs)
        tr = Transcriber.from_checkpoint(args.checkpoint, device=args.device, dictionary=args.dict,
                                         chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap_seconds,
                                         batch_size=args.batch_size, stitch=args.stitch,
                                         exit_rule=exit_rule_from_arguments(args),
                                         decoder=lambda dictionary: decoder_from_arguments(args, dictionary),
                                         **engine_options(args, PROG))
        summary = transcribe_files(tr, files, args.output_dir, args.formats, skip_bad=args.skip_bad,
                                   overwrite=args.overwrite, channel=args.channel, progress=not args.quiet,
                                   setup_seconds=time.perf_counter() - start, references=references,
                                   shard=args.shard)
    except UnsupportedBackend as e:  # what this machine cannot run
        return cli_error(PROG, backend_problem(e))
    except (AudioError, InputError, ValueError, FileNotFoundError, OSError) as e:
        return cli_error(PROG, e)
    rtf = (summary["forward_seconds"] + summary["decode_seconds"]) / max(summary["audio_seconds"], 1e-9)
    print(f"{summary['files']} file(s), {summary['audio_seconds']:.1f} s of audio, forward "
          f"{summary['forward_seconds']:.2f} s, decode {summary['decode_seconds']:.2f} s (RTF {rtf:.4f})"
          + (f", {summary['reused']} already done" if summary["reused"] else "")
          + (f", {len(summary['skipped'])} skipped" if summary["skipped"] else "")
          + (f" (shard {args.shard} of {summary['inputs']} inputs)" if args.shard else "") + f" -> {args.output_dir}")
    if references is not None:
        scored = summary["scored"]
        if "per" in summary:
            print(f"PER {summary['per']:.2f} (sil not scored; {summary['per_with_sil']:.2f} with sil) over {scored} "
                  f"file(s) with a reference")
        elif "wer" in summary:
            print(f"WER {summary['wer']:.2f}  CER {summary['cer']:.2f} over {scored} file(s) with a reference")
        else:
            print(f"sew-transcribe: warning: no transcribed file has a reference in {args.references} (ids are the "
                  f"output paths without extension)", file=sys.stderr)
    for s in summary["skipped"]:
        print(f"sew-transcribe: skipped {s['error']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
