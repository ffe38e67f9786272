"""Reading audio for inference: any file libsndfile reads, any rate, any channel count -> mono float32 at the
model's rate. No torch, no fairseq (the corpus builders and the plugin both use it).

    audio = read_audio("talk.mp3", 16000)              # Audio(samples [L] float32, source_rate, ...)
    for block in stream_audio("talk.flac", 16000):     # the same samples, block by block (constant memory)
        ...

Channels are averaged (``channel=N`` picks channel N, 0-based); other rates are resampled once with soxr
(``HQ``, as the corpus builders convert audio). A file that cannot give samples raises :class:`AudioError`,
whose ``reason`` is one of :data:`AUDIO_REASONS` and whose message names the file:

    missing      no such file
    empty        a file of 0 bytes
    unreadable   libsndfile cannot open it (not audio, an unknown format, a broken header)
    no_frames    a readable header with 0 samples
    truncated    the data ends before the header's sample count, or decoding fails half-way (lost sync)
    bad_channel  ``channel=N`` where the file has fewer channels
"""
import os
from typing import Iterator, List, NamedTuple, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

AUDIO_REASONS = ("missing", "empty", "unreadable", "no_frames", "truncated", "bad_channel")

#: File name endings searched for in a directory: the containers libsndfile 1.2 reads (WAV, FLAC, Ogg Vorbis /
#: Opus, MP3, NIST SPHERE, AIFF, AU, CAF, W64, RF64).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".sph", ".nist", ".aiff", ".aif", ".aifc",
                  ".au", ".snd", ".caf", ".w64", ".rf64")

#: Samples read per block when streaming (at the file's own rate).
BLOCK_FRAMES = 1 << 18


class AudioError(ValueError):
    """An audio file that gives no samples; ``path``, ``reason`` (see :data:`AUDIO_REASONS`), ``detail``."""

    def __init__(self, path: PathLike, reason: str, detail: str):
        self.path, self.reason, self.detail = os.fspath(path), reason, detail
        super().__init__(f"{self.path}: {detail} [{reason}]")


class AudioInfo(NamedTuple):
    """Header facts of a readable file: ``frames`` per channel at ``sample_rate``."""

    frames: int
    sample_rate: int
    channels: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


class Audio(NamedTuple):
    """Samples of one file: ``samples`` [L] float32 mono at ``sample_rate``; ``source_rate``, ``source_frames``
    and ``channels`` describe the file itself (its true duration is ``source_frames / source_rate``)."""

    samples: np.ndarray
    sample_rate: int
    source_rate: int
    source_frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.source_frames / self.source_rate


def audio_info(path: PathLike) -> AudioInfo:
    """The header of ``path`` (nothing decoded); :class:`AudioError` for a missing, empty or unreadable file or one
    without samples."""
    import soundfile as sf

    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise AudioError(path, "missing", "no such file") from None
    except OSError as e:
        raise AudioError(path, "unreadable", e.strerror or str(e)) from None
    if os.path.isdir(path):
        raise AudioError(path, "unreadable", "a directory, not an audio file")
    if size == 0:
        raise AudioError(path, "empty", "0 bytes")
    try:
        i = sf.info(path)
    except Exception as e:  # LibsndfileError / RuntimeError
        raise AudioError(path, "unreadable", _libsndfile_message(e)) from None
    if i.frames <= 0:
        raise AudioError(path, "no_frames", f"0 samples ({i.format} header, {i.samplerate} Hz)")
    return AudioInfo(int(i.frames), int(i.samplerate), int(i.channels), str(i.format))


def _libsndfile_message(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text or type(e).__name__


def stream_audio(path: PathLike, sample_rate: int, channel: Optional[int] = None,
                 block_frames: int = BLOCK_FRAMES, info: Optional[AudioInfo] = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``path`` at ``sample_rate`` (resampled with a soxr stream), in order.

    Memory does not grow with the file's length. Raises :class:`AudioError` before the first block for a file that
    cannot be opened, and when decoding fails or ends before the header's sample count (``truncated``)."""
    import soundfile as sf

    path = os.fspath(path)
    info = info or audio_info(path)
    if channel is not None and not 0 <= channel < info.channels:
        raise AudioError(path, "bad_channel", f"channel {channel} requested, the file has {info.channels} "
                                              f"(channels are numbered from 0)")
    resampler = None
    if info.sample_rate != sample_rate:
        import soxr

        resampler = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32", quality="HQ")
    read = 0
    with sf.SoundFile(path) as f:
        while True:
            try:
                block = f.read(block_frames, dtype="float32", always_2d=True)
            except Exception as e:
                raise AudioError(path, "truncated", f"decoding failed after {read} of {info.frames} samples "
                                                    f"({_libsndfile_message(e)})") from None
            last = len(block) < block_frames
            read += len(block)
            mono = block[:, channel] if channel is not None else block.mean(axis=1, dtype=np.float32)
            mono = np.ascontiguousarray(mono, dtype=np.float32)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            if len(mono):
                yield mono
            if last:
                break
    if read < info.frames:
        raise AudioError(path, "truncated", f"the data ends after {read} of the {info.frames} samples its header "
                                            f"announces")


def read_audio(path: PathLike, sample_rate: int, channel: Optional[int] = None) -> Audio:
    """The whole file as :class:`Audio` at ``sample_rate`` (see :func:`stream_audio`)."""
    info = audio_info(path)
    blocks: List[np.ndarray] = list(stream_audio(path, sample_rate, channel, info=info))
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return Audio(samples, sample_rate, info.sample_rate, info.frames, info.channels)


def find_audio_files(directory: PathLike, suffixes: Sequence[str] = AUDIO_SUFFIXES) -> List[str]:
    """Audio files below ``directory`` (recursive, symlinks followed, by name ending, case-insensitive), sorted."""
    found = []
    for root, dirs, files in os.walk(os.fspath(directory), followlinks=True):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in files if name.lower().endswith(tuple(suffixes)))
    return sorted(found)
