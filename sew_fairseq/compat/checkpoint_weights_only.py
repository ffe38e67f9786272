"""Fix ``fix_checkpoint_weights_only``: fairseq's checkpoint loader on torch >= 2.6, through an allow-list.

Breaks without it:
    ``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` (so ``load_model_ensemble_and_task``, resuming training,
    fine-tuning from a pretrained checkpoint) fails with ``_pickle.UnpicklingError: Weights only load failed ...
    Unsupported global: GLOBAL fairseq.data.dictionary.Dictionary`` (a fine-tuned model's target dictionary),
    ``GLOBAL argparse.Namespace`` (legacy ``args``) or ``GLOBAL omegaconf...DictConfig`` (an older ``cfg``).
Why:
    torch 2.6 changed ``torch.load``'s default to ``weights_only=True``, which unpickles tensors and plain
    containers only, and fairseq calls ``torch.load(f, map_location=...)`` without ``weights_only``.
Versions:
    fairseq 0.12.2 and fairseq-fixed 0.12.3.1 with torch >= 2.6 (older torch loads with full unpickling).
Fix:
    inside ``fairseq.checkpoint_utils`` only, the name ``torch`` is bound to a stand-in whose ``load`` is
    :func:`sew_fairseq.checkpoints.safe_load.safe_load` (a restricted unpickler plus an allow-list of fairseq's and
    omegaconf's classes, never full unpickling: a pickle that would run code is refused); every other ``torch.*``
    attribute is torch's own.
Test:
    ``tests/test_compat.py::test_checkpoint_weights_only``; on a real fine-tuned checkpoint and malicious pickles,
    ``tests/test_checkpoint.py``.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import io
import logging
import pickle
import warnings
from typing import Any, Callable

import torch

from ._patching import ALREADY_APPLIED, APPLIED, CHECKPOINT_UTILS, NOT_NEEDED, replace_attribute

logger = logging.getLogger(__name__)


def torch_load_defaults_to_weights_only() -> bool:
    """True if a plain ``torch.load(f)`` refuses a pickled ``argparse.Namespace``."""
    buffer = io.BytesIO()
    torch.save(argparse.Namespace(probe=1), buffer)
    buffer.seek(0)
    try:
        with warnings.catch_warnings():  # torch 2.4/2.5 warn about the coming default
            warnings.simplefilter("ignore", FutureWarning)
            torch.load(buffer)
    except pickle.UnpicklingError:
        return True
    return False


def calls_torch_load_without_weights_only(function: Callable[..., Any]) -> bool:
    """True if ``function``'s source calls ``torch.load`` and never mentions ``weights_only``."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        logger.warning("cannot read the source of %r; leaving it unpatched", function)
        return False
    return "torch.load(" in source and "weights_only" not in source


class _TorchWithSafeLoad:
    """Stand-in for the ``torch`` module inside ``fairseq.checkpoint_utils``.

    ``load`` is :func:`sew_fairseq.checkpoints.safe_load.safe_load`; every other attribute is torch's.
    """

    def __init__(self, torch_module: Any) -> None:
        self._torch = torch_module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._torch, name)

    def __repr__(self) -> str:
        return f"<torch with sew_fairseq safe_load: {self._torch!r}>"

    @staticmethod
    def load(f: Any, map_location: Any = None, **kwargs: Any) -> Any:
        from ..checkpoints.safe_load import safe_load

        if kwargs:
            logger.debug("torch.load arguments %s ignored; loading with safe_load", sorted(kwargs))
        return safe_load(f, map_location=map_location)


def fix_checkpoint_weights_only() -> str:
    """Route ``fairseq.checkpoint_utils``' ``torch.load`` calls through ``safe_load``."""
    checkpoint_utils = importlib.import_module(CHECKPOINT_UTILS)
    if isinstance(checkpoint_utils.torch, _TorchWithSafeLoad):
        return ALREADY_APPLIED
    if not (
        torch_load_defaults_to_weights_only()
        and calls_torch_load_without_weights_only(checkpoint_utils.load_checkpoint_to_cpu)
    ):
        return NOT_NEEDED
    replace_attribute(CHECKPOINT_UTILS, "torch", _TorchWithSafeLoad(checkpoint_utils.torch))
    return APPLIED
