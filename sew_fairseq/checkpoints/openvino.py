"""ONNX graph of ``sew-convert to-onnx`` -> OpenVINO model (IR: ``.xml`` + ``.bin``), fp32 or int8 quantised with
NNCF on calibration audio.

The OpenVINO model is converted from the exported ONNX graph (``openvino.convert_model``), so it has the same
dynamic batch and time axes and the same letters (kept in its ``rt_info`` as ``sew_fairseq``: ``letters``,
``dtype``, ``checkpoint_sha256``, ``format``, ``calibration``).

int8 (:func:`quantize_int8_openvino`) is NNCF's post-training static quantisation (``nncf.quantize``): activation
ranges from the calibration waves, weights int8, FastBiasCorrection, with the settings that kept accuracy on the
demo model (docs/speed.md, 40 held-out utterances; torch fp32 55.47 % greedy WER):

================================================== ============
NNCF settings                                      greedy WER
================================================== ============
defaults (``ModelType`` none, preset PERFORMANCE)  69.06 %
``model_type=TRANSFORMER``                         59.62 %
``TRANSFORMER``, preset MIXED                      59.62 %
``TRANSFORMER``, convolutions kept fp32 (chosen)   54.72 %
the same and the upsampling projection kept fp32   55.09 %
================================================== ============

The convolutions (the wave feature extractor and the positional convolution) stay fp32: quantising the first ones
moved the log-probabilities by up to 13 (0.69 without).
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterable

import numpy as np

from manifests.atomic import atomic_files
from .plugin import ConversionError, optional_package

logger = logging.getLogger(__name__)

#: version of what this module writes; cached models of another format are rebuilt
FORMAT = "1"
#: NNCF's calibration samples at most (its default subset size)
SUBSET_SIZE = 300


def _openvino():
    return optional_package("openvino", "OpenVINO models need the openvino package", "openvino")


def metadata(model) -> Dict[str, str]:
    """The ``sew_fairseq`` entries of an OpenVINO model's ``rt_info`` (empty for a model without them)."""
    if not model.has_rt_info(["sew_fairseq"]):
        return {}
    return {key: model.get_rt_info(["sew_fairseq", key]).astype(str) for key in model.get_rt_info()["sew_fairseq"]}


def _save(model, out: str, values: Dict[str, str]) -> str:
    """``model`` with ``values`` in its rt_info, written atomically to ``out`` (.xml) and its ``.bin``."""
    ov = _openvino()
    for key, value in values.items():
        model.set_rt_info(value, ["sew_fairseq", key])
    with atomic_files([out[:-4] + ".bin", out]) as (bin_, xml):  # the .xml last: its presence marks a whole model
        written = xml[:-4] + ".bin"  # save_model names the weights after the .xml
        try:
            ov.save_model(model, xml, compress_to_fp16=False)
            os.replace(written, bin_)
        finally:
            if os.path.exists(written):
                os.unlink(written)
    return out


def onnx_to_openvino(onnx_path: str, out: str) -> str:
    """Convert an exported ONNX graph (fp32) to an OpenVINO model ``out`` (``.xml``; weights in ``.bin``, fp32)."""
    from .onnx import read_metadata

    if not out.endswith(".xml"):
        raise ConversionError(f"{out}: an OpenVINO model is written as NAME.xml (and NAME.bin)")
    meta = read_metadata(onnx_path)
    if meta.get("sew_fairseq.dtype", "fp32") != "fp32":
        raise ConversionError(f"{onnx_path} is a {meta['sew_fairseq.dtype']} graph: convert the fp32 export")
    model = _openvino().convert_model(onnx_path)
    values = {"letters": meta.get("letters", ""), "dtype": "fp32", "format": FORMAT,
              "checkpoint_sha256": meta.get("sew_fairseq.checkpoint_sha256", "")}
    return _save(model, out, values)


def quantize_int8_openvino(fp32_xml: str, out: str, waves: Iterable[np.ndarray], calibration_key: str = "",
                           subset_size: int = SUBSET_SIZE) -> str:
    """NNCF static int8 of the fp32 OpenVINO model ``fp32_xml`` (see the module docstring), calibrated on ``waves``
    (1-D float32, the model's input as it runs it: normalised already for a normalising checkpoint), to ``out``."""
    ov = _openvino()
    try:
        import nncf
    except ImportError as e:
        raise ConversionError(f"int8 OpenVINO models need nncf (pip install 'sew-fairseq[openvino]'): {e}") from None
    model = ov.Core().read_model(fp32_xml)
    meta = metadata(model)
    items = [np.ascontiguousarray(w, dtype=np.float32)[None] for w in waves]  # [1, L] each
    if not items:
        raise ConversionError("the calibration set gave no audio")
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)  # its INFO lines list every node it leaves alone
    try:
        quantized = nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                                  ignored_scope=nncf.IgnoredScope(types=["Convolution"]),
                                  subset_size=min(subset_size, len(items)))
    finally:
        nncf_logger.setLevel(level)
    return _save(quantized, out, {**meta, "dtype": "int8", "calibration": calibration_key})


def read_openvino_metadata(path: str) -> Dict[str, str]:
    """The ``sew_fairseq`` rt_info of the OpenVINO model at ``path`` (``.xml``)."""
    return metadata(_openvino().Core().read_model(path))
