"""``sew-convert``: checkpoints between this plugin, the original SEW release, Hugging Face transformers, ONNX and
OpenVINO.

    sew-convert from-original sew-d-mid-400k.pt sew_d_mid.pt                       # pretrained release checkpoint
    sew-convert from-original sew-d-mid-400k-ft-100h.pt sew_d_mid_100h.pt \\
        --w2v-config sew-d-mid-400k.pt --dict manifests/dict.ltr.txt               # fine-tuned release checkpoint
    sew-convert from-hf ./sew-d-tiny-100k-ft-ls100h sew_d_tiny_100h.pt             # save_pretrained directory
    sew-convert from-hf ./hubert-large-ls960-ft hubert_large_960h.pt               # also Wav2Vec2 / Hubert (ForCTC)
    sew-convert to-hf ckpt/checkpoint_best.pt ./my-sew-d-ctc                       # AutoModelForCTC, AutoProcessor
    sew-convert to-onnx ckpt/checkpoint_best.pt sew_d.onnx                         # CTC model, dynamic batch and time
    sew-convert to-onnx ckpt/checkpoint_best.pt sew_d_int8.onnx --quantize int8    # MatMul weights int8 (dynamic)
    sew-convert to-openvino ckpt/checkpoint_best.pt                                # OpenVINO model, in the cache
    sew-convert to-openvino ckpt/checkpoint_best.pt --quantize int8 --calibration corpus/train.tsv   # NNCF int8

Every sub-command checks names and shapes before it writes, exits non-zero with the list of what does not
match, and writes its output atomically (nothing is left behind on failure). Checkpoints are read with the
allow-list loader (sew_fairseq.checkpoints.safe_load.safe_load): a pickle that would run code is refused.
"""
import argparse
import logging
import sys
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sew-convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    o = sub.add_parser("from-original", help="original SEW release checkpoint -> plugin checkpoint",
                       description="Convert a checkpoint of the original release (asappresearch/sew): pretrained "
                                   "(squeeze_wav2vec2 / squeeze_wav2vec2_deberta) or fine-tuned (wav2vec_ctc_v2). "
                                   "Fine-tuned release checkpoints lack their pretrained config: give --w2v-config "
                                   "or --preset. Example: sew-convert from-original sew-d-mid-400k.pt out.pt")
    o.add_argument("checkpoint", help="release checkpoint (.pt)")
    o.add_argument("out", help="plugin checkpoint to write (.pt)")
    o.add_argument("--w2v-config", help="pretrained config of a fine-tuned checkpoint: the pretrained .pt, or a "
                                        "yaml/json of its cfg (or cfg.model)")
    o.add_argument("--preset", help="pretrained config of a fine-tuned checkpoint as a preset name (e.g. sew_d_mid)")
    o.add_argument("--dict", dest="dictionary", help="dict.ltr.txt of a fine-tuned checkpoint whose task_state "
                                                     "lacks the dictionary (overrides the checkpoint's)")

    f = sub.add_parser("from-hf", help="transformers SEW/SEW-D/wav2vec 2.0/HuBERT directory -> plugin checkpoint",
                       description="Convert a directory written by transformers' SEWModel, SEWDModel, Wav2Vec2Model, "
                                   "HubertModel or their *ForCTC (save_pretrained) into a checkpoint that fairseq's "
                                   "load_model_ensemble_and_task, sew-infer and the early-exit recipes load "
                                   "(wav2vec 2.0 and HuBERT become fairseq's own wav2vec2 / hubert models). "
                                   "Example: sew-convert from-hf ./sew-d-tiny-100k-ft-ls100h out.pt")
    f.add_argument("hf_dir", help="directory with config.json and model.safetensors / pytorch_model.bin")
    f.add_argument("out", help="plugin checkpoint to write (.pt)")
    f.add_argument("--dict", dest="dictionary", help="dict.ltr.txt for a CTC model without vocab.json")

    t = sub.add_parser("to-hf", help="plugin checkpoint -> transformers directory (with processor files)",
                       description="Convert a plugin checkpoint (sew / sew_d / wav2vec2 / hubert pretrained, or "
                                   "sew_ctc, fairseq wav2vec_ctc / hubert_ctc fine-tuned) into a directory that "
                                   "transformers.AutoModel / AutoModelForCTC and AutoProcessor load. "
                                   "Example: sew-convert to-hf ckpt/checkpoint_best.pt ./my-sew-d")
    t.add_argument("checkpoint", help="plugin checkpoint (.pt)")
    t.add_argument("out_dir", help="directory to write (replaced if it exists)")

    x = sub.add_parser("to-onnx", help="plugin CTC checkpoint -> ONNX (dynamic batch and time)",
                       description="Export a fine-tuned SEW / SEW-D CTC checkpoint to ONNX: input 'source' "
                                   "[batch, samples] float32 16 kHz, output 'logits' [batch, frames, letters] "
                                   "(blank = 0). "
                                   "Example: sew-convert to-onnx ckpt/checkpoint_best.pt model.onnx")
    x.add_argument("checkpoint", help="fine-tuned CTC checkpoint (.pt)")
    x.add_argument("out", help="ONNX file to write")
    x.add_argument("--quantize", choices=["int8"], default=None,
                   help="int8: ONNX Runtime dynamic quantisation (MatMul weights int8, activations quantised per "
                        "call; the conv front end stays fp32); what --backend onnxruntime --dtype int8 runs")
    v = sub.add_parser("to-openvino", help="plugin CTC checkpoint -> OpenVINO model in its cache (fp32, or int8 "
                                           "calibrated with NNCF)",
                       description="Make the OpenVINO model that --backend openvino runs, in the cache beside the "
                                   "checkpoint (onnx-cache/, or --onnx-cache), and compile it once into OpenVINO's "
                                   "compiled-model cache, so that the first sew-transcribe / sew-infer run starts "
                                   "fast. int8: NNCF post-training quantisation calibrated on --calibration (later "
                                   "runs with --dtype int8 need no --calibration). Example: sew-convert to-openvino "
                                   "ckpt/checkpoint_best.pt --quantize int8 --calibration corpus/train.tsv")
    v.add_argument("checkpoint", help="fine-tuned CTC checkpoint (.pt)")
    v.add_argument("--dtype", choices=["fp32", "bf16", "int8"], default=None,
                   help="the precision to compile for (default fp32, or int8 with --quantize int8); bf16 needs a CPU "
                        "with AVX512-BF16 / AMX-BF16")
    v.add_argument("--quantize", choices=["int8"], default=None, help="int8: the same as --dtype int8")
    v.add_argument("--calibration", metavar="DIR|@LIST|TSV", default=None,
                   help="int8: speech to calibrate on (a folder, an @LIST of paths or a manifest .tsv)")
    v.add_argument("--onnx-cache", metavar="DIR", default=None,
                   help="the cache folder (default: onnx-cache/ beside the checkpoint)")
    return p


def to_openvino(args: argparse.Namespace) -> str:
    """``sew-convert to-openvino``: the engine of ``--backend openvino --dtype D`` built once (its model made and
    compiled into the caches); returns the model's path."""
    from ..engines import load_engine
    from ..transcribe.calibration import read_calibration

    if args.quantize and args.dtype not in (None, "int8"):
        raise ValueError(f"--quantize int8 makes an int8 model, not --dtype {args.dtype}")
    dtype = "int8" if args.quantize else (args.dtype or "fp32")
    if dtype == "int8" and not args.calibration:
        raise ValueError("--quantize int8 needs --calibration DIR|@LIST|TSV: speech to calibrate the int8 model on")
    if dtype != "int8" and args.calibration:
        raise ValueError("--calibration is for --quantize int8")
    calibration = read_calibration(args.calibration) if args.calibration else None
    engine = load_engine(args.checkpoint, "openvino", dtype, onnx_cache=args.onnx_cache,
                         calibration=calibration).engine
    s = engine.setup
    print(f"{'reused' if s.reused else 'made'} {dtype}: export {s.export_seconds:.1f} s, quantise "
          f"{s.quantize_seconds:.1f} s, compile {s.session_seconds:.2f} s")
    return engine.path


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s:%(lineno)d %(message)s")
    from ..checkpoints.safe_load import CheckpointLoadError
    from ..checkpoints.plugin import ConversionError
    from ..engines import UnsupportedBackend
    from .options import backend_problem, cli_error

    try:
        if args.command == "from-original":
            from ..checkpoints.original import from_original

            out = from_original(args.checkpoint, args.out, args.w2v_config, args.preset, args.dictionary)
        elif args.command == "from-hf":
            from ..checkpoints.hf import from_hf

            out = from_hf(args.hf_dir, args.out, args.dictionary)
        elif args.command == "to-hf":
            from ..checkpoints.hf import to_hf

            out = to_hf(args.checkpoint, args.out_dir)
        elif args.command == "to-openvino":
            out = to_openvino(args)
        else:
            from ..checkpoints.onnx import to_onnx

            out = to_onnx(args.checkpoint, args.out, quantize=args.quantize)
    except UnsupportedBackend as e:
        return cli_error("sew-convert", backend_problem(e))
    except (ConversionError, CheckpointLoadError, ValueError, OSError) as e:
        return cli_error("sew-convert", e)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
