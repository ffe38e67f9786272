"""Fix ``fix_root_logger_debug``: importing fairseq's models no longer sets the root logger to DEBUG.

Breaks without it:
    nothing raises; after ``import fairseq.models`` (which ``import sew_fairseq`` does) every library's DEBUG
    messages print in a user's script or notebook.
Why:
    ``fairseq/models/wav2vec/wav2vec2_classification.py``, imported by ``fairseq.models.wav2vec``, calls
    ``logging.basicConfig(level=logging.DEBUG)`` at import.
Versions:
    fairseq-fixed 0.12.3.1 (fairseq 0.12.2 has no ``wav2vec2_classification`` module).
Fix:
    if that module calls ``basicConfig(level=logging.DEBUG)`` and the root logger is at DEBUG, the root logger is
    put back to Python's default WARNING (fairseq's command-line tools configure their own logging afterwards).
    Applied first, since importing fairseq's models is what sets it. When logging was configured before fairseq
    was imported, ``basicConfig`` did nothing, and this fix leaves the root logger alone unless it is at DEBUG
    (a root logger a user set to DEBUG before importing is put back to WARNING too: the two look the same).
Test:
    ``tests/test_compat.py::test_root_logger_debug`` (fresh interpreters: DEBUG after importing fairseq's module,
    WARNING after ``import sew_fairseq``).
"""
from __future__ import annotations

import importlib
import inspect
import logging

from ._patching import ALREADY_APPLIED, APPLIED, NOT_NEEDED

_ROOT_LOGGER_FIXED = False


def fix_root_logger_debug() -> str:
    """Undo fairseq's ``logging.basicConfig(level=logging.DEBUG)`` at import."""
    try:
        module = importlib.import_module("fairseq.models.wav2vec.wav2vec2_classification")
        source = inspect.getsource(module)
    except (ImportError, OSError, TypeError):
        return NOT_NEEDED
    global _ROOT_LOGGER_FIXED
    if _ROOT_LOGGER_FIXED:
        return ALREADY_APPLIED
    root = logging.getLogger()
    if "basicConfig(level=logging.DEBUG)" not in source or root.level != logging.DEBUG:
        return NOT_NEEDED
    root.setLevel(logging.WARNING)
    _ROOT_LOGGER_FIXED = True
    return APPLIED
