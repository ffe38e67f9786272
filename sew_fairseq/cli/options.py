"""Command-line options that several commands share, declared once: the CTC decoder (``--decoder``, ``--lexicon``,
``--lm``, beam options), early exit (``--early-exit``, ``--exit-threshold``), the inference backend (``--backend``,
``--dtype``, ``--calibration``, ``--onnx-cache``, ``--onnx``), ``--device`` and ``--shard K/N``.

    add_decoder_arguments(parser); add_early_exit_arguments(parser); add_backend_arguments(parser)
    problem = check_decoder_arguments(args) or check_early_exit_arguments(args) or check_backend_arguments(args)
    backend_problem(e)                # an UnsupportedBackend of the engine, in the flags' words
    decoder = decoder_from_arguments(args, dictionary)
    rule = exit_rule_from_arguments(args)                                           # None without --early-exit
    engine_options(args, prog)        # {backend, dtype, onnx_cache, onnx_model, calibration}: load_engine's keywords
    add_shard_argument(parser)        # args.shard: a Shard (None without --shard); files = args.shard.select(files)
    return cli_error("sew-infer", problem, 2)   # prints "sew-infer: error: ..." as argparse does; the exit status

Every command prints its errors with :func:`cli_error` (``<prog>: error: <message>``, argparse's wording), written once
in :mod:`manifests.records` (the light layer, which cannot import this package) and re-exported here.
"""
import argparse
from typing import Dict, Optional

import torch

from manifests.records import cli_error  # noqa: F401  (re-exported: every console script's error line)

from ..engines.hardware import BACKEND_DTYPES, BACKENDS, DTYPES, UnsupportedBackend, check_backend
from ..modules.early_exit import DEFAULT_THRESHOLDS, EXIT_CRITERIA, ExitRule
from ..transcribe.files import Shard


def add_device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda (default: cuda when available)")


def parse_shard(text: str) -> Shard:
    """The argparse ``type`` of ``--shard``: ``"3/8"`` -> ``Shard(3, 8)``; a bad value is argparse's usage error
    (``<prog>: error: argument --shard: ...``, exit status 2)."""
    try:
        return Shard.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_shard_argument(p: argparse.ArgumentParser, what: str = "inputs") -> None:
    """``--shard K/N`` (``args.shard``: a :class:`~sew_fairseq.transcribe.files.Shard`, None without it)."""
    p.add_argument("--shard", type=parse_shard, metavar="K/N", default=None,
                   help=f"do part K (0 to N-1) of N: every N-th of the {what} (as listed, folders sorted) from the "
                        f"K-th, for N jobs that share the work, e.g. a Slurm array (#SBATCH --array=0-7, --shard "
                        f"$SLURM_ARRAY_TASK_ID/8); run every part with the same {what}")


def add_decoder_arguments(p: argparse.ArgumentParser, nbest: bool = False) -> None:
    g = p.add_argument_group("decoding")
    g.add_argument("--decoder", choices=["viterbi", "kenlm", "kenlm-lexfree"], default="viterbi",
                   help="viterbi = greedy; kenlm = lexicon + word LM beam search; kenlm-lexfree = letter LM "
                        "(default viterbi)")
    g.add_argument("--lexicon", help="lexicon file (WORD<TAB>W O R D |), for --decoder kenlm")
    g.add_argument("--lm", help="ARPA or KenLM binary LM: words for kenlm, letters for kenlm-lexfree")
    g.add_argument("--beam", type=int, default=50, help="beam size (default 50)")
    g.add_argument("--beam-size-token", type=int, default=None, help="tokens considered per frame (default: all)")
    g.add_argument("--beam-threshold", type=float, default=25.0, help="beam score threshold (default 25)")
    g.add_argument("--lm-weight", type=float, default=2.0, help="LM weight (default 2)")
    g.add_argument("--word-score", type=float, default=-1.0, help="word insertion score (default -1)")
    g.add_argument("--unk-score", type=float, default=float("-inf"), help="unknown-word score (default -inf)")
    g.add_argument("--sil-score", type=float, default=0.0, help="word-boundary (silence) score (default 0)")
    if nbest:
        g.add_argument("--nbest", type=int, default=1,
                       help="hypotheses per utterance written to utterances.tsv (default 1)")


def check_decoder_arguments(args: argparse.Namespace) -> Optional[str]:
    """The usage error of an inconsistent decoder choice, or None."""
    if args.decoder != "viterbi" and not args.lm:
        return f"--decoder {args.decoder} needs --lm"
    if args.decoder == "kenlm" and not args.lexicon:
        return "--decoder kenlm needs --lexicon (sew-lm lexicon makes one)"
    return None


def decoder_from_arguments(args: argparse.Namespace, dictionary, lm_weight: Optional[float] = None,
                           word_score: Optional[float] = None):
    """The decoder the options describe; ``lm_weight`` / ``word_score`` override theirs (LM weight tuning)."""
    from ..decoding import build_decoder, word_boundary_of

    nbest = getattr(args, "nbest", 1)
    if args.decoder == "viterbi":  # token by token for a phone model (sew-infer's --labels phn)
        return build_decoder("viterbi", dictionary, nbest=nbest, word_boundary=word_boundary_of(dictionary))
    opts = dict(beam=args.beam, beam_size_token=args.beam_size_token, beam_threshold=args.beam_threshold,
                lm_weight=args.lm_weight if lm_weight is None else lm_weight, sil_score=args.sil_score, nbest=nbest)
    if args.decoder == "kenlm":
        return build_decoder("kenlm", dictionary, lexicon=args.lexicon, lm=args.lm,
                             word_score=args.word_score if word_score is None else word_score,
                             unk_score=args.unk_score, **opts)
    return build_decoder("kenlm-lexfree", dictionary, lm=args.lm, **opts)


def add_early_exit_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("early exit")
    g.add_argument("--early-exit", choices=list(EXIT_CRITERIA), default=None,
                   help="early exit with a sew_ctc_early_exit checkpoint: stop at the first branch whose entropy "
                        "(mean of -p log p over frames and classes) is below, or confidence (mean max probability) "
                        "above, --exit-threshold; inputs then run one at a time")
    g.add_argument("--exit-threshold", type=float, default=None,
                   help=f"threshold of --early-exit (default: HuBERT-EE's best, entropy "
                        f"{DEFAULT_THRESHOLDS['entropy']}, confidence {DEFAULT_THRESHOLDS['confidence']})")


def check_early_exit_arguments(args: argparse.Namespace) -> Optional[str]:
    if args.exit_threshold is not None and not args.early_exit:
        return "--exit-threshold needs --early-exit entropy|confidence"
    return None


def exit_rule_from_arguments(args: argparse.Namespace) -> Optional[ExitRule]:
    """The :class:`ExitRule` of ``--early-exit`` (filling in the default threshold), or None."""
    if not args.early_exit:
        return None
    if args.exit_threshold is None:
        args.exit_threshold = DEFAULT_THRESHOLDS[args.early_exit]
    return ExitRule(args.early_exit, args.exit_threshold).check()


BACKEND_HELP = ("torch: the fairseq model (fp32; bf16 on CPUs with AVX512-BF16 / AMX and on CUDA; fp16 on CUDA); "
                "onnxruntime: its sew-convert to-onnx graph in ONNX Runtime (fp32; int8 = dynamic quantisation of "
                "the MatMul weights), exported on first use into --onnx-cache; openvino: that graph in OpenVINO on "
                "the CPU (fp32; bf16 on CPUs with AVX512-BF16 / AMX; int8 = NNCF quantisation calibrated on "
                "--calibration), in the same cache; auto: the fastest of these this machine runs (int8 only with "
                "--calibration), printed at start")


def add_backend_arguments(p: argparse.ArgumentParser, multiple: bool = False, cache: bool = True,
                          defaults=("torch", "fp32"), cache_only: bool = False) -> None:
    """``--backend`` and ``--dtype`` (one value each; ``multiple``: lists, every valid pair is run, for benchmarks;
    ``defaults``: (backend, dtype), lists with ``multiple``) and, with ``cache``, ``--onnx-cache DIR`` and, unless
    ``cache_only``, ``--onnx FILE``."""
    g = p.add_argument_group("backend")
    many = {"nargs": "+"} if multiple else {}
    backend, dtype = defaults
    if multiple:
        backend, dtype = ([v] if isinstance(v, str) else v for v in (backend, dtype))

    def shown(value) -> str:
        return " ".join(value) if isinstance(value, (list, tuple)) else str(value)

    g.add_argument("--backend", choices=BACKENDS if multiple else BACKENDS + ("auto",), default=backend, **many,
                   help=f"{BACKEND_HELP} (default {shown(backend)})")
    g.add_argument("--dtype", choices=DTYPES, default=None if not multiple else dtype, **many,
                   help=f"precision of the network: fp32, bf16 (torch, openvino), fp16 (torch) or int8 (onnxruntime, "
                        f"openvino); log-softmax and decoding are fp32 whatever it is; a dtype this machine cannot "
                        f"run is an error (default {shown(dtype)}" + ("" if multiple else "; with --backend auto: "
                                                                     "chosen too") + ")")
    if cache:
        g.add_argument("--calibration", metavar="DIR|@LIST|TSV", default=None,
                       help="openvino int8: speech to calibrate the quantisation on when the int8 model is made (a "
                            "folder, an @LIST of paths or a manifest .tsv; a few hundred utterances like the audio "
                            "to transcribe); without it int8 runs the int8 model already in the cache, and is "
                            "refused if there is none")
        g.add_argument("--onnx-cache", metavar="DIR", default=None,
                       help="onnxruntime, openvino: folder of the exported graphs and OpenVINO models (default: "
                            "onnx-cache/ beside the checkpoint; rebuilt when the checkpoint changes)")
        if not cache_only:
            g.add_argument("--onnx", metavar="FILE", dest="onnx_model", default=None,
                           help="onnxruntime: run this graph (sew-convert to-onnx CKPT FILE [--quantize int8]) instead "
                                "of the cache; checked against the checkpoint and --dtype")


def check_backend_arguments(args: argparse.Namespace) -> Optional[str]:
    """The usage error of a --backend / --dtype / --device / --early-exit / --onnx combination that no machine runs
    (:func:`sew_fairseq.engines.hardware.check_backend` without its hardware probes: this machine is asked when the
    engine is built), in the flags' words (:func:`backend_problem`), or None."""
    backend, dtype = args.backend, args.dtype
    if isinstance(backend, list) or isinstance(dtype, list):
        return None  # benchmarks: the pairs are checked one by one
    if getattr(args, "calibration", None) and not (backend == "auto" or (backend == "openvino" and dtype == "int8")):
        return "--calibration is for --backend openvino --dtype int8 (or --backend auto)"
    if backend == "auto":
        return None  # chosen among what this machine runs (engine_options)
    dtype = dtype or "fp32"
    try:
        check_backend(backend, dtype, getattr(args, "device", "cpu"),
                      early_exit=bool(getattr(args, "early_exit", None)), onnx_model=getattr(args, "onnx_model", None),
                      hardware=False)
    except UnsupportedBackend as e:
        return backend_problem(e)
    return None


def backend_problem(e: UnsupportedBackend) -> str:
    """A refusal of :func:`sew_fairseq.engines.hardware.check_backend` in the words of the command-line flags (the
    library's message names backends, dtypes and devices, not flags)."""
    if e.reason == "dtype":
        return (f"--backend {e.backend} runs --dtype {' / '.join(BACKEND_DTYPES[e.backend])}, not {e.dtype}"
                + (" (int8 runs with --backend onnxruntime or openvino)" if e.dtype == "int8" else ""))
    if e.reason == "early_exit":
        return "--early-exit needs --backend torch (an exported graph runs every layer)"
    if e.reason == "onnx_model":
        return "--onnx FILE is a graph for --backend onnxruntime"
    if e.backend is None:
        return str(e)
    return f"--backend {e.backend} --dtype {e.dtype} --device {e.device}: {e.detail}"


def engine_options(args: argparse.Namespace, prog: str = "") -> Dict[str, object]:
    """Keyword arguments of :func:`sew_fairseq.engines.load_engine` (and ``Transcriber.from_checkpoint``):
    ``--backend auto`` is resolved here (``args.backend`` / ``args.dtype`` become what it chose, printed once on
    stderr as ``<prog>: --backend auto: openvino fp32``), ``--calibration`` read
    (:func:`sew_fairseq.transcribe.read_calibration`: an InputError, a ValueError, for one that names nothing)."""
    import sys

    from ..engines import resolve_backend
    from ..transcribe.calibration import read_calibration

    calibration = read_calibration(args.calibration) if getattr(args, "calibration", None) else None
    if args.backend == "auto":
        args.backend, args.dtype = resolve_backend("auto", args.dtype, getattr(args, "device", "cpu"), calibration,
                                                   getattr(args, "early_exit", None), getattr(args, "onnx_model", None))
        print(f"{prog or 'sew-fairseq'}: --backend auto: {args.backend} {args.dtype}", file=sys.stderr)
    args.dtype = args.dtype or "fp32"
    return {"backend": args.backend, "dtype": args.dtype, "onnx_cache": getattr(args, "onnx_cache", None),
            "onnx_model": getattr(args, "onnx_model", None), "calibration": calibration}


def add_split_arguments(p: argparse.ArgumentParser, checkpoint: str = "fine-tuned CTC checkpoint",
                        split: str = "split to decode (<data>/<split>.tsv)") -> None:
    """``CHECKPOINT --data DIR --split NAME``: a checkpoint and the manifest split it runs on (``checkpoint`` and
    ``split``: what they are for in this command)."""
    p.add_argument("checkpoint", help=checkpoint)
    p.add_argument("--data", required=True,
                   help="manifest directory: <split>.tsv, its <split>.wrd (or .phn) references, dict.ltr.txt")
    p.add_argument("--split", required=True, help=split)


def add_chunking_arguments(p: argparse.ArgumentParser, chunk_seconds: Optional[float] = None) -> None:
    """``--chunk-seconds``, ``--overlap-seconds``, ``--batch-size``: how a long recording runs through the network
    (:class:`sew_fairseq.transcribe.Transcriber`), the same for every command that reads recordings;
    ``chunk_seconds``: a command's own default (sew-align's), else the Transcriber's."""
    from ..transcribe.transcriber import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS

    g = p.add_argument_group("long recordings")
    g.add_argument("--chunk-seconds", type=float, default=chunk_seconds or DEFAULT_CHUNK_SECONDS,
                   help="chunk length for long recordings (default %(default)s)")
    g.add_argument("--overlap-seconds", type=float, default=DEFAULT_OVERLAP_SECONDS,
                   help="context on each side of a chunk (default %(default)s)")
    g.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help="chunks per forward pass (default %(default)s)")
