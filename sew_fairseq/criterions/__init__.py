"""Registered fairseq criterions (imported by the package ``__init__``: fairseq auto-imports only models/tasks)."""
from . import ctc_lm_wer, ctc_early_exit  # noqa: F401
