"""Fix ``fix_atomic_checkpoint_copy``: the copies to ``checkpoint_last.pt`` / ``checkpoint_best.pt`` are atomic.

Breaks without it:
    a run killed while fairseq copies its newest checkpoint to ``checkpoint_last.pt`` (or ``checkpoint_best.pt``,
    ``checkpoint.best_*.pt``) leaves a truncated file, and the restart, which resumes from it, fails with
    ``RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory``.
Why:
    ``checkpoint_utils.save_checkpoint`` writes the first checkpoint of a save atomically (to a temporary file, then
    renamed), but makes the others with a plain ``PathManager.copy``, which writes in place.
Versions:
    fairseq 0.12.2 and fairseq-fixed 0.12.3.1, any torch.
Fix:
    inside ``fairseq.checkpoint_utils`` only, ``PathManager`` is wrapped so that a copy to a local file goes
    through the project's atomic writer, :func:`manifests.atomic.atomic_file` (a temporary file next to the
    target, renamed over it), so a kill leaves the old file whole; remote paths and every other ``PathManager``
    method are fairseq's.
Test:
    ``tests/test_compat.py::test_atomic_checkpoint_copy`` (a copy that dies half-way truncates with fairseq's copy,
    leaves the old file with the fixed one); the fixed copy in a real run resumed after SIGKILL,
    ``tests/test_training.py::test_sigkill_then_same_command_resumes_from_checkpoint_last``.
"""
from __future__ import annotations

import importlib
import inspect
import os
import shutil
from typing import Any

from manifests.atomic import atomic_file
from ._patching import ALREADY_APPLIED, APPLIED, CHECKPOINT_UTILS, NOT_NEEDED, replace_attribute


class _AtomicCopyPathManager:
    """fairseq's ``PathManager`` with an atomic ``copy`` for local files; everything else is fairseq's."""

    def __init__(self, path_manager: Any):
        self._path_manager = path_manager

    def __getattr__(self, name: str) -> Any:
        return getattr(self._path_manager, name)

    def copy(self, src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if self._path_manager.path_requires_pathmanager(dst_path):  # remote storage: fairseq's own copy
            return self._path_manager.copy(src_path, dst_path, overwrite=overwrite)
        if os.path.exists(dst_path) and not overwrite:
            return False
        # no suffix: the temporary ".tmp-*" file cannot be taken for a checkpoint by whatever lists "*.pt"
        with atomic_file(dst_path) as tmp:
            shutil.copyfile(src_path, tmp)
        return True


def fix_atomic_checkpoint_copy() -> str:
    """Copies to ``checkpoint_last.pt`` / ``checkpoint_best.pt`` are atomic."""
    checkpoint_utils = importlib.import_module(CHECKPOINT_UTILS)
    if isinstance(checkpoint_utils.PathManager, _AtomicCopyPathManager):
        return ALREADY_APPLIED
    if "PathManager.copy(" not in inspect.getsource(checkpoint_utils.save_checkpoint):
        return NOT_NEEDED
    replace_attribute(CHECKPOINT_UTILS, "PathManager", _AtomicCopyPathManager(checkpoint_utils.PathManager))
    return APPLIED
