"""Registered fairseq tasks."""
from . import audio_pretraining_checked  # noqa: F401
from . import audio_finetuning_checked  # noqa: F401
