"""Check a fairseq audio manifest before training, naming the line and the fix for each problem.

A fairseq manifest (``<split>.tsv``) has the audio root directory on its first line, then one
line per utterance with the path relative to that root and its length in samples, TAB-separated::

    /data/LibriSpeech/train-clean-100
    103/1240/103-1240-0000.flac	225360
    103/1240/103-1240-0001.flac	255120

A packed manifest (``sew-manifest pack``) names zip members instead, ``shard.zip:offset:length<TAB>num_samples``;
they are checked the same way, and the offset must point at a stored member's data.

fairseq reads it lazily: a missing, corrupt, 8 kHz or mis-counted file surfaces hours into training
as an assertion or a crash inside a data-loader worker. :func:`check_manifest` reads every audio
header once (``soundfile.info``, no decoding; a thread pool for large manifests) and reports, per
line: malformed line (no TAB, a count that is not an integer), missing file, empty file,
unreadable/corrupt file, no audio frames, wrong sample rate, more than one channel, and a sample
count that differs from the file.

``mode="error"`` raises :class:`ManifestError` for the first bad line (saying how many more there
are); ``mode="skip"`` logs and counts the bad lines and returns a report whose kept lines
:func:`write_filtered_manifest` (and :func:`write_filtered_labels` for ``.ltr``/``.wrd`` files)
can write out.

Example::

    report = check_manifest("data/train.tsv", sample_rate=16000, mode="skip")
    print(report.summary())   # "data/train.tsv: 2 of 2703 lines skipped (missing_file: 2)"
    write_filtered_manifest(report, "filtered/train.tsv")
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .atomic import atomic_open
from .audio import AudioError, audio_info
from .records import HINTS, ManifestError, PathLike

logger = logging.getLogger(__name__)

MODES = ("error", "skip")
#: Lines are checked in batches of this size (bounds memory on manifests of millions of lines).
_BATCH = 2048
#: Bad lines logged one by one at WARNING level in skip mode; the rest go to DEBUG.
_MAX_WARNINGS = 20

@dataclass(frozen=True)
class ManifestEntry:
    """A good manifest line: ``relpath<TAB>num_samples`` at 1-based ``line_no``.

    ``index`` is the 0-based entry index fairseq uses (line number minus the root line, minus 1);
    label files (``.ltr``/``.wrd``) are aligned with it.
    """

    line_no: int
    relpath: str
    num_samples: int

    @property
    def index(self) -> int:
        return self.line_no - 2


@dataclass(frozen=True)
class ManifestProblem:
    """A bad line (or, for fatal reasons, the whole manifest)."""

    line_no: Optional[int]
    reason: str
    detail: str
    audio_path: Optional[str] = None
    hint: str = ""

    @property
    def index(self) -> Optional[int]:
        """0-based entry index as fairseq counts it (None for the root line / whole file)."""
        return None if self.line_no is None or self.line_no < 2 else self.line_no - 2

    def to_error(self, tsv_path: PathLike, more: int = 0) -> ManifestError:
        return ManifestError(tsv_path, self.line_no, self.reason, self.detail, self.audio_path,
                             self.hint or None, more)


@dataclass
class ManifestReport:
    """Result of :func:`check_manifest`: the good entries and the bad lines, in line order."""

    tsv_path: Path
    root: str
    sample_rate: int
    mode: str
    num_entries: int = 0
    kept: List[ManifestEntry] = field(default_factory=list)
    problems: List[ManifestProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def num_kept(self) -> int:
        return len(self.kept)

    @property
    def num_skipped(self) -> int:
        return len(self.problems)

    @property
    def reason_counts(self) -> Dict[str, int]:
        """Bad lines per reason, e.g. ``{"missing": 2, "wrong_rate": 1}``."""
        return dict(Counter(p.reason for p in self.problems))

    @property
    def kept_indices(self) -> List[int]:
        return [e.index for e in self.kept]

    @property
    def total_samples(self) -> int:
        return sum(e.num_samples for e in self.kept)

    def summary(self) -> str:
        if self.ok:
            return (f"{self.tsv_path}: all {self.num_entries} lines ok "
                    f"({self.total_samples / self.sample_rate / 3600:.2f} h)")
        counts = ", ".join(f"{r}: {n}" for r, n in sorted(self.reason_counts.items()))
        return f"{self.tsv_path}: {self.num_skipped} of {self.num_entries} lines bad ({counts})"


# ---------------------------------------------------------------------------------------------


def _probe(path: str) -> Tuple[Optional[str], str, int, int, int]:
    """Read one audio header: (reason or None, detail, sample rate, channels, frames)."""
    try:
        info = audio_info(path)
    except AudioError as e:
        return e.reason, e.detail, 0, 0, 0
    return None, "", info.sample_rate, info.channels, info.frames


def _probe_many(paths: Sequence[str]) -> List[Tuple[Optional[str], str, int, int, int]]:
    return [_probe(p) for p in paths]


def parse_manifest_line(line: str) -> Tuple[Optional[Tuple[str, int]], Optional[Tuple[str, str]]]:
    """Parse ``relpath<TAB>num_samples`` as fairseq does (strip, split on TAB, int()).

    Returns ((relpath, count), None) or (None, (reason, detail)).
    """
    stripped = line.strip()
    if not stripped:
        return None, ("malformed_line", "empty line")
    items = stripped.split("\t")
    if len(items) != 2:
        if len(items) == 1:
            spaced = " (separated by spaces?)" if len(stripped.split()) > 1 else ""
            return None, ("malformed_line", f"no TAB between path and sample count{spaced}: "
                                            f"{stripped[:120]!r}")
        return None, ("malformed_line", f"expected 2 TAB-separated fields, found {len(items)}: "
                                        f"{stripped[:120]!r}")
    relpath, count_text = items
    if not relpath.strip():
        return None, ("malformed_line", "empty path")
    try:
        count = int(count_text)
    except ValueError:
        return None, ("bad_count", f"sample count {count_text[:40]!r} is not an integer")
    if count <= 0:
        return None, ("bad_count", f"sample count {count} is not positive")
    return (relpath, count), None


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def check_manifest(tsv_path: PathLike, sample_rate: int = 16000, mode: str = "error",
                   num_threads: Optional[int] = None,
                   progress: Optional[bool] = None) -> ManifestReport:
    """Check every line of a fairseq manifest against its audio file's header.

    Args:
        tsv_path: the manifest, e.g. ``data/train.tsv`` (``/root/dir`` then ``a.wav<TAB>16000``).
        sample_rate: the rate every file must have (fairseq never resamples).
        mode: "error" raises :class:`ManifestError` on the first bad line; "skip" logs each bad
            line and returns them in the report. Problems with the whole manifest (file or root
            line missing, root directory not found) raise in both modes.
        num_threads: header-reading threads (default: 2 per CPU, at most 16; 1 = no pool).
            Threads help when headers come from disk or network storage; on files already in the
            page cache one thread reads about 40,000 headers a second.
        progress: tqdm bar; default: only for manifests of more than 1000 lines.

    Returns:
        a :class:`ManifestReport` (in "error" mode, only when every line is good).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    tsv = Path(tsv_path)
    try:
        text = tsv.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise ManifestError(tsv, None, "manifest_not_found", "manifest file not found") from None
    except OSError as e:
        raise ManifestError(tsv, None, "manifest_not_found", f"cannot read manifest ({e})") from e
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]

    root = lines[0].strip() if lines else ""
    if not root:
        raise ManifestError(tsv, 1, "missing_root", "first line is empty; expected the audio root "
                            "directory" if lines else "manifest is empty")
    if "\t" in root:
        raise ManifestError(tsv, 1, "missing_root", f"first line {root[:120]!r} looks like an entry, "
                            "not the audio root directory")
    if not os.path.isdir(root):
        rel = " (relative to the current directory " + os.getcwd() + ")" \
            if not os.path.isabs(root) else ""
        raise ManifestError(tsv, 1, "root_not_found", f"root directory {root!r} does not exist{rel}")

    report = ManifestReport(tsv_path=tsv, root=root, sample_rate=sample_rate, mode=mode,
                            num_entries=len(lines) - 1)
    parsed: List[Tuple[int, str, int]] = []
    problems: Dict[int, ManifestProblem] = {}
    for line_no, line in enumerate(lines[1:], start=2):
        entry, problem = parse_manifest_line(line)
        if entry is not None:
            parsed.append((line_no, entry[0], entry[1]))
        elif problem is not None:
            problems[line_no] = ManifestProblem(line_no, problem[0], problem[1], None,
                                                HINTS[problem[0]])

    show = progress if progress is not None else len(lines) > 1000
    threads = num_threads or min(16, 2 * (os.cpu_count() or 1))
    from tqdm import tqdm

    kept: List[ManifestEntry] = []
    # threads pay off when headers come from disk or network storage; each thread takes a chunk
    # of paths so that the pool's per-task overhead stays small next to a header read
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 and len(parsed) > 64 else None
    with tqdm(total=len(parsed), desc=f"checking {tsv.name}", unit="file",
              disable=not show) as bar, (pool or contextlib.nullcontext()):
        for batch in _batches(parsed, _BATCH):
            paths = [os.path.join(root, rel) for _, rel, _ in batch]
            if pool is None:
                results: List[Tuple[Optional[str], str, int, int, int]] = [_probe(p) for p in paths]
            else:
                chunk = max(16, len(paths) // threads + 1)
                results = [r for part in pool.map(_probe_many, _batches(paths, chunk)) for r in part]
            for (line_no, rel, count), path, probed in zip(batch, paths, results):
                reason, detail, rate, channels, frames = probed
                if reason is None:
                    reason, detail = _compare(count, sample_rate, rate, channels, frames)
                if reason is not None:
                    hint = HINTS[reason].format(rate=sample_rate)
                    problems[line_no] = ManifestProblem(line_no, reason, detail, path, hint)
                else:
                    kept.append(ManifestEntry(line_no, rel, count))
            bar.update(len(batch))

    report.kept = kept
    report.problems = [problems[k] for k in sorted(problems)]
    if report.problems:
        if mode == "error":
            raise report.problems[0].to_error(tsv, more=len(report.problems) - 1)
        _log_problems(report)
    return report


def _compare(count: int, expected_rate: int, rate: int, channels: int,
             frames: int) -> Tuple[Optional[str], str]:
    """First failing format check (reason, detail listing every failing one) or (None, "")."""
    issues: List[Tuple[str, str]] = []
    if rate != expected_rate:
        issues.append(("wrong_rate", f"sample rate {rate} Hz, expected {expected_rate} Hz"))
    if channels != 1:
        issues.append(("wrong_channels", f"{channels} channels, expected 1 (mono)"))
    if count != frames:
        issues.append(("count_mismatch", f"manifest says {count} samples, file has {frames}"))
    if not issues:
        return None, ""
    return issues[0][0], "; ".join(d for _, d in issues)


def _log_problems(report: ManifestReport) -> None:
    for i, p in enumerate(report.problems):
        level = logging.WARNING if i < _MAX_WARNINGS else logging.DEBUG
        where = f"{report.tsv_path}:{p.line_no}" + (f": {p.audio_path}" if p.audio_path else "")
        logger.log(level, "skipping %s: %s [%s]", where, p.detail, p.reason)
    if len(report.problems) > _MAX_WARNINGS:
        logger.warning("... %d more bad lines logged at DEBUG level",
                       len(report.problems) - _MAX_WARNINGS)
    logger.warning("%s; %d lines kept", report.summary(), report.num_kept)


def _atomic_write(path: Path, lines: Sequence[str]) -> None:
    with atomic_open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.writelines(line + "\n" for line in lines)


def write_filtered_manifest(report: ManifestReport, out_path: PathLike) -> Path:
    """Write the report's good lines as a manifest (root made absolute); returns ``out_path``.

    The file is written to a temporary name and renamed, so concurrent writers (one per
    distributed rank) leave a complete file.
    """
    out = Path(out_path)
    root = os.path.abspath(report.root)
    _atomic_write(out, [root] + [f"{e.relpath}\t{e.num_samples}" for e in report.kept])
    return out


def write_filtered_labels(report: ManifestReport, label_path: PathLike,
                          out_path: PathLike) -> Path:
    """Keep the lines of a label file (``.ltr``, ``.wrd``: one line per manifest entry) whose
    manifest line was kept. The label file must have one line per manifest entry."""
    src = Path(label_path)
    labels = src.read_text(encoding="utf-8", errors="surrogateescape").split("\n")
    if labels and labels[-1] == "":
        labels.pop()
    if len(labels) != report.num_entries:
        raise ManifestError(src, None, "label_mismatch",
                            f"{len(labels)} label lines for {report.num_entries} manifest entries "
                            f"in {report.tsv_path}",
                            hint="labels must be line-aligned with the manifest entries")
    out = Path(out_path)
    _atomic_write(out, [labels[i] for i in report.kept_indices])
    return out
