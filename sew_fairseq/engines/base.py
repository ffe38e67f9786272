"""What every inference engine is: :class:`Engine` (``waves -> CTC log-probabilities``), its output, what
preparing it cost, and the input normalisation all engines share."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch


def normalized(wave: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the samples [L] (fairseq's ``task.normalize``: ``F.layer_norm`` over the whole
    wave, as its audio datasets do); every engine prepares a wave of a normalising checkpoint with this."""
    return torch.nn.functional.layer_norm(wave, wave.shape)


class Setup(NamedTuple):
    """What preparing an engine cost (seconds), for benchmarks; all 0 for the torch backend."""

    hash_seconds: float = 0.0  # SHA-256 of the checkpoint (the ONNX cache key)
    export_seconds: float = 0.0  # torch -> ONNX export (-> OpenVINO); 0 when the model came from the cache or a file
    quantize_seconds: float = 0.0  # int8 quantisation (onnxruntime: dynamic; openvino: NNCF with calibration)
    session_seconds: float = 0.0  # creating the ONNX Runtime session / compiling the OpenVINO model
    reused: bool = True  # nothing was exported or quantised
    path: Optional[str] = None  # the ONNX graph run


class EngineOutput(NamedTuple):
    log_probs: List[torch.Tensor]  # per wave [T_i, V] float32 on the CPU
    exit_layers: List[Optional[int]]  # per wave: backbone layers used with early exit, else None


class Engine:
    """Runs a CTC network: :meth:`log_probs` of a batch of waves. Subclasses: :class:`.torch_engine.TorchEngine`,
    :class:`.onnx_engine.OnnxRuntimeEngine`, :class:`.openvino_engine.OpenVinoEngine`."""

    backend = ""
    exit_rule = None

    def __init__(self, dtype: str, device: str, normalize: bool, setup: Optional[Setup] = None):
        self.dtype, self.device, self.normalize = dtype, device, normalize
        self.setup = setup or Setup()

    @property
    def name(self) -> str:
        return f"{self.backend} {self.dtype}"

    def log_probs(self, waves: Sequence[np.ndarray]) -> EngineOutput:
        """CTC log-probabilities of 1-D float32 waves (any lengths; each wave gets what it gets alone)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, device={self.device})"


class GraphEngine(Engine):
    """An engine that runs an exported graph without a padding input (ONNX Runtime, OpenVINO): waves of equal
    length run as one batch (the chunks of long-form inference are equal-length), waves of other lengths in their
    own batches, so each wave gets what it gets alone, as the torch backend's padded batches do. Logits come back
    as fp32; the log-softmax is computed in fp32 torch. Subclasses give :meth:`run`."""

    def run(self, source: np.ndarray) -> np.ndarray:
        """logits [b, T, V] of source [b, L] float32 (normalised already where the checkpoint normalises)."""
        raise NotImplementedError

    def log_probs(self, waves: Sequence[np.ndarray]) -> EngineOutput:
        groups: Dict[int, List[int]] = defaultdict(list)  # length -> indices: equal lengths run as one batch
        for i, w in enumerate(waves):
            groups[len(w)].append(i)
        result: List[Optional[torch.Tensor]] = [None] * len(waves)
        for indices in groups.values():
            source = np.stack([self.prepare(waves[i]) for i in indices])  # [b, L]
            log_probs = torch.log_softmax(torch.from_numpy(np.asarray(self.run(source))).float(), dim=-1)
            for row, i in enumerate(indices):
                result[i] = log_probs[row].contiguous()
        return EngineOutput([r for r in result if r is not None], [None] * len(waves))

    def prepare(self, wave: np.ndarray) -> np.ndarray:
        """The graph's input [L] float32 of a wave: normalised for a normalising checkpoint."""
        w = np.asarray(wave, dtype=np.float32)
        if self.normalize:
            w = normalized(torch.from_numpy(w)).numpy()
        return w


class LoadedEngine(NamedTuple):
    engine: Engine
    model: Any  # the fairseq model (for the torch backend: the one the engine runs; reduced precision: prepared)
    dictionary: Any  # its fairseq output dictionary
    cfg: Any  # the checkpoint's config
