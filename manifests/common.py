"""Shared toolkit of the corpus builders (``manifests.<corpus>``): text, writers, report, workers, CLI.

Imports only the standard library, soundfile, soxr (on conversion), numpy and tqdm: never fairseq or
``sew_fairseq``. A builder is one module with a ``prepare_<corpus>(root, dest, ...)`` function and a
``main(argv)`` CLI built on :func:`base_parser`; the pieces, in the order a builder uses them:

Records and text
    ``Utterance(id, audio, num_samples, words, labels=())``: one kept utterance (``audio`` an absolute path,
    ``words`` the normalised transcript, upper case, single spaces; ``labels`` further label lines by file
    extension, e.g. ``(("phn", "sil sh iy sil"),)`` for TIMIT's phones).
    ``to_letters(words)`` (``"HELLO WORLD"`` -> ``"H E L L O | W O R L D |"``), ``build_lexicon``,
    ``lexicon_lines`` (from :mod:`manifests.lexicon`, the project's single speller).
    ``LETTERS``: the letter alphabet of the English corpora (A-Z and the apostrophe).
    ``ascii_quotes(text)`` maps curly apostrophes and quotes to ASCII; ``squeeze_spaces(text)``;
    ``spell_number("1984")`` -> ``"ONE THOUSAND NINE HUNDRED EIGHTY FOUR"`` (``year=True`` reads
    4-digit numbers as years: ``"NINETEEN EIGHTY FOUR"``); ``outside_alphabet(words, LETTERS)`` -> the
    characters a transcript has outside the alphabet (sorted).

Problems
    ``Report(split, strict=False)``: ``report.add(reason, where, detail)`` counts a problem (``where``
    names the file, with ``:line`` when a line is at fault) and keeps up to ``max_examples`` examples
    per reason; ``report.kept`` is set by :func:`write_split`. Reasons (``REASONS``): the bad-audio ones of
    :data:`manifests.records.AUDIO_HINTS` (missing, empty, unreadable, no_frames, truncated, bad_channel,
    wrong_rate, wrong_channels, too_short), then transcript_without_audio, audio_without_transcript,
    empty_transcript, dropped_by_normalisation, bad_line, duplicate_id; a builder may add its own (a new name
    is allowed, documented in its module).
    ``report.summary()`` is the text printed at the end; ``report.to_dict()`` what
    ``<dest>/<split>.report.json`` holds. With ``strict=True`` :func:`write_split` raises
    :class:`ManifestError` (message naming the split, each reason's count and example files/lines)
    instead of writing the split: nothing is dropped silently in either mode.

Writing (atomic and idempotent)
    ``write_split(dest, split, utterances, report=None, audio_root=None, extra_labels=())`` streams
    ``utterances`` into ``<split>.tsv`` (first line the audio root: ``audio_root`` or the common directory of
    the audio files; then ``relpath<TAB>num_samples``), ``<split>.wrd`` (``words``), ``<split>.ltr``
    (``to_letters(words)``), ``<split>.<ext>`` for each ``ext`` of ``extra_labels`` (the utterance's
    ``labels`` line of that extension) and ``<split>.report.json``, in the given order. All files are
    written to temporary names first, the old ``<split>.tsv`` is removed, the label files are renamed into
    place and the ``.tsv`` last, so a ``.tsv`` present means its labels are complete and a killed run leaves
    no half-written manifest. Same input -> byte-identical files.
    ``write_corpus_files(dest, splits, lm_splits)``: ``dict.ltr.txt`` (``<symbol> <count>`` over all
    splits, count descending then symbol: ``dictionary_lines(counts)``, fairseq's Dictionary format),
    ``lexicon.txt`` (``WORD<TAB>W O R D |``, words sorted, from ``lm_splits``) and ``lm.txt`` (one
    transcript per line of ``lm_splits``, deduplicated by utterance id): keep dev/test out of ``lm_splits``.
    ``atomic_write_text(path, lines)`` for other files.

Workers
    ``parallel_map(fn, items, workers, desc, progress, unit="file")``: ``fn`` over ``items`` with a process pool
    (``workers <= 1``: in this process), tqdm progress bar, results in input order. ``fn`` must be a
    module-level function; an exception in ``fn`` propagates (nothing is written). ``default_workers()``
    = min(cpu_count, 8).

Audio
    In :mod:`manifests.audio`: ``probe_audio`` (header against the expected rate and channels, never raises),
    ``convert_audio`` (any file, a segment, a channel -> 16 kHz mono FLAC, atomic and idempotent), ``write_flac``.

CLI
    ``base_parser(prog, description)``: ``--root``, ``--dest`` (required), ``--workers``, ``--strict``,
    ``--overwrite``, ``--no-progress``, ``-v``; ``run_main(fn, args)`` calls ``fn``, prints a
    :class:`ManifestError` or ``OSError`` as ``<prog>: error: ...`` and returns the exit code (1);
    ``cli_error(prog, message, status=1)`` prints ``<prog>: error: <message>`` (every console script's errors,
    those of ``sew_fairseq`` included) and returns ``status``.
"""
import argparse
import contextlib
import json
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar

from .atomic import atomic_file, atomic_files, atomic_write_text  # noqa: F401  (atomic_write_text: builders)
from .records import AUDIO_REASONS, ManifestError, PathLike, Utterance, cli_error  # noqa: F401  (builders import them here)
from .lexicon import WORD_BOUNDARY, build_lexicon, lexicon_lines, spell, to_letters  # noqa: F401

logger = logging.getLogger("manifests")

T = TypeVar("T")
R = TypeVar("R")

SAMPLE_RATE = 16000
LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")

REASONS = (
    *AUDIO_REASONS,              # bad audio: missing, unreadable, empty, no_frames, wrong_channels, wrong_rate, ...
    "transcript_without_audio",  # a transcript line whose audio file is absent
    "audio_without_transcript",  # an audio file that no transcript line names
    "empty_transcript",          # a transcript line with no words
    "dropped_by_normalisation",  # the normalisation rule left symbols outside the alphabet
    "bad_line",                  # a transcript/metadata line that cannot be parsed
    "duplicate_id",              # an utterance id seen twice
)


# -------------------------------------------------------------------------------------------- text

_QUOTES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u02bd": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'", "`": "'",
    "\u00b4": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
})


def ascii_quotes(text: str) -> str:
    """Curly/typographic apostrophes and quotes (and backtick, acute accent) -> ``'`` and ``"``."""
    return text.translate(_QUOTES)


def squeeze_spaces(text: str) -> str:
    """Runs of whitespace -> one space, stripped."""
    return " ".join(text.split())


def outside_alphabet(words: str, alphabet: Iterable[str] = LETTERS) -> List[str]:
    """Characters of ``words`` (spaces aside) that are not in ``alphabet``, sorted."""
    allowed = alphabet if isinstance(alphabet, (set, frozenset)) else set(alphabet)
    return sorted({c for c in words if c not in allowed and not c.isspace()})


_ONES = ("ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN FOURTEEN "
         "FIFTEEN SIXTEEN SEVENTEEN EIGHTEEN NINETEEN").split()
_TENS = "_ _ TWENTY THIRTY FORTY FIFTY SIXTY SEVENTY EIGHTY NINETY".split()
_SCALES = ((10 ** 12, "TRILLION"), (10 ** 9, "BILLION"), (10 ** 6, "MILLION"), (1000, "THOUSAND"))


def _below_1000(n: int) -> List[str]:
    out: List[str] = []
    if n >= 100:
        out += [_ONES[n // 100], "HUNDRED"]
        n %= 100
    if n >= 20:
        out.append(_TENS[n // 10])
        n %= 10
        if n:
            out.append(_ONES[n])
    elif n or not out:
        out.append(_ONES[n])
    return out


def _cardinal(n: int) -> List[str]:
    if n < 1000:
        return _below_1000(n)
    out: List[str] = []
    for value, name in _SCALES:
        if n >= value:
            out += _cardinal(n // value) + [name]
            n %= value
    if n:
        out += _below_1000(n)
    return out


def spell_number(digits: str, year: bool = False) -> str:
    """A string of ASCII digits as English words, upper case, no "AND", no hyphens.

    ``"21"`` -> ``"TWENTY ONE"``, ``"2019"`` -> ``"TWO THOUSAND NINETEEN"``; with ``year=True`` a number
    1100-1999 or 2010-2099 is read as a year (``"NINETEEN EIGHTY FOUR"``, ``"TWENTY NINETEEN"``) and
    ``2000-2009`` as ``"TWO THOUSAND [N]"``. Leading zeros are read digit by digit (``"007"`` -> ``"ZERO
    ZERO SEVEN"``). Raises ValueError for anything but digits or numbers of 16 digits and more.
    """
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"spell_number: {digits!r} is not a string of digits")
    if len(digits) > 1 and digits[0] == "0":
        return " ".join(_ONES[int(d)] for d in digits)
    if len(digits) >= 16:
        raise ValueError(f"spell_number: {digits!r} is too long")
    n = int(digits)
    if year and len(digits) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099):
        hi, lo = divmod(n, 100)
        tail = ["HUNDRED"] if lo == 0 else (["O", _ONES[lo]] if lo < 10 else _below_1000(lo))
        return " ".join(_below_1000(hi) + tail)
    return " ".join(_cardinal(n))


# ---------------------------------------------------------------------------------------- problems


@dataclass
class Report:
    """Counted problems of one split (see the module docstring)."""

    split: str
    strict: bool = False
    max_examples: int = 5
    counts: Counter = field(default_factory=Counter)
    examples: Dict[str, List[str]] = field(default_factory=dict)
    kept: int = 0
    info: Dict[str, Any] = field(default_factory=dict)

    def add(self, reason: str, where: str, detail: str = "") -> None:
        self.counts[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < self.max_examples:
            ex.append(f"{where}: {detail}" if detail else str(where))

    def merge(self, other: "Report") -> None:
        for reason, n in other.counts.items():
            self.counts[reason] += n
            ex = self.examples.setdefault(reason, [])
            ex.extend(other.examples.get(reason, [])[: max(0, self.max_examples - len(ex))])

    @property
    def problems(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def summary(self) -> str:
        head = f"{self.split}: {self.kept} utterances kept"
        if self.ok:
            return head + ", no problems"
        lines = [head + f", {self.problems} problem(s):"]
        for reason in sorted(self.counts):
            lines.append(f"  {reason}: {self.counts[reason]}")
            lines += [f"    e.g. {e}" for e in self.examples.get(reason, [])]
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        return {"split": self.split, "kept": self.kept, "problems": self.problems,
                "counts": dict(sorted(self.counts.items())),
                "examples": {k: self.examples[k] for k in sorted(self.examples)}, **self.info}

    def error(self) -> ManifestError:
        return ManifestError(f"--strict: {self.problems} problem(s) in split {self.split!r} "
                             f"(nothing written for it):\n" + self.summary().split("\n", 1)[1])


# ----------------------------------------------------------------------------------------- writing


def _audio_root(utterances: Sequence[Utterance]) -> str:
    if not utterances:
        return ""
    return os.path.commonpath([os.path.dirname(u.audio) for u in utterances])


def write_split(dest: PathLike, split: str, utterances: Iterable[Utterance], report: Optional[Report] = None,
                audio_root: Optional[PathLike] = None, extra_labels: Sequence[str] = ()) -> Report:
    """Write ``<split>.tsv/.wrd/.ltr[/.<extra label>]/.report.json`` atomically (see the module docstring).

    ``utterances`` is streamed to temporary files when ``audio_root`` is given (else it is listed first to
    find the common directory); an exception while iterating it leaves the old files as they were and no
    temporary file. Raises ManifestError (after writing the report) when ``report.strict`` and it counted
    problems, or when an utterance is outside ``audio_root``, has no words, a non-positive sample count or an
    empty or missing line of one of ``extra_labels``.
    """
    dest = os.fspath(dest)
    os.makedirs(dest, exist_ok=True)
    report = report if report is not None else Report(split)
    base = os.path.join(dest, split)
    if report.strict and not report.ok:
        atomic_write_text(base + ".report.json", [json.dumps(report.to_dict(), indent=1)])
        raise report.error()
    if audio_root is None:
        utterances = list(utterances)
        root = _audio_root(utterances)
    else:
        root = os.path.abspath(os.fspath(audio_root))
    extra_labels = tuple(extra_labels)
    # the label files and the report first, the .tsv last: a .tsv present means its labels are complete
    paths = [base + ".wrd", base + ".ltr"] + [f"{base}.{ext}" for ext in extra_labels] + [base + ".report.json",
                                                                                            base + ".tsv"]
    with atomic_files(paths) as tmps, contextlib.ExitStack() as stack:
        wrd, ltr, *extra = [stack.enter_context(open(t, "w", encoding="utf-8", newline="\n")) for t in tmps[:-2]]
        tsv = stack.enter_context(open(tmps[-1], "w", encoding="utf-8", newline="\n"))
        tsv.write(root + "\n")
        kept = 0
        for u in utterances:
            rel = os.path.relpath(u.audio, root)
            if rel.startswith(".."):
                raise ManifestError(f"{split}: {u.audio} is not under the audio root {root}")
            if not u.words.strip() or u.num_samples <= 0:
                raise ManifestError(f"{split}: utterance {u.id} ({u.audio}) has no words or no samples")
            lines = dict(u.labels)
            if any(not lines.get(ext, "").strip() for ext in extra_labels):
                raise ManifestError(f"{split}: utterance {u.id} ({u.audio}) has no or an empty "
                                    f"{'/'.join(extra_labels)} label line")
            tsv.write(f"{rel}\t{u.num_samples}\n")
            wrd.write(u.words + "\n")
            ltr.write(to_letters(u.words) + "\n")
            for ext, f in zip(extra_labels, extra):
                f.write(lines[ext] + "\n")
            kept += 1
        report.kept = kept
        with open(tmps[-2], "w", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(report.to_dict(), indent=1) + "\n")
        stack.close()  # every file flushed and closed before the renames
    return report


def write_segmented_split(dest: PathLike, split: str, results: Iterable[Any], strict: bool, audio_root: PathLike,
                          problems: Iterable[Tuple[str, str, str]] = (), stats: Optional[Counter] = None,
                          info: Optional[Mapping[str, Any]] = None, extra_labels: Sequence[str] = ()
                          ) -> Tuple[List[Utterance], Report]:
    """Gather the per-recording results of a segmenting builder (TED-LIUM talks, Switchboard conversations; TIMIT
    speakers) and write the split with :func:`write_split` (``extra_labels`` as there).

    Each result has ``utterances`` (kept segments), ``stats`` (a Counter of normalisation changes, stored in the
    report as ``normalisation``) and ``problems`` (``(reason, where, detail)``); ``problems`` adds those found
    before the workers ran (e.g. transcripts without audio) and ``stats`` the changes counted then (e.g. while
    reading the transcripts). Returns (utterances, report).
    """
    report = Report(split, strict=strict)
    stats = Counter(stats or {})
    utts: List[Utterance] = []
    for reason, where, detail in problems:
        report.add(reason, where, detail)
    for r in results:
        utts += r.utterances
        stats.update(r.stats)
        for reason, where, detail in r.problems:
            report.add(reason, where, detail)
    report.info["normalisation"] = dict(sorted(stats.items()))
    report.info.update(info or {})
    write_split(dest, split, utts, report, audio_root=audio_root, extra_labels=extra_labels)
    logger.info("%s\n  normalisation: %s", report.summary(),
                ", ".join(f"{k} {v}" for k, v in sorted(stats.items())) or "nothing changed")
    return utts, report


def dictionary_lines(counts: Mapping[str, int]) -> List[str]:
    """fairseq Dictionary lines ``<symbol> <count>``, count descending then symbol."""
    return [f"{s} {n}" for s, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def letter_counts(splits: Mapping[str, Sequence[Utterance]]) -> Counter:
    counts: Counter = Counter()
    for utts in splits.values():
        for u in utts:
            for w in u.words.split():
                counts.update(w)
                counts[WORD_BOUNDARY] += 1
    return counts


def write_corpus_files(dest: PathLike, splits: Mapping[str, Sequence[Utterance]],
                       lm_splits: Sequence[str]) -> Dict[str, str]:
    """``dict.ltr.txt`` over all ``splits``; ``lexicon.txt`` and ``lm.txt`` over ``lm_splits``.

    Returns ``{"dict": path, "lexicon": path, "lm_text": path}``.
    """
    dest = os.fspath(dest)
    os.makedirs(dest, exist_ok=True)
    counts = letter_counts(splits)
    paths = {k: os.path.join(dest, n) for k, n in (("dict", "dict.ltr.txt"), ("lexicon", "lexicon.txt"),
                                                     ("lm_text", "lm.txt"))}
    atomic_write_text(paths["dict"], dictionary_lines(counts))
    seen = set()
    lm_lines: List[str] = []
    for name in lm_splits:
        for u in splits.get(name, ()):
            if u.id not in seen:
                seen.add(u.id)
                lm_lines.append(u.words)
    words = sorted({w for line in lm_lines for w in line.split()})
    atomic_write_text(paths["lexicon"], lexicon_lines(build_lexicon(words)))
    atomic_write_text(paths["lm_text"], lm_lines)
    return paths


# ----------------------------------------------------------------------------------------- workers


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "file"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int = 1, desc: str = "",
                 progress: bool = True, chunksize: Optional[int] = None, unit: str = "file") -> List[R]:
    """``[fn(x) for x in items]`` on a process pool of ``workers``, with a progress bar, in input order."""
    items = list(items)
    out: List[R] = []
    with progress_bar(len(items), desc, progress, unit) as bar:
        if workers <= 1 or len(items) < 2:
            for x in items:
                out.append(fn(x))
                bar.update(1)
            return out
        from concurrent.futures import ProcessPoolExecutor

        chunksize = chunksize or max(1, min(256, len(items) // (workers * 8) or 1))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for r in pool.map(fn, items, chunksize=chunksize):
                out.append(r)
                bar.update(1)
    return out


# --------------------------------------------------------------------------------------------- CLI


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An ArgumentParser with the options every builder shares (``--help`` included)."""
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="corpus directory (as downloaded and unpacked)")
    p.add_argument("--dest", required=True, help="output directory for the manifests and labels")
    p.add_argument("--workers", type=int, default=default_workers(),
                   help="worker processes (default: min(cpu count, 8) = %(default)s)")
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 1, naming the file and line) on any missing, bad or unmatched file "
                        "instead of counting it in <split>.report.json")
    p.add_argument("--overwrite", action="store_true",
                   help="convert audio again even where a converted file exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)


def run_main(prog: str, fn: Callable[[], Any]) -> int:
    """Run ``fn()``; print ManifestError/OSError/ValueError as ``prog: error: ...`` and return 1, else 0."""
    try:
        fn()
    except (ManifestError, OSError, ValueError) as e:
        return cli_error(prog, e)
    return 0
