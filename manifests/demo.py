"""A small synthetic English speech corpus in fairseq format, made offline with eSpeak NG.

A corpus builder like the others (``prepare_demo(dest)``, ``sew-demo-data`` / ``sew-manifest demo``): it writes,
with no network access::

    dest/
      audio/demo_00000.wav ...   16 kHz mono 16-bit PCM (WAV, or FLAC with audio_format="flac")
      train.tsv, valid.tsv       fairseq manifests: absolute root dir, then ``relpath<TAB>num_samples``
      train.wrd, valid.wrd       one transcript per line, upper case:  ``SET THE RED BOX TO SEVEN``
      train.ltr, valid.ltr       fairseq letters:  ``S E T | T H E | R E D | B O X | T O | S E V E N |``
      train.report.json, ...     the builders' per-split report (:class:`manifests.common.Report`)
      dict.ltr.txt               ``symbol count`` per line, most frequent first:  ``E 1234``
      lexicon.txt, lm.txt        the training words' spellings and transcripts (for a KenLM LM)
      corpus.json                generation parameters and statistics

Sentences come from a small fixed vocabulary (digits, colours, simple nouns and verbs), so words
recur across utterances and a CTC model can learn letters from a few minutes of audio. Voice
(English variants of eSpeak NG), speaking rate, pitch and pitch range vary per utterance.

Speech comes from the PyPI package ``espeakng-loader`` (it ships ``libespeak-ng`` and its voice
data), driven through ctypes (:mod:`manifests.espeak`), and is resampled from eSpeak's 22.05 kHz to 16 kHz with
``soxr``.

Determinism: eSpeak NG keeps synthesis state between utterances inside one process (repeating
the same sentence in one process gives different samples), but a fresh process replaying the
same sequence of calls is byte-identical. Utterances are therefore synthesised in fixed shards of
:data:`SHARD_SIZE`, each in a fresh worker process (``espeak-ng`` is not thread-safe either), so
for one eSpeak NG build the audio depends on ``seed`` and ``num_utterances`` only, not on
``num_workers``.

The corpus is written to a temporary sibling directory and renamed into place
(:func:`manifests.atomic.atomic_directory`), so an interrupted run never leaves a half corpus at ``dest``; a
second call with the same parameters finds ``dest/corpus.json`` and returns without writing anything.

Example::

    >>> corpus = prepare_demo("demo_work/data", num_utterances=400)       # doctest: +SKIP
    >>> corpus.train_tsv, corpus.num_train, round(corpus.total_seconds)   # doctest: +SKIP
"""
import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .atomic import atomic_directory, atomic_write_text
from .common import Utterance, write_corpus_files, write_split
from .records import cli_error
from .espeak import INSTALL_HINT, EspeakError, available_voices, check_soxr, espeak_paths

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

# ------------------------------------------------------------------------------------------------ sentences

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
    ("set", "the", "{colour}", "{noun}", "to", "{digit}", "and", "the", "{noun}", "to", "{digit}"),
    ("please", "{verb}", "the", "{adj}", "{colour}", "{noun}", "{prep}", "the", "{colour}", "{noun}"),
    ("{verb}", "the", "{noun}", "{prep}", "the", "{adj}", "{noun}", "and", "{verb}", "the", "{colour}", "{noun}"),
)
_SLOTS = {"{digit}": DIGITS, "{colour}": COLOURS, "{noun}": NOUNS, "{verb}": VERBS, "{prep}": PREPOSITIONS,
          "{adj}": ADJECTIVES}

def make_sentence(rng: random.Random) -> str:
    """Draw one lower-case sentence, e.g. ``put the red box near the door``."""
    template = rng.choice(_TEMPLATES)
    return " ".join(rng.choice(_SLOTS[s]) if s in _SLOTS else s for s in template)


class DemoDataError(EspeakError):
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
class _Planned:
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


def _plan(num_utterances: int, seed: int, valid_fraction: float, voices: Sequence[str],
          audio_format: str) -> List[_Planned]:
    rng = random.Random(seed)
    num_valid = max(1, int(round(num_utterances * valid_fraction)))
    valid = set(rng.sample(range(num_utterances), num_valid))
    plan = []
    for i in range(num_utterances):
        plan.append(_Planned(
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


# A fresh interpreter per shard, with nothing of the working directory on sys.path: it imports only manifests.espeak
# (no torch, no fairseq: it starts in well under a second).
_WORKER_BOOT = ("import sys; sys.path = [p for p in sys.path if p not in ('', '.')]; "
                "from manifests.espeak import worker_main; sys.exit(worker_main())")


def _run_shard(items: List[_Planned], audio_dir: Path, library: str, data_dir: str,
               on_done: Any, procs: List[subprocess.Popen], lock: threading.Lock) -> Dict[int, int]:
    job = {
        "library": library, "data_dir": data_dir, "audio_dir": str(audio_dir),
        "sample_rate": SAMPLE_RATE, "min_seconds": MIN_SECONDS, "max_seconds": MAX_SECONDS,
        "items": [asdict(u) for u in items],
    }
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    counts: Dict[int, int] = {}
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", _WORKER_BOOT],
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


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="demo corpus", unit="utt", disable=not enabled, leave=False)


def _shards(plan: Sequence[_Planned]) -> Iterator[List[_Planned]]:
    for start in range(0, len(plan), SHARD_SIZE):
        yield list(plan[start:start + SHARD_SIZE])


def prepare_demo(dest: Union[str, os.PathLike], num_utterances: int = DEFAULT_NUM_UTTERANCES,
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

        corpus = prepare_demo("demo_work/data", num_utterances=400, seed=0)
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
    try:
        library, data_dir = espeak_paths()
        check_soxr()
    except EspeakError as e:
        raise DemoDataError(str(e)) from None
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
        with atomic_directory(dest) as tmp_dir:
            tmp = Path(tmp_dir)
            (tmp / "audio").mkdir()
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
    except BaseException:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        raise
    elapsed = time.perf_counter() - start
    corpus = _corpus_from_meta(dest, meta, generated=True, elapsed_s=elapsed)
    logger.info("demo corpus: %d train (%.0f s) + %d valid (%.0f s) utterances in %.1f s at %s",
                corpus.num_train, corpus.train_seconds, corpus.num_valid, corpus.valid_seconds,
                elapsed, dest)
    return corpus


def _write_corpus_files(tmp: Path, dest: Path, plan: Sequence[_Planned], counts: Dict[int, int],
                        params: Dict[str, Any]) -> Dict[str, Any]:
    """Manifests, labels, reports, dictionary, lexicon and LM text (the builders' writers), then corpus.json."""
    stats: Dict[str, Any] = {}
    durations = [counts[u.index] / SAMPLE_RATE for u in plan]
    splits: Dict[str, List[Utterance]] = {}
    for split in SPLITS:
        items = [u for u in plan if u.split == split]
        # the files' final place: the directory is renamed to dest once complete
        splits[split] = [Utterance(f"demo_{u.index:05d}", str(dest / "audio" / u.relpath), counts[u.index],
                                   u.text.upper()) for u in items]
        write_split(tmp, split, splits[split], audio_root=dest / "audio")
        stats[f"num_{split}"] = len(items)
        stats[f"{split}_seconds"] = round(sum(counts[u.index] for u in items) / SAMPLE_RATE, 3)
    # letters of both splits, so that no valid symbol is missing from a tiny corpus's dictionary; LM from train
    write_corpus_files(tmp, splits, lm_splits=["train"])
    stats["min_seconds"] = round(min(durations), 3)
    stats["max_seconds"] = round(max(durations), 3)
    meta = {
        "params": params,
        "stats": stats,
        "utterances": [{"relpath": u.relpath, "split": u.split, "voice": u.voice, "rate": u.rate,
                        "pitch": u.pitch, "pitch_range": u.pitch_range,
                        "num_samples": counts[u.index]} for u in plan],
    }
    atomic_write_text(tmp / "corpus.json", [json.dumps(meta, indent=1)])  # last: it marks a complete corpus
    return meta


# ---------------------------------------------------------------------------------------------------- CLI

EPILOG = """\
example:
  sew-demo-data --dest demo_work/data --num-utterances 400 --seed 0 --workers 2

writes demo_work/data/{train,valid}.{tsv,wrd,ltr,report.json}, dict.ltr.txt, lexicon.txt, lm.txt,
corpus.json and audio/*.wav
(16 kHz mono). Running it again with the same options does nothing; other options replace the
corpus (only a directory holding a demo corpus, or an empty one, is ever replaced).
"""


def build_parser(prog: str = "sew-demo-data") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Generate a small synthetic English speech corpus (eSpeak NG voices, fixed "
                    "vocabulary) in fairseq manifest + letter-label format, offline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dest", required=True, help="output directory (created if missing)")
    p.add_argument("--num-utterances", type=int, default=DEFAULT_NUM_UTTERANCES,
                   help="utterances in train + valid, 1.5-4 s each (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for sentences, voices, prosody and the split (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: min(4, CPUs)); does not change the output")
    p.add_argument("--valid-fraction", type=float, default=0.1,
                   help="share of utterances in valid (default: %(default)s)")
    p.add_argument("--format", dest="audio_format", choices=("wav", "flac"), default="wav",
                   help="audio file format, 16-bit PCM either way (default: %(default)s)")
    p.add_argument("--voices", type=int, default=None, dest="num_voices",
                   help="use only the first N eSpeak NG voices (default: all); fewer voices, more regular speech")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: str = "sew-demo-data") -> int:
    args = build_parser(prog).parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        corpus = prepare_demo(args.dest, num_utterances=args.num_utterances, seed=args.seed,
                              num_voices=args.num_voices, num_workers=args.workers,
                              valid_fraction=args.valid_fraction, audio_format=args.audio_format,
                              progress=not args.quiet)
    except (DemoDataError, ValueError) as e:
        return cli_error(prog, e)
    state = f"generated in {corpus.elapsed_s:.1f} s" if corpus.generated else \
        "already complete, nothing to do"
    print(f"demo corpus at {corpus.root}: {corpus.num_train} train ({corpus.train_seconds:.0f} s) "
          f"+ {corpus.num_valid} valid ({corpus.valid_seconds:.0f} s) utterances; {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
