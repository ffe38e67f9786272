"""Inference engines: one interface, ``waves -> CTC log-probabilities``, whatever runs the network.

    from sew_fairseq.engines import load_engine
    loaded = load_engine("ckpt/checkpoint_best.pt", backend="onnxruntime", dtype="int8")
    out = loaded.engine.log_probs([wave_a, wave_b])   # 1-D float32 numpy waves at the model's rate
    out.log_probs[0]                                  # torch.Tensor [T, V] float32 (CPU), padding frames cut
    out.exit_layers                                   # early exit (torch only): the layers each wave used, else None

:class:`sew_fairseq.transcribe.Transcriber` (``sew-transcribe``),
:func:`sew_fairseq.evaluate.splits.compute_emissions` (``sew-infer``) and ``sew-bench speed`` / ``accuracy`` all run
through an :class:`Engine`:

=============== ======================== ===============================================================
backend         dtype                    what runs
=============== ======================== ===============================================================
``torch``       ``fp32``                 the fairseq model as it is (:mod:`.torch_engine`), through its
                                         :func:`~.torch_engine.forward_log_probs`
``torch``       ``bf16`` / ``fp16``      the same model prepared once (weights cast, channels-last convs)
                                         and run under ``torch.autocast``; bf16 needs a CPU with
                                         AVX512-BF16 / AMX-BF16 or a CUDA GPU, fp16 a CUDA GPU
``onnxruntime`` ``fp32`` / ``int8``      the ``sew-convert to-onnx`` graph in ONNX Runtime
                                         (:mod:`.onnx_engine`), exported on first use into a cache beside
                                         the checkpoint; int8 = dynamic quantisation of its MatMul weights;
                                         CPU, and CUDA (fp32) with onnxruntime-gpu
``openvino``    ``fp32`` / ``bf16`` /    that graph converted to an OpenVINO model (:mod:`.openvino_engine`),
                ``int8``                 in the same cache, compiled for the CPU (compiled-model cache
                                         beside it); bf16 needs AVX512-BF16 / AMX-BF16; int8 = NNCF static
                                         quantisation calibrated on audio the user gives (``calibration``)
``auto``        chosen                   the first of :data:`.hardware.AUTO_ORDER` this machine runs
                                         (:func:`.hardware.choose_backend`): int8 only with calibration
=============== ======================== ===============================================================

Whatever the dtype, the log-softmax and all decoding run in fp32. A combination the machine cannot run raises
:class:`sew_fairseq.engines.hardware.UnsupportedBackend` (a ``ValueError``) naming the dtype, the backend and what
is missing (:func:`check_backend`); nothing falls back to another precision. Early exit runs with torch only.
"""
from __future__ import annotations

import logging
from typing import Optional, Tuple

from .base import Engine, EngineOutput, LoadedEngine, Setup
from .calibration import Calibration, files_calibration, waves_calibration
from .hardware import BACKEND_DTYPES, BACKENDS, DTYPES, UnsupportedBackend, check_backend, choose_backend, cpu_bf16

__all__ = ["BACKENDS", "BACKEND_DTYPES", "DTYPES", "Calibration", "Engine", "EngineOutput", "LoadedEngine", "Setup",
           "UnsupportedBackend", "check_backend", "choose_backend", "cpu_bf16", "files_calibration", "load_engine",
           "resolve_backend", "waves_calibration"]

logger = logging.getLogger(__name__)


def resolve_backend(backend: str, dtype: Optional[str], device: str = "cpu", calibration=None, exit_rule=None,
                    onnx_model: Optional[str] = None) -> Tuple[str, str]:
    """(backend, dtype) to run: ``backend="auto"`` is :func:`choose_backend` (``dtype`` None: any, else only that
    dtype), any other backend is itself with ``dtype`` (None: fp32)."""
    if backend != "auto":
        return backend, dtype or "fp32"
    return choose_backend(device, calibration is not None, dtype, exit_rule is not None, onnx_model)


def load_engine(checkpoint: str, backend: str = "torch", dtype: Optional[str] = None, device: str = "cpu", *,
                data: Optional[str] = None, dictionary: Optional[str] = None, exit_rule=None,
                onnx_cache: Optional[str] = None, onnx_model: Optional[str] = None,
                threads: Optional[int] = None, calibration=None) -> LoadedEngine:
    """Load a fine-tuned CTC checkpoint and build its engine (see the module docstring).

    ``data`` / ``dictionary``: as :func:`sew_fairseq.checkpoints.ctc.load_ctc_model`. ``onnx_cache``: the folder of
    exported graphs and OpenVINO models (default ``<checkpoint dir>/onnx-cache``; unused by torch); ``onnx_model``:
    a ``.onnx`` to run instead (made by ``sew-convert to-onnx [--quantize int8]`` from this checkpoint).
    ``threads``: ONNX Runtime's / OpenVINO's threads. ``calibration``: audio for openvino int8 (a
    :class:`Calibration`, e.g. :func:`sew_fairseq.transcribe.read_calibration` of a folder, @LIST or manifest, or a
    list of 1-D float32 waves at 16 kHz). ``dtype`` None: fp32, or with ``backend="auto"`` (:func:`resolve_backend`)
    chosen too; the engine's ``backend`` / ``dtype`` say what it chose."""
    from ..checkpoints.ctc import load_ctc_model

    if isinstance(calibration, str):
        raise TypeError(f"calibration={calibration!r}: give sew_fairseq.transcribe.read_calibration({calibration!r}) "
                        f"(a folder, @LIST or manifest .tsv), a Calibration, or a list of waves")
    if calibration is not None and not isinstance(calibration, Calibration):
        calibration = waves_calibration(calibration)
    chosen = resolve_backend(backend, dtype, device, calibration, exit_rule, onnx_model)
    if backend == "auto":
        logger.info("backend auto: %s %s", *chosen)
    backend, dtype = chosen
    check_backend(backend, dtype, device, early_exit=exit_rule is not None, onnx_model=onnx_model)
    on = device if backend == "torch" else "cpu"  # exported graphs: the fairseq model only gives the dictionary
    model, target_dictionary, cfg = load_ctc_model(checkpoint, data, on, dictionary)
    normalize = bool(getattr(cfg.task, "normalize", False))
    if backend == "torch":
        from .torch_engine import TorchEngine

        engine: Engine = TorchEngine(model, device, dtype, normalize, exit_rule)
    elif backend == "openvino":
        from .openvino_engine import OpenVinoEngine

        engine = OpenVinoEngine.from_checkpoint(checkpoint, dtype, normalize, onnx_cache, calibration, threads)
    else:
        from .onnx_engine import OnnxRuntimeEngine

        engine = OnnxRuntimeEngine.from_checkpoint(checkpoint, device, dtype, normalize, onnx_cache, onnx_model,
                                                   len(target_dictionary), threads)
    return LoadedEngine(engine, model, target_dictionary, cfg)
