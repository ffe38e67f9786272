"""Calibration audio for post-training int8 quantisation (``backend="openvino", dtype="int8"``): what it is called in
the cache, and its waves, read only when a model is quantised.

    calibration = files_calibration(["a.flac", "b.wav"])     # sew_fairseq.transcribe.read_calibration: DIR/@LIST/.tsv
    calibration = waves_calibration([wave_a, wave_b])        # 1-D float32 numpy waves at 16 kHz
    calibration.key                                          # 16 hex digits: the int8 model's name in the cache
    for wave in calibration.waves(): ...                     # [L] float32, at most MAX_SECONDS each

The key of a file list is the SHA-256 of each file's absolute path, size and modification time (not its samples:
a second start does not read the audio); the key of waves is the SHA-256 of their samples. Another calibration
set gives another int8 model.
"""
from __future__ import annotations

import hashlib
import os
from typing import Callable, Iterator, List, NamedTuple, Sequence

import numpy as np

from manifests.audio import SAMPLE_RATE

#: each calibration recording is cut to its first MAX_SECONDS (the chunk length sew-transcribe runs is 30 s or less)
MAX_SECONDS = 20.0


class Calibration(NamedTuple):
    key: str  # 16 hex digits naming the calibrated model in the cache
    size: int  # number of waves
    description: str  # what it is, for messages ("12 files of calib/")
    read: Callable[[], Iterator[np.ndarray]]  # the waves [L] float32 at 16 kHz, read on demand

    def waves(self) -> Iterator[np.ndarray]:
        """The waves, each cut to :data:`MAX_SECONDS`; a file that cannot be read raises ValueError naming it."""
        limit = int(MAX_SECONDS * SAMPLE_RATE)
        for wave in self.read():
            yield np.ascontiguousarray(wave[:limit], dtype=np.float32)


def waves_calibration(waves: Sequence[np.ndarray], description: str = "") -> Calibration:
    """A calibration set of waves already in memory (1-D float32 at 16 kHz)."""
    if not len(waves):
        raise ValueError("the calibration set is empty: give at least one wave")
    h = hashlib.sha256()
    for w in waves:
        h.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
        h.update(b"|")
    stored: List[np.ndarray] = list(waves)
    return Calibration(h.hexdigest()[:16], len(stored), description or f"{len(stored)} waves",
                       lambda: iter(stored))


def files_calibration(paths: Sequence[str], description: str = "") -> Calibration:
    """A calibration set of audio files (any rate and channels: read as sew-transcribe reads them, mono 16 kHz).
    A path that does not exist is a ValueError naming it (here); one that cannot be decoded, when it is read."""
    from manifests.audio import AudioError, read_audio, split_zip_slice

    if not paths:
        raise ValueError("the calibration set is empty: give at least one audio file")
    h = hashlib.sha256()
    for path in paths:
        on_disk = split_zip_slice(path)[0]
        try:
            st = os.stat(on_disk)
        except OSError as e:
            raise ValueError(f"calibration audio {path}: {e.strerror}") from None
        h.update(f"{os.path.abspath(path)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())

    def read() -> Iterator[np.ndarray]:
        for path in paths:
            try:
                yield read_audio(path, SAMPLE_RATE, end=MAX_SECONDS).samples
            except AudioError as e:
                raise ValueError(f"calibration audio {path}: {e.detail}") from None

    return Calibration(h.hexdigest()[:16], len(paths), description or f"{len(paths)} files", read)
