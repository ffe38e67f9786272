"""eSpeak NG speech synthesis for the demo corpus, through ctypes (no system package needed).

The PyPI package ``espeakng-loader`` ships ``libespeak-ng`` and its voice data; :class:`Espeak` binds the few C
calls needed (``espeak_Initialize`` with synchronous output, a synth callback, ``espeak_SetVoiceByName``,
``espeak_SetParameter``, ``espeak_Synth``, ``espeak_Synchronize``) and :func:`render` makes one utterance of a
planned length at 16 kHz (eSpeak speaks at 22.05 kHz; resampled with soxr). ``ESPEAK_NG_LIBRARY`` and
``ESPEAK_NG_DATA`` point at another eSpeak NG build.

eSpeak NG keeps synthesis state between utterances inside one process and is not thread-safe, so
:mod:`manifests.demo` runs it in worker processes, ``python -m manifests.espeak`` (:func:`worker_main`: a job as
JSON on stdin, one JSON line per finished utterance on stdout). Standard library, numpy, soxr and soundfile only.
"""
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple


class EspeakError(RuntimeError):
    """eSpeak NG (or soxr) cannot be used here: the message says what is missing and how to install it."""


INSTALL_HINT = (
    "The demo corpus needs the PyPI packages `espeakng-loader` (eSpeak NG library and voice data) "
    "and `soxr` (resampling): `pip install espeakng-loader soxr` (or `pip install -e .[test]`). "
    "If espeakng-loader has no working build for this platform, install eSpeak NG from the system "
    "(e.g. `apt-get install espeak-ng`, `brew install espeak-ng`) and point ESPEAK_NG_LIBRARY at "
    "libespeak-ng and ESPEAK_NG_DATA at its espeak-ng-data directory."
)

# Preferred eSpeak NG English languages and voice variants; those absent from the shipped data
# are left out (the list is then still deterministic for one installation).
_LANGUAGES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-us-nyc", "en-029",
              "en-gb-x-gbclan", "en-gb-x-gbcwmd")
_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")


def espeak_paths() -> Tuple[str, str]:
    """Return (library path, espeak-ng-data path), or raise :class:`EspeakError`."""
    lib = os.environ.get("ESPEAK_NG_LIBRARY")
    data = os.environ.get("ESPEAK_NG_DATA")
    if not (lib and data):
        try:
            import espeakng_loader
        except ImportError as e:
            raise EspeakError(f"cannot import espeakng_loader ({e}). {INSTALL_HINT}") from e
        try:
            lib = lib or espeakng_loader.get_library_path()
            data = data or espeakng_loader.get_data_path()
        except Exception as e:  # the package raises RuntimeError when its data is missing
            raise EspeakError(f"espeakng-loader is incomplete ({e}). {INSTALL_HINT}") from e
    if not os.path.exists(lib):
        raise EspeakError(f"eSpeak NG library not found at {lib}. {INSTALL_HINT}")
    if not os.path.isdir(data):
        raise EspeakError(f"eSpeak NG data directory not found at {data}. {INSTALL_HINT}")
    if not os.path.isfile(os.path.join(data, "phontab")):
        raise EspeakError(f"{data} is not an espeak-ng-data directory (no phontab file). "
                            f"{INSTALL_HINT}")
    try:  # loading is harmless here: synthesis state only starts with espeak_Initialize
        import ctypes

        ctypes.CDLL(lib)
    except OSError as e:
        raise EspeakError(f"cannot load the eSpeak NG library {lib} ({e}). {INSTALL_HINT}") from e
    return lib, data


def check_soxr() -> None:
    try:
        import soxr  # noqa: F401
    except ImportError as e:
        raise EspeakError(f"cannot import soxr ({e}). {INSTALL_HINT}") from e


def available_voices(data_dir: str) -> List[str]:
    """eSpeak NG voice names (``language[+variant]``) found in ``data_dir``, in a fixed order."""
    langs = set()
    lang_root = Path(data_dir) / "lang"
    if lang_root.is_dir():
        langs = {p.name.lower() for p in lang_root.rglob("*") if p.is_file()}
    variant_dir = Path(data_dir) / "voices" / "!v"
    variants = {p.name for p in variant_dir.iterdir()} if variant_dir.is_dir() else set()
    chosen_langs = [lang for lang in _LANGUAGES if lang in langs] or ["en"]
    chosen_variants = [v for v in _VARIANTS if v == "" or v in variants]
    return [lang + (f"+{v}" if v else "") for lang in chosen_langs for v in chosen_variants]


_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 3, 4


class Espeak:
    """Minimal ctypes binding of the eSpeak NG C API (synchronous output into a buffer)."""

    def __init__(self, library: str, data_dir: str) -> None:
        import ctypes

        self._ctypes = ctypes
        self.lib = ctypes.CDLL(library)
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_dir.encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {self.sample_rate}) "
                               f"with data directory {data_dir}")
        self._chunks: List[bytes] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                         ctypes.c_void_p)
        self._callback = callback_type(self._collect)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        # eSpeak's breath noise uses its own generator and libc rand(): seed both per utterance.
        self._set_rand_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_rand_seed is not None:
            self._set_rand_seed.argtypes = [ctypes.c_long]
        try:
            self._libc_srand = ctypes.CDLL(None).srand
            self._libc_srand.argtypes = [ctypes.c_uint]
        except (OSError, AttributeError, TypeError):  # no C library handle (e.g. Windows)
            self._libc_srand = None

    def _collect(self, wav: Any, num_samples: int, events: Any) -> int:
        if num_samples > 0:
            self._chunks.append(self._ctypes.string_at(wav, num_samples * 2))
        return 0  # 0 = continue synthesis

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int,
              seed: int) -> "Any":
        """Speak ``text``; returns int16 samples at :attr:`sample_rate`."""
        import numpy as np

        status = self.lib.espeak_SetVoiceByName(voice.encode())
        if status != 0:
            raise RuntimeError(f"eSpeak NG has no voice {voice!r} (status {status})")
        for param, value in ((_ESPEAK_RATE, rate), (_ESPEAK_PITCH, pitch),
                             (_ESPEAK_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        if self._set_rand_seed is not None:
            self._set_rand_seed(seed)
        if self._libc_srand is not None:
            self._libc_srand(seed & 0xFFFFFFFF)
        self._chunks = []
        data = text.encode("utf-8")
        status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0,
                                       _ESPEAK_CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} on {text!r}")
        self.lib.espeak_Synchronize()
        return np.frombuffer(b"".join(self._chunks), dtype="<i2").copy()


def render(engine: Espeak, item: Dict[str, Any], min_s: float, max_s: float,
            out_rate: int) -> Tuple[Any, int]:
    """Synthesise one utterance within [min_s, max_s] seconds; returns (int16 audio, rate used)."""
    import numpy as np
    import soxr

    pad_s = item["lead_s"] + item["tail_s"]
    lo, hi = max(0.3, min_s - pad_s), max_s - pad_s
    rate = item["rate"]
    speech = engine.synth(item["text"], item["voice"], rate, item["pitch"], item["pitch_range"],
                          item["seed"])
    for _ in range(3):  # adjust the speaking rate when the sentence comes out too long/short
        dur = len(speech) / engine.sample_rate
        if hi >= dur >= lo or dur == 0:
            break
        target = hi * 0.95 if dur > hi else lo * 1.05
        new_rate = int(min(320, max(90, round(rate * dur / target))))
        if new_rate == rate:
            break
        rate = new_rate
        speech = engine.synth(item["text"], item["voice"], rate, item["pitch"],
                              item["pitch_range"], item["seed"])
    if len(speech) == 0:
        raise RuntimeError(f"eSpeak NG produced no audio for {item['text']!r} ({item['voice']})")
    x = soxr.resample(speech.astype(np.float32) / 32768.0, engine.sample_rate, out_rate, "HQ")
    peak = float(np.max(np.abs(x))) or 1.0
    x = x * (item["gain"] / peak)
    lead = int(round(item["lead_s"] * out_rate))
    tail = int(round(item["tail_s"] * out_rate))
    short = int(math.ceil(min_s * out_rate)) - (lead + len(x) + tail)
    tail += max(0, short)
    x = np.concatenate([np.zeros(lead, np.float32), x.astype(np.float32), np.zeros(tail, np.float32)])
    noise = np.random.default_rng(item["seed"]).normal(0.0, 3e-4, size=len(x))  # ~ -70 dBFS floor
    y = np.clip(np.round((x + noise) * 32767.0), -32768, 32767).astype(np.int16)
    return y, rate


def worker_main() -> int:
    """Worker entry: job JSON on stdin; one JSON line per finished utterance on stdout."""
    job = json.load(sys.stdin)
    import soundfile as sf

    engine = Espeak(job["library"], job["data_dir"])
    subtype = "PCM_16"
    for item in job["items"]:
        audio, rate = render(engine, item, job["min_seconds"], job["max_seconds"],
                              job["sample_rate"])
        path = os.path.join(job["audio_dir"], item["relpath"])
        sf.write(path, audio, job["sample_rate"], subtype=subtype)
        sys.stdout.write(json.dumps({"index": item["index"], "num_samples": int(len(audio)),
                                     "rate": rate}) + "\n")
        sys.stdout.flush()
    return 0




if __name__ == "__main__":
    sys.exit(worker_main())
