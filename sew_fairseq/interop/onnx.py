"""CTC checkpoint -> ONNX model with dynamic batch and time axes, for CPU / edge deployment.

The graph is ``source [B, L] float32 samples -> logits [B, T, V]`` (T = frames of 20 ms, V letters of the
checkpoint's dictionary, blank = id 0), the inference forward of the fine-tuned model without padding: run
one utterance, or a batch of equal lengths. The letters are stored in the model's metadata
(``letters``: the symbols joined by spaces, ``|`` = word boundary).

Export uses torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``, opset 17), which
torch 2.13 still ships and which needs only the ``onnx`` package. Length-dependent logic that eager mode
computes with Python ints (the SEW-D relative-position index, the zero padding of odd frame counts) has traced
equivalents (``torch.jit.is_tracing()`` branches in ``modules/``), so the graph is valid for every length;
the tests run ONNX Runtime on lengths that were not seen at export.
"""
from __future__ import annotations

import logging
import warnings

import torch
import torch.nn as nn

from manifests.atomic import atomic_file
from .common import FAIRSEQ_FAMILIES, ConversionError, build_encoder, read_plugin_checkpoint

logger = logging.getLogger(__name__)

OPSET = 17


class CTCInference(nn.Module):
    """Pretrained encoder + output projection: source [B, L] -> logits [B, T, V] (fairseq's ``Wav2VecCtc`` in eval)."""

    def __init__(self, encoder: nn.Module, proj: nn.Linear):
        super().__init__()
        self.encoder = encoder
        self.proj = proj

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        x = self.encoder.extract_features(source, None)["x"]  # [B, T, D]
        return self.proj(x)  # [B, T, V]


def ctc_inference_model(checkpoint: str):
    """(CTCInference in eval mode, letters) of a plugin CTC checkpoint."""
    ckpt = read_plugin_checkpoint(checkpoint)
    if ckpt.proj is None:
        raise ConversionError(f"{checkpoint}: a pretrained model (no CTC output layer); to-onnx needs a fine-tuned "
                              f"CTC checkpoint")
    if ckpt.family in FAIRSEQ_FAMILIES:
        raise ConversionError(f"{checkpoint}: a {ckpt.family} backbone (fairseq's TransformerEncoder), which torch's "
                              f"tracer cannot export for every length (fairseq's pad_to_multiple computes with Python "
                              f"numbers); to-onnx exports SEW and SEW-D models. `sew-convert to-hf` gives the "
                              f"transformers model, which has its own ONNX exporters")
    encoder = build_encoder(ckpt, checkpoint)
    weight = ckpt.proj["weight"]
    proj = nn.Linear(weight.shape[1], weight.shape[0])
    proj.load_state_dict(ckpt.proj, strict=True)
    return CTCInference(encoder, proj).eval(), list(ckpt.dictionary.symbols)


def to_onnx(checkpoint: str, out: str, example_seconds: float = 2.0) -> str:
    """Export the CTC checkpoint to ``out`` (written atomically); returns ``out``."""
    try:
        import onnx
    except ImportError as e:
        raise ConversionError(f"to-onnx needs the onnx package (pip install 'sew-fairseq[onnx]'): {e}") from None
    model, letters = ctc_inference_model(checkpoint)
    example = torch.randn(1, int(example_seconds * 16000))
    with atomic_file(out, ".onnx") as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about Python values; the tests check other lengths
            torch.onnx.export(model, (example,), tmp, dynamo=False, opset_version=OPSET, input_names=["source"],
                              output_names=["logits"], do_constant_folding=True,
                              dynamic_axes={"source": {0: "batch", 1: "samples"}, "logits": {0: "batch", 1: "frames"}})
        proto = onnx.load(tmp)
        entry = proto.metadata_props.add()
        entry.key, entry.value = "letters", " ".join(letters)
        entry = proto.metadata_props.add()
        entry.key, entry.value = "blank", "0"
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
    return out
