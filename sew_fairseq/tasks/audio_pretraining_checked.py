"""fairseq task ``audio_pretraining_checked``: ``audio_pretraining`` that checks its manifests first.

Before a split is loaded, every line of ``<task.data>/<split>.tsv`` is checked against its audio
header (see :mod:`manifests.check`): missing/empty/corrupt files, wrong sample rate,
stereo, wrong sample counts and malformed lines.

- ``task.manifest_check=error`` (default): stop with a :class:`ManifestError` naming the manifest,
  line, file, reason and fix, e.g.
  ``data/train.tsv:7: /data/a.wav: sample rate 8000 Hz, expected 16000 Hz [wrong_rate]. Fix: ...``
- ``task.manifest_check=skip``: log and drop bad lines. The user's data directory is not modified:
  the kept lines are written to a filtered copy of the manifest in a cache directory
  (``task.manifest_check_cache_dir``, default ``<tmp>/sew_fairseq_manifests-<uid>``), and the
  dataset's ``skipped_indices`` are expressed in the original manifest's numbering, so a label
  file in the data directory (``<split>.ltr``) still lines up for a fine-tuning task built on this.
- ``task.manifest_check=off``: plain ``audio_pretraining``.

Usage::

    fairseq-hydra-train common.user_dir=/path/to/sew_fairseq task._name=audio_pretraining_checked \\
        task.data=/path/to/manifests task.manifest_check=skip ...
"""

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.audio_pretraining import AudioPretrainingConfig, AudioPretrainingTask

from manifests.records import ManifestError

from manifests.check import ManifestReport, check_manifest, write_filtered_manifest

logger = logging.getLogger(__name__)

MANIFEST_CHECK_CHOICES = ChoiceEnum(["error", "skip", "off"])

# (abs path, mtime_ns, size, sample rate, mode) -> report, so that reloading a split is free
_REPORT_CACHE: Dict[Tuple[str, int, int, int, str], ManifestReport] = {}


@dataclass
class AudioPretrainingCheckedConfig(AudioPretrainingConfig):
    manifest_check: MANIFEST_CHECK_CHOICES = field(  # type: ignore[valid-type]
        default="error",
        metadata={
            "help": "check every manifest line against its audio header before loading a split "
                    "(file exists and is readable, not empty, sample rate == task.sample_rate, "
                    "mono, sample count matches): 'error' stops at the first bad line with its "
                    "line number and a fix, 'skip' logs and drops bad lines (using a filtered copy "
                    "of the manifest; the data directory is not modified), 'off' does no check"
        },
    )
    manifest_check_cache_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "directory for the filtered manifests written in manifest_check=skip mode "
                    "(default: <system temp dir>/sew_fairseq_manifests-<uid>)"
        },
    )


def _cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    """Read ``key`` from a DictConfig, dataclass or argparse Namespace."""
    try:
        value = getattr(cfg, key)
    except Exception:  # missing key (Namespace / struct DictConfig) or unresolvable interpolation
        return default
    return default if value is None else value


def _cached_check(tsv: str, sample_rate: int, mode: str) -> ManifestReport:
    st = os.stat(tsv) if os.path.exists(tsv) else None
    key = (os.path.abspath(tsv), st.st_mtime_ns if st else -1, st.st_size if st else -1,
           sample_rate, mode)
    report = _REPORT_CACHE.get(key)
    if report is None:
        report = check_manifest(tsv, sample_rate=sample_rate, mode=mode)
        _REPORT_CACHE[key] = report
    return report


def _default_cache_dir() -> str:
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return os.path.join(tempfile.gettempdir(), f"sew_fairseq_manifests-{uid}")


@contextlib.contextmanager
def _data_dir(cfg: Any, path: str) -> Iterator[None]:
    """Temporarily point ``cfg.data`` at ``path`` (also on a read-only/struct DictConfig)."""
    try:
        from omegaconf import DictConfig, read_write
    except ImportError:  # pragma: no cover - fairseq depends on omegaconf
        DictConfig = ()  # type: ignore[assignment]
    old = cfg.data
    ctx = read_write(cfg) if isinstance(cfg, DictConfig) else contextlib.nullcontext()
    with ctx:
        cfg.data = path
    try:
        yield
    finally:
        ctx = read_write(cfg) if isinstance(cfg, DictConfig) else contextlib.nullcontext()
        with ctx:
            cfg.data = old


@register_task("audio_pretraining_checked", dataclass=AudioPretrainingCheckedConfig)
class AudioPretrainingCheckedTask(AudioPretrainingTask):
    """``audio_pretraining`` with a manifest check before each split is loaded."""

    cfg: AudioPretrainingCheckedConfig

    def load_dataset(self, split: str, task_cfg: Any = None, **kwargs: Any) -> None:
        effective = task_cfg or self.cfg
        mode = str(_cfg_get(self.cfg, "manifest_check", "error"))
        if mode not in ("error", "skip", "off"):
            raise ValueError(f"task.manifest_check must be error, skip or off, got {mode!r}")
        if mode == "off" or _cfg_get(effective, "binarized_dataset", False):
            return super().load_dataset(split, task_cfg, **kwargs)

        data = str(self.cfg.data)
        sample_rate = int(_cfg_get(effective, "sample_rate", None) or self.cfg.sample_rate)

        if _cfg_get(effective, "multi_corpus_keys", None) is not None:
            # split = "key:file,key2:file2" (see AudioPretrainingTask); no filtered copies here
            for part in split.split(","):
                name = part.split(":")[-1].strip()
                report = _cached_check(os.path.join(data, f"{name}.tsv"), sample_rate, "skip")
                if not report.ok:
                    raise report.problems[0].to_error(report.tsv_path, len(report.problems) - 1)
            return super().load_dataset(split, task_cfg, **kwargs)

        tsv = os.path.join(data, f"{split}.tsv")
        report = _cached_check(tsv, sample_rate, mode)  # raises ManifestError in error mode
        if report.ok:
            logger.info("manifest check: %s", report.summary())
            return super().load_dataset(split, task_cfg, **kwargs)
        if report.num_kept == 0:
            first = report.problems[0].to_error(tsv)
            raise ManifestError(tsv, None, "no_usable_lines",
                                f"all {report.num_entries} lines are bad "
                                f"({report.reason_counts}); the first: {first}",
                                hint="fix the audio files or the manifest")

        filtered_dir = self._filtered_dir(tsv, sample_rate)
        write_filtered_manifest(report, os.path.join(filtered_dir, f"{split}.tsv"))
        logger.warning("loading %s from the filtered copy %s (%d of %d lines)", tsv,
                       os.path.join(filtered_dir, f"{split}.tsv"), report.num_kept,
                       report.num_entries)
        with _data_dir(self.cfg, filtered_dir):
            super().load_dataset(split, task_cfg, **kwargs)
        self._renumber_skipped(split, report)

    def _filtered_dir(self, tsv: str, sample_rate: int) -> str:
        base = _cfg_get(self.cfg, "manifest_check_cache_dir", None) or _default_cache_dir()
        st = os.stat(tsv)
        key = f"{os.path.abspath(tsv)}|{st.st_mtime_ns}|{st.st_size}|{sample_rate}"
        digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        path = Path(base) / f"{Path(tsv).parent.name or 'data'}-{digest}"
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def _renumber_skipped(self, split: str, report: ManifestReport) -> None:
        """Express ``skipped_indices`` (used to align label files) in the original numbering."""
        dataset = self.datasets[split]
        skipped = getattr(dataset, "skipped_indices", None)
        if skipped is None:
            return
        kept = report.kept_indices
        dataset.skipped_indices = {kept[i] for i in skipped} | {
            p.index for p in report.problems if p.index is not None}
