"""Transcribing real recordings with a fine-tuned CTC checkpoint: any audio file, any length, word timestamps.

    from sew_fairseq.transcribe import Transcriber
    tr = Transcriber.from_checkpoint("ckpt/checkpoint_best.pt", device="cpu")
    tr = Transcriber.from_checkpoint("ckpt/checkpoint_best.pt", backend="onnxruntime", dtype="int8")  # or torch bf16
    tr.labels                         # output symbols; index = column of the log-probabilities (blank "<s>" = 0)
    lp = tr.log_probs(wave, 44100)    # 1-D float32 numpy wave -> torch.Tensor [T, V] float32 log-probabilities
    t = tr.transcribe("talk.mp3")     # .text, .words (each .word .start .end .confidence, seconds), .duration

What happens to a file (``sew-transcribe`` runs the same engine):

1. Reading (:mod:`manifests.audio`): anything libsndfile reads, streamed block by block, channels averaged
   (``channel=N`` picks one), resampled once to the model's rate with soxr.
2. Chunking: a recording longer than ``chunk_seconds`` is cut into chunks of that length which overlap by
   ``overlap_seconds`` on each side (chunk starts are ``chunk - 2 * overlap`` apart and fall on a multiple of two
   frames, so the squeeze pairs frames as a pass over the whole file would). The last chunk is moved back to end
   at the file's end, so every chunk has the same length and a full context; equal-length chunks run
   ``batch_size`` at a time. Memory stays that of ``batch_size`` chunks however long the file is.
3. Stitching: where two chunks overlap, each frame is taken from the chunk in whose interior it lies (the boundary
   is the middle of the overlap), so no frame comes from within ``overlap / 2`` of a chunk's cut edge. The stitched
   log-probabilities have exactly the frames of one pass over the whole file; a file no longer than one chunk *is*
   one pass.
4. Decoding: greedy or flashlight-text + KenLM beam search (:mod:`sew_fairseq.decoding`) over the whole file's
   log-probabilities (always fp32), and word timestamps from the frame path (:mod:`sew_fairseq.decoding.timestamps`).

The forward passes go through an engine (:mod:`sew_fairseq.engines`): torch fp32 (default), bf16 or fp16, or the
exported graph in ONNX Runtime (fp32 or int8). Every engine runs the same chunks; the stitching and decoding above
do not depend on it.

Shapes: L samples, T frames (20 ms apart), V output symbols.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Iterable, List, NamedTuple, Optional, Tuple, Union

import numpy as np
import torch

from manifests.audio import AudioError, AudioInfo, audio_info, stream_audio

from .chunking import Chunk, Stitcher, check_stitch_rule, chunk_stream

#: Chunking defaults, chosen from `sew-bench longform` sweeps on demo models trained apart (README, "Transcribing"):
#: 6 s chunks with 1.6 s of context on each side (2.8 s kept from each), handed over in a pause both chunks hear
#: (``blank``). Against 12 s / middle: lower WER on every model and nearly every recording (these models were
#: fine-tuned on 1.5-4 s utterances and degrade on longer context), for about 1.6x the forward compute.
DEFAULT_CHUNK_SECONDS = 6.0
DEFAULT_OVERLAP_SECONDS = 1.6
DEFAULT_BATCH_SIZE = 4
#: where overlapping chunks hand over (:class:`~.chunking.Stitcher`)
DEFAULT_STITCH = "blank"


class Emissions(NamedTuple):
    """A recording's log-probabilities [T, V] (float32, frames ``frame_seconds`` apart) and where they came from."""

    log_probs: torch.Tensor
    duration: float  # seconds of the original recording
    audio: Optional[str]  # its path (None for a wave given in memory)
    sample_rate: Optional[int]  # the recording's own rate
    channels: Optional[int]
    forward_seconds: float
    chunks: int
    exit_layers: List[int]


class Word(NamedTuple):
    """A recognised word: ``start`` / ``end`` in seconds of the original recording, ``confidence`` in [0, 1]."""

    word: str
    start: float
    end: float
    confidence: float


@dataclass
class Transcript:
    """What :meth:`Transcriber.transcribe` returns for one recording."""

    text: str
    words: List[Word]
    duration: float  # seconds of the original recording
    audio: Optional[str] = None  # its path (None for a wave given in memory)
    sample_rate: Optional[int] = None  # the recording's own rate
    channels: Optional[int] = None
    forward_seconds: float = 0.0  # model forward passes only
    decode_seconds: float = 0.0
    chunks: int = 1
    exit_layers: List[int] = field(default_factory=list)  # early exit: the layers each chunk used

    def to_dict(self) -> dict:
        d = {"audio": self.audio, "duration": round(self.duration, 6), "text": self.text,
             "words": [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                        "confidence": round(w.confidence, 4)} for w in self.words],
             "sample_rate": self.sample_rate, "channels": self.channels, "chunks": self.chunks,
             "forward_seconds": round(self.forward_seconds, 4), "decode_seconds": round(self.decode_seconds, 4)}
        if self.exit_layers:
            d["exit_layers"] = self.exit_layers
        return d


def _frame_stride(model) -> int:
    """Samples between two output frames: the product of the conv feature extractor's strides (320 for every
    wav2vec 2.0 / SEW front end)."""
    w2v = getattr(getattr(model, "w2v_encoder", None), "w2v_model", None)
    layers = getattr(w2v, "feature_extractor", None)
    strides = []
    for block in getattr(layers, "conv_layers", []):
        conv = next((m for m in block.modules() if isinstance(m, torch.nn.Conv1d)), None)
        if conv is not None:
            strides.append(conv.stride[0])
    return int(np.prod(strides)) if strides else 320


def _squeeze_factor(model) -> int:
    w2v = getattr(getattr(model, "w2v_encoder", None), "w2v_model", None)
    return int(getattr(getattr(w2v, "encoder", None), "squeeze_factor", 1) or 1)


class Transcriber:
    """A fine-tuned CTC model, its output symbols, a decoder and the chunking settings (see the module docstring).

    Args:
        model: a loaded fairseq CTC model in eval mode (``sew_ctc``, ``sew_ctc_early_exit``, ``wav2vec_ctc``).
        dictionary: its fairseq output dictionary (blank ``<s>``, word boundary ``|``).
        sample_rate: the model's rate (16000); inputs at other rates are resampled to it.
        normalize: zero-mean, unit-variance input per chunk (the checkpoint's ``task.normalize``).
        decoder: a :class:`sew_fairseq.decoding.CTCDecoder`, or a function of ``dictionary`` that makes one
            (default: greedy).
        exit_rule: early exit (a ``sew_ctc_early_exit`` model); chunks then run one at a time.
        stitch: where two overlapping chunks hand over: ``middle`` of the overlap or a shared ``blank`` run
            (:class:`~.chunking.Stitcher`).
        engine: what runs the forward passes (:mod:`sew_fairseq.engines`; it carries the device, ``normalize`` and
            the early exit rule, so ``device``, ``normalize`` and ``exit_rule`` given with it raise ValueError);
            default: the torch fp32 engine of ``model`` with ``normalize``, ``device`` and ``exit_rule``.
    """

    def __init__(self, model, dictionary, *, sample_rate: int = 16000, normalize: bool = False, device: str = "cpu",
                 chunk_seconds: float = DEFAULT_CHUNK_SECONDS, overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
                 batch_size: int = DEFAULT_BATCH_SIZE, decoder=None, exit_rule=None, engine=None,
                 stitch: str = DEFAULT_STITCH):
        from ..decoding import build_decoder, word_boundary_of
        from ..engines.torch_engine import engine_for

        self.engine = engine = engine_for(model if engine is None else engine, device, normalize, exit_rule,
                                          "Transcriber")
        self.model, self.dictionary, self.device = model, dictionary, engine.device
        self.sample_rate, self.normalize = sample_rate, engine.normalize
        if decoder is None:  # greedy; token by token for a dictionary without word boundaries (phones)
            decoder = build_decoder("viterbi", dictionary, word_boundary=word_boundary_of(dictionary))
        self.decoder = decoder(dictionary) if callable(decoder) and not hasattr(decoder, "decode") else decoder
        self.exit_rule = engine.exit_rule
        if self.exit_rule is not None:
            batch_size = 1
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.stitch = check_stitch_rule(stitch)
        self.frame_stride = _frame_stride(model)
        self.align = self.frame_stride * _squeeze_factor(model)
        self.chunk = int(round(chunk_seconds * sample_rate / self.align)) * self.align
        self.overlap = int(round(overlap_seconds * sample_rate / self.align)) * self.align
        if self.overlap <= 0 or self.chunk - 2 * self.overlap <= 0:
            raise ValueError(f"need 0 < overlap and 2 x overlap < chunk: chunk {chunk_seconds} s, overlap "
                             f"{overlap_seconds} s (in steps of {self.align / sample_rate:g} s)")

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu", dictionary: Optional[str] = None, *,
                        backend: str = "torch", dtype: Optional[str] = None, exit_rule=None,
                        onnx_cache: Optional[str] = None, onnx_model: Optional[str] = None,
                        threads: Optional[int] = None, calibration=None, **kwargs) -> "Transcriber":
        """Load a fine-tuned fairseq CTC checkpoint; its output dictionary is inside it (``dictionary``: the path of
        a ``dict.ltr.txt`` for one without). ``backend`` (torch, onnxruntime, openvino, auto) and ``dtype`` (fp32,
        bf16, fp16, int8; None with auto: chosen) choose the engine, ``onnx_cache`` / ``onnx_model`` / ``threads``
        configure the exported graphs, ``calibration`` (a folder, ``@LIST`` or manifest ``.tsv`` as on the command
        line, its :func:`.calibration.read_calibration`, or 1-D float32 waves at 16 kHz) is the audio openvino int8
        is calibrated on
        (see :func:`sew_fairseq.engines.load_engine`); a combination this machine cannot run raises ValueError.
        ``kwargs`` go to the constructor."""
        from ..checkpoints.ctc import sample_rate
        from ..engines import load_engine
        from .calibration import read_calibration

        if isinstance(calibration, str):
            calibration = read_calibration(calibration)
        loaded = load_engine(path, backend, dtype, device, dictionary=dictionary, exit_rule=exit_rule,
                             onnx_cache=onnx_cache, onnx_model=onnx_model, threads=threads, calibration=calibration)
        return cls(loaded.model, loaded.dictionary, sample_rate=sample_rate(loaded.cfg), engine=loaded.engine,
                   **kwargs)

    @property
    def labels(self) -> List[str]:
        """The output symbols: column i of the log-probabilities is ``labels[i]``."""
        return list(self.dictionary.symbols)

    @property
    def frame_seconds(self) -> float:
        return self.frame_stride / self.sample_rate

    # -- emissions ---------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def _emissions(self, blocks: Iterable[np.ndarray], source: str = "<wave>"
                   ) -> Tuple[torch.Tensor, float, int, List[int]]:
        """(log-probs [T, V], forward seconds, chunks, exit layers) of a stream of sample blocks at the model's
        rate; ``source`` names it in errors."""
        stitcher = Stitcher(self.stitch, blank=self.dictionary.bos())
        chunks = 0
        exits: List[int] = []
        seconds = 0.0
        batch: List[Chunk] = []

        def run() -> None:
            nonlocal seconds, chunks
            start = time.perf_counter()
            lps, layers = self.engine.log_probs([c.samples for c in batch])
            seconds += time.perf_counter() - start
            for c, lp in zip(batch, lps):
                stitcher.add(c.start // self.frame_stride, lp)
            chunks += len(batch)
            exits.extend(layer for layer in layers if layer is not None)
            batch.clear()

        for chunk in chunk_stream(blocks, self.chunk, self.overlap, self.align):
            if len(chunk.samples) < 400:  # shorter than the front end's receptive field (25 ms at 16 kHz)
                raise AudioError(source, "too_short", f"{len(chunk.samples)} samples at {self.sample_rate} Hz: "
                                                      f"too short for the model (at least 400, 25 ms)")
            batch.append(chunk)
            if len(batch) == self.batch_size:
                run()
        if batch:
            run()
        if not chunks:
            raise AudioError(source, "no_frames", "no samples")
        return stitcher.finish(), seconds, chunks, exits

    def _blocks_of_wave(self, wave: np.ndarray, sample_rate: int) -> List[np.ndarray]:
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"expected a 1-D wave (samples,), found shape {list(wave.shape)}; average or pick "
                             f"the channels first")
        if sample_rate != self.sample_rate:
            import soxr

            wave = soxr.resample(wave, sample_rate, self.sample_rate, quality="HQ").astype(np.float32)
        return [wave]

    def log_probs(self, wave: np.ndarray, sample_rate: int) -> torch.Tensor:
        """[T, V] float32 CTC log-probabilities of a 1-D float32 wave at ``sample_rate`` (resampled, chunked)."""
        return self._emissions(self._blocks_of_wave(wave, sample_rate))[0]

    # -- transcripts -------------------------------------------------------------------------------------------
    def decode(self, log_probs: torch.Tensor) -> Tuple[str, List[Word]]:
        """(text, words with times) of a recording's log-probabilities [T, V]."""
        hyp = self.decoder.decode(log_probs.unsqueeze(0))[0][0]
        timings = self.decoder.word_timings(hyp, log_probs)
        fs = self.frame_seconds
        words = [Word(w.word, w.start_frame * fs, w.end_frame * fs, w.confidence) for w in timings]
        return hyp.text, words

    def emissions(self, audio: Union[str, "os.PathLike[str]", np.ndarray], sample_rate: Optional[int] = None,
                  channel: Optional[int] = None, info: Optional[AudioInfo] = None) -> "Emissions":
        """The log-probabilities of a file (any format, rate, channels: see :mod:`manifests.audio`) or of a 1-D wave
        at ``sample_rate``, with what :class:`Transcript` reports of the reading and the forward passes. Raises
        :class:`manifests.audio.AudioError` for a file that gives no samples."""
        if isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise ValueError("a wave needs its sample_rate")
            blocks: Iterable[np.ndarray] = self._blocks_of_wave(audio, sample_rate)
            path, duration, rate, channels = None, len(audio) / sample_rate, sample_rate, 1
        else:
            path = os.fspath(audio)
            info = info or audio_info(path)
            blocks = stream_audio(path, self.sample_rate, channel, info=info)
            duration, rate, channels = info.duration, info.sample_rate, info.channels
        log_probs, forward_s, chunks, exits = self._emissions(blocks, path or "<wave>")
        return Emissions(log_probs, duration, path, rate, channels, forward_s, chunks, exits)

    def transcribe(self, audio: Union[str, "os.PathLike[str]", np.ndarray], sample_rate: Optional[int] = None,
                   channel: Optional[int] = None, info: Optional[AudioInfo] = None) -> Transcript:
        """Transcribe a file (any format, rate, channels: see :mod:`manifests.audio`) or a 1-D wave at
        ``sample_rate``. Raises :class:`manifests.audio.AudioError` for a file that gives no samples."""
        e = self.emissions(audio, sample_rate, channel, info)
        start = time.perf_counter()
        text, words = self.decode(e.log_probs)
        decode_s = time.perf_counter() - start
        return Transcript(text, words, e.duration, e.audio, e.sample_rate, e.channels, e.forward_seconds, decode_s,
                          e.chunks, e.exit_layers)
