"""The onnxruntime backend: the checkpoint's ONNX graph (``sew-convert to-onnx``) in ONNX Runtime, fp32 or int8.

The graph is exported on first use into a cache (:func:`cached_onnx`), or read from a ``.onnx`` given by the user.

Cache: ``<checkpoint dir>/onnx-cache/`` (or ``onnx_cache=DIR``) holds ``<checkpoint stem>.<key>.<dtype>.onnx``, where
``key`` is the first 16 hex digits of the SHA-256 of the checkpoint file's bytes and of this package's export format
(:data:`sew_fairseq.checkpoints.onnx.FORMAT`). A checkpoint that changes (re-trained, replaced) gets a new key and a new
export; the graphs of its old key are deleted then. Hashing reads the whole file once per load (about 0.1 s per
100 MB here). int8 is quantised from the cached fp32 graph (exported first if absent), so both share one export.

Running: one ``InferenceSession`` with graph optimisation ``ORT_ENABLE_ALL`` (fusions: LayerNorm, GELU with its
bias, skip-LayerNorm, ...), ``intra_op_num_threads`` = torch's thread count unless ``threads`` is given, one
inter-op thread, sequential execution, and no spinning of idle threads (see :func:`_session`). The graph has no
padding input: equal lengths run as one batch (:class:`sew_fairseq.engines.base.GraphEngine`).
"""
from __future__ import annotations

import logging
import os
import re
import time
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch

from .base import GraphEngine, Setup
from .hardware import UnsupportedBackend, check_backend

logger = logging.getLogger(__name__)

CACHE_DIR = "onnx-cache"


class CachedGraph(NamedTuple):
    path: str
    setup: Setup


def cache_key(checkpoint: str, sha256: Optional[str] = None) -> str:
    """16 hex digits naming the checkpoint's graphs: its bytes and the export format."""
    import hashlib

    from ..checkpoints.onnx import FORMAT, OPSET, file_sha256

    digest = sha256 or file_sha256(checkpoint)
    return hashlib.sha256(f"{digest} opset {OPSET} format {FORMAT}".encode()).hexdigest()[:16]


def cache_folder(checkpoint: str, cache_dir: Optional[str] = None) -> Tuple[str, bool]:
    """(the cache folder of a checkpoint's exported models, made if absent; whether it was made now): ``cache_dir``,
    or ``<checkpoint dir>/onnx-cache``. A folder that cannot be made is a ValueError naming it."""
    folder = cache_dir or os.path.join(os.path.dirname(os.path.abspath(checkpoint)), CACHE_DIR)
    created = not os.path.isdir(folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create the ONNX cache {folder} ({e.strerror}): give a writable cache folder "
                         f"(onnx_cache)") from None
    return folder, created


def remove_stale(folder: str, checkpoint: str, key: str) -> None:
    """Delete the cached models of earlier versions of ``checkpoint`` (``<stem>.<other key>.<kind>.<ext>``: ONNX
    graphs and OpenVINO models) from ``folder``."""
    stem = os.path.splitext(os.path.basename(checkpoint))[0]
    mine = re.compile(re.escape(stem) + r"\.([0-9a-f]{16})\.(fp32|int8)(-[0-9a-f]{16})?\.(onnx|xml|bin)")
    for old in os.listdir(folder):
        match = mine.fullmatch(old)
        if match and match.group(1) != key:  # a model of an earlier version of this checkpoint
            logger.info("removing the stale cached model %s", old)
            os.unlink(os.path.join(folder, old))


def cached_onnx(checkpoint: str, dtype: str = "fp32", cache_dir: Optional[str] = None,
                sha256: Optional[str] = None) -> CachedGraph:
    """The path of the checkpoint's ``dtype`` graph in the cache, exported (and quantised) first if absent, and
    how long that took (:class:`sew_fairseq.engines.base.Setup`). ``sha256``: the checkpoint's, if already known."""
    from ..checkpoints.onnx import file_sha256, quantize_int8, to_onnx

    start = time.perf_counter()
    sha = sha256 or file_sha256(checkpoint)
    key = cache_key(checkpoint, sha)
    hash_s = time.perf_counter() - start
    folder, created = cache_folder(checkpoint, cache_dir)
    stem = os.path.splitext(os.path.basename(checkpoint))[0]

    def name(kind: str) -> str:
        return os.path.join(folder, f"{stem}.{key}.{kind}.onnx")

    target = name(dtype)
    if os.path.isfile(target):
        return CachedGraph(target, Setup(hash_seconds=hash_s, reused=True, path=target))
    fp32 = name("fp32")
    export_s = quantize_s = 0.0
    if not os.path.isfile(fp32):
        logger.info("exporting %s to %s", checkpoint, fp32)
        t = time.perf_counter()
        try:
            to_onnx(checkpoint, fp32, checkpoint_sha256=sha)
        except BaseException:
            if created and not os.listdir(folder):  # leave no empty cache behind a checkpoint that cannot export
                os.rmdir(folder)
            raise
        export_s = time.perf_counter() - t
    if dtype == "int8":
        t = time.perf_counter()
        quantize_int8(fp32, target)
        quantize_s = time.perf_counter() - t
    remove_stale(folder, checkpoint, key)
    return CachedGraph(target, Setup(hash_seconds=hash_s, export_seconds=export_s, quantize_seconds=quantize_s,
                                     reused=False, path=target))


def check_graph(path: str, dtype: str, vocab_size: Optional[int] = None, checkpoint: Optional[str] = None) -> None:
    """Raise ValueError unless the ONNX file at ``path`` is a ``dtype`` graph of ``checkpoint`` (when its metadata
    says where it came from) with ``vocab_size`` outputs."""
    from ..checkpoints.onnx import file_sha256, read_metadata

    if not os.path.isfile(path):
        raise FileNotFoundError(f"ONNX model {path} does not exist")
    meta = read_metadata(path)
    stored = meta.get("sew_fairseq.dtype", "fp32")  # graphs exported before the metadata existed are fp32
    if stored != dtype:
        raise ValueError(f"{path} is a {stored} graph, not {dtype}: run it with dtype {stored}, or make a {dtype} one "
                         f"with `sew-convert to-onnx CKPT OUT" + (" --quantize int8`" if dtype == "int8" else "`"))
    letters = meta.get("letters", "").split(" ")
    if vocab_size is not None and meta.get("letters") and len(letters) != vocab_size:
        raise ValueError(f"{path} outputs {len(letters)} symbols, the checkpoint's dictionary has {vocab_size}: "
                         f"it was exported from another model")
    sha = meta.get("sew_fairseq.checkpoint_sha256")
    if checkpoint is not None and sha and sha != file_sha256(checkpoint):
        raise ValueError(f"{path} was exported from another checkpoint than {checkpoint} (SHA-256 {sha[:12]}... "
                         f"recorded in its metadata): re-export it with sew-convert to-onnx, or leave out onnx_model "
                         f"to use the cache")


def _session(path: str, device: str, threads: Optional[int]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # idle intra-op threads sleep instead of spinning: spinning ones kept both cores busy after each run, which
    # slowed the next torch forward in the process by 20 % (transformers fp32, SEW-tiny 11 s: 179 vs 149 ms) and a
    # second session by the same (int8 after fp32: 99 vs 82 ms), while a session alone was no faster with them
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initialisers and such go to our logger, not stderr
    if torch.device(device).type == "cuda":
        index = torch.device(device).index or 0
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    session = ort.InferenceSession(path, options, providers=providers)
    if torch.device(device).type == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
        raise UnsupportedBackend(f"onnxruntime did not start its CUDA provider for {path} (providers "
                                 f"{session.get_providers()}): check the CUDA / cuDNN libraries onnxruntime-gpu needs")
    return session


class OnnxRuntimeEngine(GraphEngine):
    """A graph of :func:`sew_fairseq.checkpoints.onnx.to_onnx` in ONNX Runtime (see the module docstring).

    Args:
        path: the ``.onnx`` file (``logits [B, T, V]`` of ``source [B, L]``).
        device, dtype: ``cpu`` or ``cuda[:N]``; ``fp32`` or ``int8`` (what the graph is; checked).
        normalize: zero mean, unit variance per wave (the checkpoint's ``task.normalize``).
        threads: ONNX Runtime's intra-op threads (default: ``torch.get_num_threads()``).
    """

    backend = "onnxruntime"

    def __init__(self, path: str, device: str = "cpu", dtype: str = "fp32", normalize: bool = False,
                 threads: Optional[int] = None, setup: Optional[Setup] = None):
        check_backend("onnxruntime", dtype, device)
        super().__init__(dtype, device, normalize, setup)
        self.path = path
        start = time.perf_counter()
        self.session = _session(path, device, threads)
        self.setup = self.setup._replace(session_seconds=time.perf_counter() - start, path=path)

    @classmethod
    def from_checkpoint(cls, checkpoint: str, device: str = "cpu", dtype: str = "fp32", normalize: bool = False,
                        onnx_cache: Optional[str] = None, onnx_model: Optional[str] = None,
                        vocab_size: Optional[int] = None, threads: Optional[int] = None) -> "OnnxRuntimeEngine":
        """The engine of a checkpoint: ``onnx_model`` (a ``.onnx`` of ``sew-convert to-onnx``, checked against
        the checkpoint and ``dtype``), or the cached graph (exported on first use)."""
        check_backend("onnxruntime", dtype, device)
        if onnx_model is not None:
            check_graph(onnx_model, dtype, vocab_size, checkpoint)
            return cls(onnx_model, device, dtype, normalize, threads, Setup(reused=True, path=onnx_model))
        graph = cached_onnx(checkpoint, dtype, onnx_cache)
        return cls(graph.path, device, dtype, normalize, threads, graph.setup)

    def run(self, source: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"source": source})[0]  # [b, T, V]
