"""CTC checkpoint -> ONNX model with dynamic batch and time axes, for CPU / edge deployment.

The graph is ``source [B, L] float32 samples -> logits [B, T, V]`` (T = frames of 20 ms, V letters of the
checkpoint's dictionary, blank = id 0), the inference forward of the fine-tuned model without padding: run
one utterance, or a batch of equal lengths. The letters are stored in the model's metadata
(``letters``: the symbols joined by spaces, ``|`` = word boundary).

Export uses torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``, opset 17), which
torch 2.13 still ships and which needs only the ``onnx`` package. Length-dependent logic that eager mode
computes with Python ints (the SEW-D relative-position index, the zero padding of odd frame counts) has traced
equivalents (``torch.jit.is_tracing()`` branches in ``modules/``; SEW-D's index is computed once per forward, not in
every layer: ``modules/disentangled_attention.py``), so the graph is valid for every length;
the tests run ONNX Runtime on lengths that were not seen at export. wav2vec 2.0 and HuBERT backbones (fairseq's
``TransformerEncoder``) export without its padding of the frames to ``required_seq_len_multiple`` (exact without a
padding input: :func:`ctc_inference_model`, :func:`_traceable_fairseq_padding`).

``quantize="int8"`` then applies ONNX Runtime's dynamic quantisation (:func:`quantize_int8`): the weights of every
MatMul with a constant weight (the transformer layers' projections and feed-forwards, the CTC projection) become
int8, activations are quantised per call; the conv feature extractor stays fp32 (its ``ConvInteger`` form ran 4x
slower than the fp32 convolution here). Besides the letters, the metadata records ``sew_fairseq.dtype`` (fp32 or
int8), ``sew_fairseq.checkpoint_sha256`` (the checkpoint file it came from) and ``sew_fairseq.format``, which
:mod:`sew_fairseq.engines.onnx_engine` checks before it runs a graph.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
from typing import Dict, Optional

import torch
import torch.nn as nn

from manifests.atomic import atomic_file
from .plugin import FAIRSEQ_FAMILIES, ConversionError, build_encoder, read_plugin_checkpoint

OPSET = 17
#: version of what this module exports; cached graphs of another format are rebuilt (2: SEW-D's relative index once)
FORMAT = "2"
QUANTIZE = ("int8",)


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
    encoder = build_encoder(ckpt, checkpoint)
    if ckpt.family in FAIRSEQ_FAMILIES:
        # fairseq's TransformerEncoder pads the frames to a multiple of required_seq_len_multiple (2 by default) with
        # Python arithmetic, which the tracer would freeze at the example's length. Without a padding input the
        # padded frames are masked keys whose outputs are cut off, so the network without that padding computes
        # the same logits for every length (tests/test_convert_onnx.py checks against fairseq's model).
        encoder.encoder.required_seq_len_multiple = 1
    weight = ckpt.proj["weight"]
    proj = nn.Linear(weight.shape[1], weight.shape[0])
    proj.load_state_dict(ckpt.proj, strict=True)
    return CTCInference(encoder, proj).eval(), list(ckpt.dictionary.symbols)


@contextlib.contextmanager
def _traceable_fairseq_padding():
    """While exporting: fairseq's ``pad_to_multiple`` (called by its TransformerEncoder, which
    :func:`ctc_inference_model` sets to a multiple of 1) returns its input for a multiple of 1 without its Python
    arithmetic on the traced length (``(tsz / multiple).is_integer()`` fails on the tracer's tensor); other
    multiples go to fairseq's function. Eager fairseq returns the same (``x, 0``) for a multiple of 1."""
    from fairseq.models.wav2vec import wav2vec2

    original = wav2vec2.pad_to_multiple

    def pad_to_multiple(x, multiple, dim=-1, value=0):
        if multiple == 1:
            return x, 0
        return original(x, multiple, dim, value)

    wav2vec2.pad_to_multiple = pad_to_multiple
    try:
        yield
    finally:
        wav2vec2.pad_to_multiple = original


def file_sha256(path: str, chunk: int = 1 << 22) -> str:
    """The hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _set_metadata(proto, values: Dict[str, str]) -> None:
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    for key, value in kept + sorted(values.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(path: str) -> Dict[str, str]:
    """The metadata of an ONNX file (``letters``, ``blank``, ``sew_fairseq.*``), without loading its weights."""
    import onnx

    proto = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


class _DropPreprocessAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:  # quantize_dynamic's root-logger advice, every call
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(fp32_path: str, out: str) -> str:
    """ONNX Runtime dynamic quantisation of an exported graph (see the module docstring), written atomically."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise ConversionError(f"--quantize int8 needs onnxruntime (pip install 'sew-fairseq[onnx]'): {e}") from None
    with atomic_file(out, ".onnx") as tmp, contextlib.ExitStack() as stack:
        advice = _DropPreprocessAdvice()
        logging.getLogger().addFilter(advice)
        stack.callback(logging.getLogger().removeFilter, advice)
        quantize_dynamic(fp32_path, tmp, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
        proto = onnx.load(tmp)
        _set_metadata(proto, {"sew_fairseq.dtype": "int8"})
        onnx.save(proto, tmp)
    return out


def to_onnx(checkpoint: str, out: str, example_seconds: float = 2.0, quantize: Optional[str] = None,
            checkpoint_sha256: Optional[str] = None) -> str:
    """Export the CTC checkpoint to ``out`` (written atomically), dynamically quantised with ``quantize="int8"``;
    returns ``out``. ``checkpoint_sha256``: the checkpoint's hash if already computed (else it is)."""
    try:
        import onnx
    except ImportError as e:
        raise ConversionError(f"to-onnx needs the onnx package (pip install 'sew-fairseq[onnx]'): {e}") from None
    if quantize not in (None,) + QUANTIZE:
        raise ConversionError(f"quantize={quantize!r}: expected one of {', '.join(QUANTIZE)} (or none for fp32)")
    model, letters = ctc_inference_model(checkpoint)
    example = torch.randn(1, int(example_seconds * 16000))
    metadata = {"letters": " ".join(letters), "blank": "0", "sew_fairseq.dtype": "fp32", "sew_fairseq.format": FORMAT,
                "sew_fairseq.checkpoint_sha256": checkpoint_sha256 or file_sha256(checkpoint)}
    fp32_out = out if quantize is None else out + ".fp32.tmp"
    try:
        with atomic_file(fp32_out, ".onnx") as tmp:
            with torch.no_grad(), warnings.catch_warnings(), _traceable_fairseq_padding():
                warnings.simplefilter("ignore")  # TracerWarnings about Python values; the tests check other lengths
                torch.onnx.export(model, (example,), tmp, dynamo=False, opset_version=OPSET, input_names=["source"],
                                  output_names=["logits"], do_constant_folding=True,
                                  dynamic_axes={"source": {0: "batch", 1: "samples"},
                                                "logits": {0: "batch", 1: "frames"}})
            proto = onnx.load(tmp)
            _set_metadata(proto, metadata)
            onnx.checker.check_model(proto)
            onnx.save(proto, tmp)
        if quantize == "int8":
            quantize_int8(fp32_out, out)
    finally:
        if quantize is not None and os.path.exists(fp32_out):
            os.unlink(fp32_out)
    return out
