"""Registered fairseq tasks."""
from . import audio_pretraining_checked  # noqa: F401
