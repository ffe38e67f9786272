"""Audio files for the whole project: probing headers, reading any file libsndfile reads (any rate, any channel
count -> mono float32 at the wanted rate), converting and writing FLAC. No torch, no fairseq: the corpus builders,
the plugin's manifest check, ``sew-infer`` and ``sew-transcribe`` all use it.

    info = audio_info("a.flac")                        # AudioInfo(frames, sample_rate, channels, format), or AudioError
    probe = probe_audio("a.flac", 16000, channels=1)   # Probe(num_samples, reason, detail): never raises
    audio = read_audio("talk.mp3", 16000)              # Audio(samples [L] float32, source_rate, ...)
    for block in stream_audio("talk.flac", 16000):     # the same samples, block by block (constant memory)
        ...
    convert_audio("talk.sph", "talk.flac", start=1.5, end=7.0)   # 16-bit mono FLAC at 16 kHz, atomic, idempotent

Channels are averaged (``channel=N`` picks channel N, 0-based); other rates are resampled once with soxr
(``HQ``, as the corpus builders convert audio). A file that cannot give samples raises :class:`AudioError`,
whose ``reason`` is one of :data:`AUDIO_REASONS` (the bad-audio list, with a hint for each, is
:data:`manifests.records.AUDIO_HINTS`) and whose message names the file. This module raises:

    missing      no such file
    empty        a file of 0 bytes
    unreadable   libsndfile cannot open it (not audio, an unknown format, a broken header)
    no_frames    a readable header with 0 samples
    truncated    the data ends before the header's sample count, or decoding fails half-way (lost sync)
    bad_channel  ``channel=N`` where the file has fewer channels

:func:`probe_audio` adds, against an expected format, ``wrong_rate`` and ``wrong_channels``. A path of the form
``archive.zip:offset:length`` is read as fairseq reads it: ``length`` bytes at ``offset`` of an uncompressed zip
(:func:`read_zip_slice`; ``sew-manifest pack`` writes such manifests).
"""
import io
import os
import struct
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .atomic import atomic_file
from .records import AUDIO_REASONS, PathLike  # noqa: F401  (AUDIO_REASONS: AudioError's reasons, read here)

SAMPLE_RATE = 16000
#: fairseq's parse_path treats paths with these endings as plain files, others may be ``archive.zip:offset:length``
PLAIN_SUFFIXES = (".npy", ".wav", ".flac", ".ogg")

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


def split_zip_slice(path: str) -> Tuple[str, Optional[Tuple[int, int]]]:
    """``archive.zip:123:456`` -> (``archive.zip``, (123, 456)); other paths -> (path, None)."""
    if os.path.splitext(path)[1] in PLAIN_SUFFIXES:
        return path, None
    parts = path.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], (int(parts[1]), int(parts[2]))
    return path, None


#: the first bytes fairseq's ``is_sf_audio_data`` accepts in a zip slice: WAV (``RIF``), FLAC (``fLa``), Ogg (``Ogg``)
ZIP_AUDIO_MAGIC = (b"RIF", b"fLa", b"Ogg")


def read_zip_slice(path: str, file_path: str, zip_slice: Tuple[int, int]) -> bytes:
    """The bytes ``path`` (``archive.zip:offset:length``, split by :func:`split_zip_slice` into ``file_path`` and
    ``zip_slice``) names, checked as fairseq's ``FileAudioDataset`` needs them; :class:`AudioError` otherwise."""
    offset, length = zip_slice
    if ":" in file_path:
        raise AudioError(path, "unreadable", "fairseq splits a path at every ':' (parse_path): the archive's path may "
                                             "not contain one")
    try:
        with open(file_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            data = f.read(length)
    except FileNotFoundError:
        raise AudioError(path, "missing", "no such file") from None
    except OSError as e:
        raise AudioError(path, "unreadable", e.strerror or str(e)) from None
    if length == 0:
        raise AudioError(path, "empty", "0 bytes")
    if offset + length > size:
        raise AudioError(path, "truncated", f"the slice ends at byte {offset + length}, the archive has {size}")
    if data[:3] not in ZIP_AUDIO_MAGIC:
        raise AudioError(path, "unreadable", f"the bytes at offset {offset} are not WAV, FLAC or Ogg data, which "
                                             f"fairseq requires (the offset must point at a stored member's data, "
                                             f"after its local header)")
    return data


def flac_streaminfo(path: str) -> Optional[Tuple[int, int, int]]:
    """``(sample_rate, channels, total_samples)`` from a FLAC file's STREAMINFO, or None if not plain FLAC.

    Reads 42 bytes (a header read by libsndfile costs far more on a million files). None when the file does not
    start with ``fLaC`` + a plausible STREAMINFO (e.g. an ID3 tag first, or garbage) or when the total is unknown
    (0): then ask libsndfile.
    """
    with open(path, "rb") as f:
        head = f.read(42)
    # "fLaC", then a metadata block header: type 0 (STREAMINFO), length 34
    if len(head) < 42 or head[:4] != b"fLaC" or (head[4] & 0x7F) != 0 or head[5:8] != b"\x00\x00\x22":
        return None
    min_block, max_block = struct.unpack(">HH", head[8:12])
    # STREAMINFO: bytes 18..25 of the block = rate(20) channels-1(3) bps-1(5) total(36)
    (packed,) = struct.unpack(">Q", head[18:26])
    rate = packed >> 44
    channels = ((packed >> 41) & 0x7) + 1
    total = packed & 0xFFFFFFFFF
    bps = ((packed >> 36) & 0x1F) + 1
    if total == 0 or not 1 <= rate <= 655350 or bps < 4 or min_block < 16 or max_block < min_block:
        return None  # unknown length or an implausible header: let libsndfile judge
    return rate, channels, total


def wav_shortfall(path: str) -> Optional[Tuple[int, int]]:
    """``(bytes the data chunk announces, bytes the file holds after it)`` of a RIFF/WAVE file cut short, else None
    (not a WAV file, a whole one, or a data size left unknown by a streaming writer: 0 or 0xFFFFFFFF).

    libsndfile opens a cut WAV file and reports the frames that are there, so the cut is only seen here."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        order = "little" if head[:4] == b"RIFF" else "big"
        size = os.fstat(f.fileno()).st_size
        pos = 12
        while pos + 8 <= size:  # chunks: 4-byte id, 4-byte size, data padded to an even length
            f.seek(pos)
            chunk = f.read(8)
            declared = int.from_bytes(chunk[4:], order)
            if chunk[:4] == b"data":
                available = size - pos - 8
                unknown = declared in (0, 0xFFFFFFFF)
                return None if unknown or declared <= available else (declared, available)
            pos += 8 + declared + (declared & 1)
    return None


def audio_info(path: PathLike) -> AudioInfo:
    """The header of ``path`` (nothing decoded; a FLAC file's STREAMINFO read directly); :class:`AudioError` for a
    missing, empty or unreadable file or one without samples."""
    import soundfile as sf

    path = os.fspath(path)
    file_path, zip_slice = split_zip_slice(path)
    try:
        size = os.path.getsize(file_path)
    except FileNotFoundError:
        raise AudioError(path, "missing", "no such file") from None
    except OSError as e:
        raise AudioError(path, "unreadable", e.strerror or str(e)) from None
    if os.path.isdir(file_path):
        raise AudioError(path, "unreadable", "a directory, not an audio file")
    if size == 0 and zip_slice is None:
        raise AudioError(path, "empty", "0 bytes")
    source: Union[str, io.BytesIO] = file_path
    if zip_slice is not None:
        source = io.BytesIO(read_zip_slice(path, file_path, zip_slice))
    try:
        if zip_slice is None and path.lower().endswith(".flac"):
            fast = flac_streaminfo(path)
            if fast is not None:
                return AudioInfo(fast[2], fast[0], fast[1], "FLAC")
        i = sf.info(source)
    except Exception as e:  # LibsndfileError / RuntimeError / OSError
        raise AudioError(path, "unreadable", _libsndfile_message(e)) from None
    if i.frames <= 0:
        raise AudioError(path, "no_frames", f"0 samples ({i.format} header, {i.samplerate} Hz)")
    short = wav_shortfall(file_path) if zip_slice is None and i.format in ("WAV", "WAVEX") else None
    if short is not None:
        raise AudioError(path, "truncated", f"the WAV data chunk announces {short[0]} bytes, the file holds "
                                            f"{short[1]} after it")
    return AudioInfo(int(i.frames), int(i.samplerate), int(i.channels), str(i.format))


class Probe(NamedTuple):
    """Result of :func:`probe_audio`: ``reason`` None = a good file of ``num_samples`` samples (per channel)."""

    num_samples: int
    reason: Optional[str] = None
    detail: str = ""


def probe_audio(path: PathLike, sample_rate: Optional[int] = SAMPLE_RATE, channels: Optional[int] = 1) -> Probe:
    """Check a file's header against the expected ``sample_rate`` and ``channels`` (None: any); never raises for a
    bad file. Reasons: those of :class:`AudioError`, then ``wrong_channels``, ``wrong_rate``."""
    try:
        info = audio_info(path)
    except AudioError as e:
        return Probe(0, e.reason, e.detail)
    if channels is not None and info.channels != channels:
        return Probe(info.frames, "wrong_channels", f"{info.channels} channels, expected {channels}")
    if sample_rate is not None and info.sample_rate != sample_rate:
        return Probe(info.frames, "wrong_rate", f"{info.sample_rate} Hz, expected {sample_rate}")
    return Probe(info.frames, None, "")


def _libsndfile_message(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text or type(e).__name__


def stream_audio(path: PathLike, sample_rate: int, channel: Optional[int] = None,
                 block_frames: int = BLOCK_FRAMES, info: Optional[AudioInfo] = None, start: Optional[float] = None,
                 end: Optional[float] = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``path`` (``[start, end)`` seconds of it, if given) at ``sample_rate`` (resampled with
    a soxr stream), in order.

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
    first = max(0, int(round(start * info.sample_rate))) if start is not None else 0
    last = min(info.frames, int(round(end * info.sample_rate))) if end is not None else info.frames
    read, expected = 0, max(0, last - first)
    file_path, zip_slice = split_zip_slice(path)
    source = io.BytesIO(read_zip_slice(path, file_path, zip_slice)) if zip_slice is not None else path
    try:  # the header was read, but the decoder can still refuse the file (e.g. a FLAC cut inside its metadata)
        f = sf.SoundFile(source)
    except Exception as e:  # LibsndfileError / RuntimeError / OSError
        raise AudioError(path, "unreadable", _libsndfile_message(e) or "the decoder cannot open it") from None
    with f:
        if first:
            try:
                f.seek(first)
            except Exception as e:
                raise AudioError(path, "truncated", f"cannot seek to sample {first} of {info.frames} "
                                                    f"({_libsndfile_message(e)})") from None
        while True:
            try:
                block = f.read(min(block_frames, expected - read), dtype="float32", always_2d=True)
            except Exception as e:
                raise AudioError(path, "truncated", f"decoding failed after {first + read} of {info.frames} samples "
                                                    f"({_libsndfile_message(e)})") from None
            read += len(block)
            done = len(block) == 0 or read >= expected
            mono = block[:, channel] if channel is not None else block.mean(axis=1, dtype=np.float32)
            mono = np.ascontiguousarray(mono, dtype=np.float32)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=done)
            if len(mono):
                yield mono
            if done:
                break
    if read < expected:
        raise AudioError(path, "truncated", f"the data ends after {first + read} of the {info.frames} samples its "
                                            f"header announces")


def read_audio(path: PathLike, sample_rate: int, channel: Optional[int] = None, start: Optional[float] = None,
               end: Optional[float] = None, info: Optional[AudioInfo] = None) -> Audio:
    """The file (or ``[start, end)`` seconds of it) as :class:`Audio` at ``sample_rate`` (see :func:`stream_audio`);
    ``info``: its header, when the caller has read it already."""
    info = info or audio_info(path)
    blocks: List[np.ndarray] = list(stream_audio(path, sample_rate, channel, info=info, start=start, end=end))
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return Audio(samples, sample_rate, info.sample_rate, info.frames, info.channels)


def find_audio_files(directory: PathLike, suffixes: Sequence[str] = AUDIO_SUFFIXES) -> List[str]:
    """Audio files below ``directory`` (recursive, symlinks followed, by name ending, case-insensitive), sorted."""
    found = []
    for root, dirs, files in os.walk(os.fspath(directory), followlinks=True):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in files if name.lower().endswith(tuple(suffixes)))
    return sorted(found)


# ------------------------------------------------------------------------------------------------- writing


def _existing_frames(path: str) -> Optional[int]:
    """Frames of an already written, readable audio file (idempotent re-runs), else None (absent or broken)."""
    try:
        return audio_info(path).frames if os.path.exists(path) else None
    except AudioError:
        return None  # a broken leftover: write it again


def write_flac(dst: PathLike, samples, sample_rate: int = SAMPLE_RATE, overwrite: bool = False) -> int:
    """Write mono ``samples`` (float, clipped to [-1, 1]) as 16-bit FLAC atomically; an existing readable ``dst``
    is kept unless ``overwrite``. Returns the samples in ``dst``."""
    import soundfile as sf

    dst = os.fspath(dst)
    done = None if overwrite else _existing_frames(dst)
    if done is not None:
        return done
    with atomic_file(dst, ".flac") as tmp:
        sf.write(tmp, np.clip(samples, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return len(samples)


def convert_audio(src: PathLike, dst: PathLike, sample_rate: int = SAMPLE_RATE, start: Optional[float] = None,
                  end: Optional[float] = None, channel: Optional[int] = None, overwrite: bool = False) -> int:
    """Convert ``src`` (any format libsndfile reads; ``[start, end)`` seconds of it; one ``channel`` or the mean of
    all) to 16-bit mono FLAC at ``sample_rate``; returns its samples. An existing readable ``dst`` is kept unless
    ``overwrite``. Raises :class:`AudioError` for an unreadable source, ValueError for an empty segment; writes
    nothing partial."""
    src, dst = os.fspath(src), os.fspath(dst)
    done = None if overwrite else _existing_frames(dst)
    if done is not None:
        return done
    info = audio_info(src)
    audio = read_audio(src, sample_rate, channel, start, end, info=info)
    if len(audio.samples) == 0:
        raise ValueError(f"{src}: empty segment [{start}, {end}) s of a {info.duration:.2f} s file")
    return write_flac(dst, audio.samples, sample_rate, overwrite=True)
