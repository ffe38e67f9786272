"""A small synthetic English speech corpus in fairseq format, made offline with eSpeak NG.

``make_demo_corpus(dest)`` writes, with no network access::

    dest/
      audio/demo_00000.wav ...   16 kHz mono 16-bit PCM (WAV, or FLAC with audio_format="flac")
      train.tsv, valid.tsv       fairseq manifests: absolute root dir, then ``relpath<TAB>num_samples``
      train.wrd, valid.wrd       one transcript per line, upper case:  ``SET THE RED BOX TO SEVEN``
      train.ltr, valid.ltr       fairseq letters:  ``S E T | T H E | R E D | B O X | T O | S E V E N |``
      dict.ltr.txt               ``symbol count`` per line, most frequent first:  ``E 1234``
      corpus.json                generation parameters and statistics

Sentences come from a small fixed vocabulary (digits, colours, simple nouns and verbs), so words
recur across utterances and a CTC model can learn letters from a few minutes of audio. Voice
(English variants of eSpeak NG), speaking rate, pitch and pitch range vary per utterance.

Speech comes from the PyPI package ``espeakng-loader`` (it ships ``libespeak-ng`` and its voice
data), driven through ctypes, and is resampled from eSpeak's 22.05 kHz to 16 kHz with ``soxr``.

Determinism: eSpeak NG keeps synthesis state between utterances inside one process (repeating
the same sentence in one process gives different samples), but a fresh process replaying the
same sequence of calls is byte-identical. Utterances are therefore synthesised in fixed shards of
:data:`SHARD_SIZE`, each in a fresh worker process (``espeak-ng`` is not thread-safe either), so
for one eSpeak NG build the audio depends on ``seed`` and ``num_utterances`` only, not on
``num_workers``.

The corpus is written to a temporary sibling directory and renamed into place, so an
interrupted run never leaves a half corpus at ``dest``; a second call with the same parameters
finds ``dest/corpus.json`` and returns without writing anything.

Example::

    >>> corpus = make_demo_corpus("demo_work/data", num_utterances=400)   # doctest: +SKIP
    >>> corpus.train_tsv, corpus.num_train, round(corpus.total_seconds)   # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

logger = logging.getLogger(__name__)

#: Bump when the sentence generator or the synthesis changes, so old corpora are regenerated.
GENERATOR_VERSION = 1
#: Utterances per worker process; part of the output's identity (see the module docstring).
SHARD_SIZE = 50
SAMPLE_RATE = 16_000
DEFAULT_NUM_UTTERANCES = 400
MIN_SECONDS = 1.5
MAX_SECONDS = 4.0
SPLITS = ("train", "valid")

INSTALL_HINT = (
    "The demo corpus needs the PyPI packages `espeakng-loader` (eSpeak NG library and voice data) "
    "and `soxr` (resampling): `pip install espeakng-loader soxr` (or `pip install -e .[test]`). "
    "If espeakng-loader has no working build for this platform, install eSpeak NG from the system "
    "(e.g. `apt-get install espeak-ng`, `brew install espeak-ng`) and point ESPEAK_NG_LIBRARY at "
    "libespeak-ng and ESPEAK_NG_DATA at its espeak-ng-data directory."
)

# ---------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COLOURS = ("red", "blue", "green", "yellow", "white", "black", "brown", "pink", "orange", "purple")
NOUNS = ("box", "cup", "ball", "pen", "door", "car", "bird", "fish", "hat", "book", "lamp",
         "chair", "coat", "bag", "key", "jar", "shoe")
VERBS = ("set", "put", "move", "place", "take", "give", "find", "paint", "bring", "hold")
PREPOSITIONS = ("on", "in", "near", "under", "behind", "above")
ADJECTIVES = ("big", "small", "old", "new", "quick", "heavy")

# Each template is a sequence of slots: a vocabulary name in braces, or a literal word.
_TEMPLATES: Tuple[Tuple[str, ...], ...] = (
    ("{verb}", "the", "{colour}", "{noun}"),
    ("{verb}", "the", "{colour}", "{noun}", "{prep}", "the", "{noun}"),
    ("set", "the", "{colour}", "{noun}", "to", "{digit}"),
    ("{digit}", "{digit}", "{digit}", "{digit}", "{digit}"),
    ("the", "{adj}", "{noun}", "is", "{colour}"),
    ("{verb}", "the", "{adj}", "{colour}", "{noun}", "{prep}", "the", "{noun}"),
    ("give", "me", "{digit}", "{colour}", "{noun}", "and", "the", "{noun}"),
    ("the", "{noun}", "{prep}", "the", "{noun}", "is", "{adj}", "and", "{colour}"),
    ("{digit}", "{digit}", "{colour}", "{noun}", "{digit}", "{digit}"),
    ("set", "the", "{colour}", "{noun}", "to", "{digit}", "and", "the", "{noun}", "to",
     "{digit}"),
    ("please", "{verb}", "the", "{adj}", "{colour}", "{noun}", "{prep}", "the", "{colour}",
     "{noun}"),
    ("{verb}", "the", "{noun}", "{prep}", "the", "{adj}", "{noun}", "and", "{verb}", "the",
     "{colour}", "{noun}"),
)
_SLOTS = {
    "{digit}": DIGITS,
    "{colour}": COLOURS,
    "{noun}": NOUNS,
    "{verb}": VERBS,
    "{prep}": PREPOSITIONS,
    "{adj}": ADJECTIVES,
}

# Preferred eSpeak NG English languages and voice variants; those absent from the shipped data
# are left out (the list is then still deterministic for one installation).
_LANGUAGES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-us-nyc", "en-029",
              "en-gb-x-gbclan", "en-gb-x-gbcwmd")
_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")


def make_sentence(rng: random.Random) -> str:
    """Draw one lower-case sentence, e.g. ``put the red box near the door``."""
    template = rng.choice(_TEMPLATES)
    return " ".join(rng.choice(_SLOTS[s]) if s in _SLOTS else s for s in template)


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------


class DemoDataError(RuntimeError):
    """The demo corpus could not be generated (missing eSpeak NG, worker failure, bad dest)."""


@dataclass(frozen=True)
class DemoCorpus:
    """Where a demo corpus lies and what it holds.

    ``generated`` is False when a complete corpus with the same parameters was already there.
    """

    root: Path
    audio_dir: Path
    train_tsv: Path
    valid_tsv: Path
    dict_ltr: Path
    num_train: int
    num_valid: int
    train_seconds: float
    valid_seconds: float
    min_seconds: float
    max_seconds: float
    sample_rate: int
    params: Dict[str, Any]
    generated: bool
    elapsed_s: float

    @property
    def num_utterances(self) -> int:
        return self.num_train + self.num_valid

    @property
    def total_seconds(self) -> float:
        return self.train_seconds + self.valid_seconds

    def manifest(self, split: str) -> Path:
        """``<root>/<split>.tsv`` for ``split`` in ("train", "valid")."""
        return self._split_file(split, "tsv")

    def labels(self, split: str, ext: str = "ltr") -> Path:
        """``<root>/<split>.<ext>`` for ``ext`` in ("ltr", "wrd")."""
        if ext not in ("ltr", "wrd"):
            raise ValueError(f"unknown label extension {ext!r}; expected 'ltr' or 'wrd'")
        return self._split_file(split, ext)

    def _split_file(self, split: str, ext: str) -> Path:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return self.root / f"{split}.{ext}"


@dataclass(frozen=True)
class _Utterance:
    index: int
    split: str
    text: str  # lower case, as spoken
    voice: str
    rate: int
    pitch: int
    pitch_range: int
    gain: float  # peak amplitude as a fraction of full scale
    lead_s: float  # silence before and after the speech
    tail_s: float
    seed: int
    relpath: str


# ---------------------------------------------------------------------------------------------
# eSpeak NG location
# ---------------------------------------------------------------------------------------------


def _espeak_paths() -> Tuple[str, str]:
    """Return (library path, espeak-ng-data path), or raise :class:`DemoDataError`."""
    lib = os.environ.get("ESPEAK_NG_LIBRARY")
    data = os.environ.get("ESPEAK_NG_DATA")
    if not (lib and data):
        try:
            import espeakng_loader
        except ImportError as e:
            raise DemoDataError(f"cannot import espeakng_loader ({e}). {INSTALL_HINT}") from e
        try:
            lib = lib or espeakng_loader.get_library_path()
            data = data or espeakng_loader.get_data_path()
        except Exception as e:  # the package raises RuntimeError when its data is missing
            raise DemoDataError(f"espeakng-loader is incomplete ({e}). {INSTALL_HINT}") from e
    if not os.path.exists(lib):
        raise DemoDataError(f"eSpeak NG library not found at {lib}. {INSTALL_HINT}")
    if not os.path.isdir(data):
        raise DemoDataError(f"eSpeak NG data directory not found at {data}. {INSTALL_HINT}")
    if not os.path.isfile(os.path.join(data, "phontab")):
        raise DemoDataError(f"{data} is not an espeak-ng-data directory (no phontab file). "
                            f"{INSTALL_HINT}")
    try:  # loading is harmless here: synthesis state only starts with espeak_Initialize
        import ctypes

        ctypes.CDLL(lib)
    except OSError as e:
        raise DemoDataError(f"cannot load the eSpeak NG library {lib} ({e}). {INSTALL_HINT}") from e
    return lib, data


def _check_soxr() -> None:
    try:
        import soxr  # noqa: F401
    except ImportError as e:
        raise DemoDataError(f"cannot import soxr ({e}). {INSTALL_HINT}") from e


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


# ---------------------------------------------------------------------------------------------
# Planning (parent process)
# ---------------------------------------------------------------------------------------------


def _plan(num_utterances: int, seed: int, valid_fraction: float, voices: Sequence[str],
          audio_format: str) -> List[_Utterance]:
    rng = random.Random(seed)
    num_valid = max(1, int(round(num_utterances * valid_fraction)))
    valid = set(rng.sample(range(num_utterances), num_valid))
    plan = []
    for i in range(num_utterances):
        plan.append(_Utterance(
            index=i,
            split="valid" if i in valid else "train",
            text=make_sentence(rng),
            voice=rng.choice(voices),
            rate=rng.randint(125, 185),
            pitch=rng.randint(25, 75),
            pitch_range=rng.randint(30, 90),
            gain=round(rng.uniform(0.35, 0.9), 4),
            lead_s=round(rng.uniform(0.02, 0.15), 4),
            tail_s=round(rng.uniform(0.02, 0.2), 4),
            seed=rng.randrange(2**31 - 1),
            relpath=f"demo_{i:05d}.{audio_format}",
        ))
    return plan


# ---------------------------------------------------------------------------------------------
# Synthesis (worker process; no imports from this package so a worker starts fast)
# ---------------------------------------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 3, 4


class _Espeak:
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


def _render(engine: _Espeak, item: Dict[str, Any], min_s: float, max_s: float,
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


def _worker_main() -> int:
    """Worker entry: job JSON on stdin; one JSON line per finished utterance on stdout."""
    job = json.load(sys.stdin)
    import soundfile as sf

    engine = _Espeak(job["library"], job["data_dir"])
    subtype = "PCM_16"
    for item in job["items"]:
        audio, rate = _render(engine, item, job["min_seconds"], job["max_seconds"],
                              job["sample_rate"])
        path = os.path.join(job["audio_dir"], item["relpath"])
        sf.write(path, audio, job["sample_rate"], subtype=subtype)
        sys.stdout.write(json.dumps({"index": item["index"], "num_samples": int(len(audio)),
                                     "rate": rate}) + "\n")
        sys.stdout.flush()
    return 0


# Run in a fresh interpreter: load this file by path (not ``sew_fairseq.demo_data``) so a worker
# neither imports the package (fairseq, torch) nor puts any directory of ours on sys.path.
_WORKER_BOOT = (
    "import sys; sys.path = [p for p in sys.path if p not in ('', '.')]; "
    "import importlib.util as u; s = u.spec_from_file_location('_sew_demo_worker', sys.argv[1]); "
    "m = u.module_from_spec(s); sys.modules[s.name] = m; s.loader.exec_module(m); "
    "sys.exit(m._worker_main())"
)


def _run_shard(items: List[_Utterance], audio_dir: Path, library: str, data_dir: str,
               on_done: Any, procs: List[subprocess.Popen], lock: threading.Lock) -> Dict[int, int]:
    job = {
        "library": library, "data_dir": data_dir, "audio_dir": str(audio_dir),
        "sample_rate": SAMPLE_RATE, "min_seconds": MIN_SECONDS, "max_seconds": MAX_SECONDS,
        "items": [asdict(u) for u in items],
    }
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    counts: Dict[int, int] = {}
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", _WORKER_BOOT, os.path.abspath(__file__)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                                text=True)
        with lock:
            procs.append(proc)
        stdin, stdout = proc.stdin, proc.stdout  # both pipes (PIPE above)
        if stdin is None or stdout is None:
            raise DemoDataError("could not open pipes to the demo-data worker")
        stdin.write(json.dumps(job))
        stdin.close()
        for line in stdout:
            msg = json.loads(line)
            counts[msg["index"]] = msg["num_samples"]
            on_done()
        rc = proc.wait()
        if rc != 0 or len(counts) != len(items):
            err.seek(0)
            tail = err.read().decode("utf-8", "replace")[-3000:]
            hint = INSTALL_HINT if not counts else ""
            raise DemoDataError(f"demo-data worker failed (exit code {rc}, {len(counts)}/"
                                f"{len(items)} utterances done; eSpeak NG library {library}, "
                                f"data {data_dir}):\n{tail.strip()}\n{hint}".rstrip())
    return counts


# ---------------------------------------------------------------------------------------------
# Corpus directory handling
# ---------------------------------------------------------------------------------------------


def _params(num_utterances: int, seed: int, valid_fraction: float, audio_format: str,
            voices: Sequence[str]) -> Dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION,
        "num_utterances": num_utterances,
        "seed": seed,
        "valid_fraction": valid_fraction,
        "audio_format": audio_format,
        "sample_rate": SAMPLE_RATE,
        "shard_size": SHARD_SIZE,
        "min_seconds": MIN_SECONDS,
        "max_seconds": MAX_SECONDS,
        "voices": list(voices),
    }


def _read_manifest_entries(tsv: Path) -> Tuple[str, List[Tuple[str, int]]]:
    """Parse our own manifest: ``/abs/root`` then ``demo_00001.wav<TAB>41234`` lines."""
    lines = tsv.read_text(encoding="utf-8").splitlines()
    entries = []
    for line in lines[1:]:
        rel, count = line.split("\t")
        entries.append((rel, int(count)))
    return lines[0], entries


def _load_existing(dest: Path, params: Dict[str, Any]) -> Optional[DemoCorpus]:
    """The corpus at ``dest`` if it is complete and was made with ``params``, else None."""
    meta_path = dest / "corpus.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("params") != params:
        return None
    audio_dir = dest / "audio"
    try:
        for split in SPLITS:
            for ext in ("ltr", "wrd"):
                if not (dest / f"{split}.{ext}").is_file():
                    return None
            root, entries = _read_manifest_entries(dest / f"{split}.tsv")
            if root != str(audio_dir) or len(entries) != meta["stats"][f"num_{split}"]:
                return None  # moved or edited: regenerate
            if any(not (audio_dir / rel).is_file() for rel, _ in entries):
                return None
        if not (dest / "dict.ltr.txt").is_file():
            return None
    except (OSError, ValueError, KeyError):
        return None
    return _corpus_from_meta(dest, meta, generated=False, elapsed_s=0.0)


def _corpus_from_meta(dest: Path, meta: Dict[str, Any], generated: bool,
                      elapsed_s: float) -> DemoCorpus:
    s = meta["stats"]
    return DemoCorpus(
        root=dest, audio_dir=dest / "audio", train_tsv=dest / "train.tsv",
        valid_tsv=dest / "valid.tsv", dict_ltr=dest / "dict.ltr.txt",
        num_train=s["num_train"], num_valid=s["num_valid"],
        train_seconds=s["train_seconds"], valid_seconds=s["valid_seconds"],
        min_seconds=s["min_seconds"], max_seconds=s["max_seconds"],
        sample_rate=meta["params"]["sample_rate"], params=meta["params"], generated=generated,
        elapsed_s=elapsed_s,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _cleanup_stale_temps(dest: Path) -> None:
    """Remove ``.<name>.tmp-<pid>-*`` siblings left by killed runs (their pid is gone)."""
    prefix = f".{dest.name}.tmp-"
    for p in dest.parent.glob(prefix + "*"):
        try:
            pid = int(p.name[len(prefix):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            logger.info("removing %s left by an interrupted run", p)
            shutil.rmtree(p, ignore_errors=True)


def _write_text(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="demo corpus", unit="utt", disable=not enabled, leave=False)


def _shards(plan: Sequence[_Utterance]) -> Iterator[List[_Utterance]]:
    for start in range(0, len(plan), SHARD_SIZE):
        yield list(plan[start:start + SHARD_SIZE])


def make_demo_corpus(dest: Union[str, os.PathLike], num_utterances: int = DEFAULT_NUM_UTTERANCES,
                     seed: int = 0, num_workers: Optional[int] = None, valid_fraction: float = 0.1,
                     audio_format: str = "wav", progress: bool = True,
                     num_voices: Optional[int] = None) -> DemoCorpus:
    """Generate (or find) the synthetic demo corpus at ``dest``; see the module docstring.

    Args:
        dest: corpus directory; created if missing. An existing non-empty directory that is not a
            demo corpus (no ``corpus.json``) is refused rather than overwritten.
        num_utterances: utterances in train + valid (at least 2; 1.5-4 s each).
        seed: drives sentences, voices, prosody and the train/valid split.
        num_workers: worker processes (default: min(4, CPUs, shards)); does not change the output.
        valid_fraction: share of utterances in ``valid`` (at least one).
        audio_format: "wav" or "flac" (16-bit PCM either way).
        progress: show a tqdm progress bar.
        num_voices: use only the first N voices of :func:`available_voices` (None = all); fewer voices
            make more regular speech, on which a small model learns faster.

    Example::

        corpus = make_demo_corpus("demo_work/data", num_utterances=400, seed=0)
    """
    if isinstance(num_utterances, bool) or not isinstance(num_utterances, int) or num_utterances < 2:
        raise ValueError(f"num_utterances must be an integer >= 2, got {num_utterances!r}")
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction!r}")
    if audio_format not in ("wav", "flac"):
        raise ValueError(f"audio_format must be 'wav' or 'flac', got {audio_format!r}")
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers!r}")

    start = time.perf_counter()
    dest = Path(dest).expanduser().resolve()
    library, data_dir = _espeak_paths()
    _check_soxr()
    voices = available_voices(data_dir)
    if num_voices is not None:
        if num_voices < 1:
            raise ValueError(f"num_voices must be >= 1, got {num_voices!r}")
        voices = voices[:num_voices]
    params = _params(num_utterances, seed, valid_fraction, audio_format, voices)

    existing = _load_existing(dest, params)
    if existing is not None:
        logger.info("demo corpus at %s is complete (same parameters): nothing to do", dest)
        return existing
    if dest.exists() and not dest.is_dir():
        raise DemoDataError(f"{dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / "corpus.json").exists():
        raise DemoDataError(f"{dest} is a non-empty directory without corpus.json, i.e. not a demo "
                            "corpus; refusing to overwrite it. Pass a new or empty directory.")

    dest.parent.mkdir(parents=True, exist_ok=True)
    _cleanup_stale_temps(dest)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    (tmp / "audio").mkdir(parents=True)
    plan = _plan(num_utterances, seed, valid_fraction, voices, audio_format)
    shards = list(_shards(plan))
    workers = num_workers or min(4, os.cpu_count() or 1, len(shards))
    workers = max(1, min(workers, len(shards)))
    logger.info("generating %d utterances in %d shards with %d worker processes into %s",
                num_utterances, len(shards), workers, dest)

    procs: List[subprocess.Popen] = []
    lock = threading.Lock()
    counts: Dict[int, int] = {}
    try:
        with _progress(num_utterances, progress) as bar:
            def tick() -> None:
                with lock:
                    bar.update(1)

            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_run_shard, shard, tmp / "audio", library, data_dir, tick,
                                       procs, lock) for shard in shards]
                for fut in futures:
                    counts.update(fut.result())
        meta = _write_corpus_files(tmp, dest, plan, counts, params)
        _install(tmp, dest, params)
    except BaseException:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    elapsed = time.perf_counter() - start
    corpus = _corpus_from_meta(dest, meta, generated=True, elapsed_s=elapsed)
    logger.info("demo corpus: %d train (%.0f s) + %d valid (%.0f s) utterances in %.1f s at %s",
                corpus.num_train, corpus.train_seconds, corpus.num_valid, corpus.valid_seconds,
                elapsed, dest)
    return corpus


def _write_corpus_files(tmp: Path, dest: Path, plan: Sequence[_Utterance], counts: Dict[int, int],
                        params: Dict[str, Any]) -> Dict[str, Any]:
    letters: Counter = Counter()
    stats: Dict[str, Any] = {}
    durations = [counts[u.index] / SAMPLE_RATE for u in plan]
    for split in SPLITS:
        items = [u for u in plan if u.split == split]
        words = [u.text.upper() for u in items]
        from sew_fairseq.decoding.lexicon import to_letters  # here: workers load this file without the package

        ltr = [to_letters(w) for w in words]
        for line in ltr:
            letters.update(line.split())
        _write_text(tmp / f"{split}.tsv",
                    [str(dest / "audio")] + [f"{u.relpath}\t{counts[u.index]}" for u in items])
        _write_text(tmp / f"{split}.wrd", words)
        _write_text(tmp / f"{split}.ltr", ltr)
        stats[f"num_{split}"] = len(items)
        stats[f"{split}_seconds"] = round(sum(counts[u.index] for u in items) / SAMPLE_RATE, 3)
    # letters of both splits, so that no valid symbol is missing from a tiny corpus's dictionary
    ordered = sorted(letters.items(), key=lambda kv: (-kv[1], kv[0]))
    _write_text(tmp / "dict.ltr.txt", [f"{sym} {n}" for sym, n in ordered])
    stats["min_seconds"] = round(min(durations), 3)
    stats["max_seconds"] = round(max(durations), 3)
    meta = {
        "params": params,
        "stats": stats,
        "utterances": [{"relpath": u.relpath, "split": u.split, "voice": u.voice, "rate": u.rate,
                        "pitch": u.pitch, "pitch_range": u.pitch_range,
                        "num_samples": counts[u.index]} for u in plan],
    }
    # corpus.json last: its presence marks a complete corpus
    (tmp / "corpus.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


def _install(tmp: Path, dest: Path, params: Dict[str, Any]) -> None:
    """Rename ``tmp`` to ``dest``, replacing an empty dir or an outdated demo corpus."""
    old: Optional[Path] = None
    if dest.exists():
        if not any(dest.iterdir()):
            dest.rmdir()
        else:  # an outdated demo corpus (checked by the caller): move aside, then delete
            old = dest.parent / f".{dest.name}.tmp-{os.getpid()}-old-{uuid.uuid4().hex[:8]}"
            os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except OSError:
        # another run finished first: keep its corpus if it is the one we wanted
        if _load_existing(dest, params) is None:
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
