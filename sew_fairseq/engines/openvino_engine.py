"""The openvino backend: the checkpoint's OpenVINO model on the CPU, fp32, bf16 or int8.

Cache: the folder of the ONNX graphs (``<checkpoint dir>/onnx-cache/``, or ``onnx_cache=DIR``; the same key:
:func:`sew_fairseq.engines.onnx_engine.cache_key` of the checkpoint's bytes) holds

* ``<stem>.<key>.fp32.xml`` / ``.bin``: the fp32 model, converted from the cached ``<stem>.<key>.fp32.onnx``
  (exported first if absent; :func:`sew_fairseq.checkpoints.openvino.onnx_to_openvino`); fp32 and bf16 run it;
* ``<stem>.<key>.int8-<calibration key>.xml`` / ``.bin``: NNCF's static int8 of it, calibrated on the audio given
  (:mod:`.calibration`; :func:`sew_fairseq.checkpoints.openvino.quantize_int8_openvino`). One per checkpoint: a
  new calibration set replaces it. int8 without calibration runs the int8 model in the cache (made by
  ``sew-convert to-openvino CKPT --quantize int8 --calibration ...`` or an earlier run with calibration) and is
  refused when there is none: NNCF needs activation ranges, and ranges from anything but speech (NNCF's defaults
  on random input) are what raised the demo's WER;
* ``openvino-compiled/``: OpenVINO's compiled-model cache (``CACHE_DIR``): a second start loads the compiled
  model instead of compiling it.

A checkpoint that changes gets a new key; the models of its old key are deleted then (as the ONNX graphs are).

Running: ``core.compile_model`` on the CPU with ``INFERENCE_PRECISION_HINT`` set explicitly (``f32`` for fp32 and
int8: OpenVINO would pick bf16 by itself on a CPU with AMX; ``bf16`` for bf16, which :func:`check_backend` allows
only on a CPU with AVX512-BF16 / AMX-BF16), ``PERFORMANCE_HINT`` ``LATENCY`` and ``INFERENCE_NUM_THREADS`` = torch's
thread count unless ``threads`` is given. Batching and the fp32 log-softmax: :class:`.base.GraphEngine`.
"""
from __future__ import annotations

import glob
import logging
import os
import time
from typing import NamedTuple, Optional

import numpy as np
import torch

from .base import GraphEngine, Setup, normalized
from .calibration import Calibration
from .hardware import check_backend

logger = logging.getLogger(__name__)

COMPILED_DIR = "openvino-compiled"
#: OpenVINO's INFERENCE_PRECISION_HINT per dtype (int8: the layers NNCF left unquantised run fp32)
PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def precision_of(compiled) -> str:
    """The ``INFERENCE_PRECISION_HINT`` a compiled OpenVINO model runs with: ``f32``, ``bf16``, ..."""
    value = compiled.get_property("INFERENCE_PRECISION_HINT")
    return value.to_string() if hasattr(value, "to_string") else str(value)


class CachedModel(NamedTuple):
    path: str  # the .xml
    setup: Setup


def cached_openvino(checkpoint: str, dtype: str = "fp32", cache_dir: Optional[str] = None,
                    calibration: Optional[Calibration] = None, normalize: bool = False) -> CachedModel:
    """The checkpoint's OpenVINO model for ``dtype`` in the cache (see the module docstring), made first if absent;
    ``normalize``: the calibration waves are normalised as the engine normalises its input."""
    from ..checkpoints.onnx import file_sha256
    from ..checkpoints.openvino import onnx_to_openvino, quantize_int8_openvino
    from .onnx_engine import cache_folder, cache_key, cached_onnx, remove_stale

    start = time.perf_counter()
    sha = file_sha256(checkpoint)
    key = cache_key(checkpoint, sha)
    hash_s = time.perf_counter() - start
    folder, _ = cache_folder(checkpoint, cache_dir)
    base = os.path.join(folder, f"{os.path.splitext(os.path.basename(checkpoint))[0]}.{key}")
    fp32 = base + ".fp32.xml"
    if dtype == "int8":
        if calibration is None:
            found = sorted(glob.glob(glob.escape(base) + ".int8-*.xml"), key=os.path.getmtime)
            if not found:
                raise ValueError(f"int8 with backend openvino needs calibration audio the first time (a folder, "
                                 f"@LIST or manifest .tsv of speech like the audio to transcribe): no int8 model of "
                                 f"{checkpoint} in {folder}")
            return CachedModel(found[-1], Setup(hash_seconds=hash_s, reused=True, path=found[-1]))
        target = f"{base}.int8-{calibration.key}.xml"
    else:
        target = fp32
    if os.path.isfile(target):
        return CachedModel(target, Setup(hash_seconds=hash_s, reused=True, path=target))
    export_s = quantize_s = 0.0
    if not os.path.isfile(fp32):
        graph = cached_onnx(checkpoint, "fp32", folder, sha256=sha)
        t = time.perf_counter()
        onnx_to_openvino(graph.path, fp32)
        export_s = graph.setup.export_seconds + time.perf_counter() - t
    if dtype == "int8":
        assert calibration is not None
        logger.info("quantising %s to int8 on %s", checkpoint, calibration.description)
        t = time.perf_counter()
        waves = calibration.waves()
        if normalize:
            waves = (normalized(torch.from_numpy(w)).numpy() for w in waves)
        quantize_int8_openvino(fp32, target, waves, calibration.key)
        quantize_s = time.perf_counter() - t
        for old in glob.glob(glob.escape(base) + ".int8-*.xml"):  # one int8 model per checkpoint
            if old != target:
                for path in (old, old[:-4] + ".bin"):
                    if os.path.exists(path):
                        os.unlink(path)
    remove_stale(folder, checkpoint, key)
    return CachedModel(target, Setup(hash_seconds=hash_s, export_seconds=export_s, quantize_seconds=quantize_s,
                                     reused=False, path=target))


class OpenVinoEngine(GraphEngine):
    """An OpenVINO model of :func:`cached_openvino` compiled for the CPU (see the module docstring).

    Args:
        path: the ``.xml`` (``logits [B, T, V]`` of ``source [B, L]``).
        dtype: ``fp32`` / ``bf16`` (an fp32 model, run at that precision) or ``int8`` (an int8 model).
        normalize: zero mean, unit variance per wave (the checkpoint's ``task.normalize``).
        threads: OpenVINO's inference threads (default: ``torch.get_num_threads()``).
        compiled_cache: OpenVINO's CACHE_DIR (default ``openvino-compiled/`` beside the model; "" for none).
    """

    backend = "openvino"

    def __init__(self, path: str, dtype: str = "fp32", normalize: bool = False, threads: Optional[int] = None,
                 setup: Optional[Setup] = None, compiled_cache: Optional[str] = None):
        check_backend("openvino", dtype, "cpu")
        import openvino as ov

        super().__init__(dtype, "cpu", normalize, setup)
        self.path = path
        config = {"INFERENCE_PRECISION_HINT": PRECISION[dtype], "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads())}
        if compiled_cache is None:
            compiled_cache = os.path.join(os.path.dirname(os.path.abspath(path)), COMPILED_DIR)
        if compiled_cache:
            config["CACHE_DIR"] = compiled_cache
        start = time.perf_counter()
        self.compiled = ov.Core().compile_model(path, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.setup = self.setup._replace(session_seconds=time.perf_counter() - start, path=path)

    @property
    def precision(self) -> str:
        """The inference precision OpenVINO runs (``f32``, ``bf16``: what it was told; checked by the tests)."""
        return precision_of(self.compiled)

    @classmethod
    def from_checkpoint(cls, checkpoint: str, dtype: str = "fp32", normalize: bool = False,
                        onnx_cache: Optional[str] = None, calibration: Optional[Calibration] = None,
                        threads: Optional[int] = None) -> "OpenVinoEngine":
        """The engine of a checkpoint: its cached OpenVINO model (made on first use)."""
        check_backend("openvino", dtype, "cpu")
        model = cached_openvino(checkpoint, dtype, onnx_cache, calibration, normalize)
        return cls(model.path, dtype, normalize, threads, model.setup)

    def run(self, source: np.ndarray) -> np.ndarray:
        self.request.infer({0: source})
        return self.request.get_output_tensor(0).data.copy()  # [b, T, V]; the request's buffer is reused
