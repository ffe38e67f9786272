"""Fix ``fix_batch_by_size_keeps_last_batch``: ``data_utils.batch_by_size`` keeps the last batch whatever its size.

Breaks without it:
    every epoch of training and validation silently skips the utterances of the last batch when its size is not a
    multiple of ``dataset.required_batch_size_multiple`` (8 by default), and a split with fewer utterances than that
    fails with
    ``Exception: The dataset is empty. This could indicate that all elements in the dataset have been skipped.``
Why:
    fairseq-fixed's ``batch_by_size`` drops the last batch when its size is not a multiple of
    ``required_batch_size_multiple`` (``b = b[:-1]``); fairseq 0.12.2 kept it.
Versions:
    fairseq-fixed 0.12.3.1 only (not needed on fairseq 0.12.2).
Fix:
    :func:`batch_by_size` calls fairseq's and appends the indices it dropped as one last batch (not with
    ``fixed_shapes``, which fairseq batches differently).
Test:
    ``tests/test_compat.py::test_batch_by_size_keeps_last_batch`` (4, 12, 16 and 20 utterances).
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, List

import numpy as np

from ._patching import ALREADY_APPLIED, APPLIED, DATA_UTILS, NOT_NEEDED, ORIGINALS, replace_attribute


def batch_by_size(indices: Any, num_tokens_fn: Any, num_tokens_vec: Any = None, max_tokens: Any = None,
                  max_sentences: Any = None, required_batch_size_multiple: int = 1,
                  fixed_shapes: Any = None) -> List[np.ndarray]:
    """fairseq's ``data_utils.batch_by_size`` without dropping the last, smaller batch."""
    if not isinstance(indices, np.ndarray):
        indices = np.fromiter(indices, dtype=np.int64, count=-1)
    batches = ORIGINALS[f"{DATA_UTILS}.batch_by_size"](
        indices, num_tokens_fn, num_tokens_vec=num_tokens_vec, max_tokens=max_tokens, max_sentences=max_sentences,
        required_batch_size_multiple=required_batch_size_multiple, fixed_shapes=fixed_shapes)
    # batches are consecutive slices of ``indices``; what the original dropped is the tail
    covered = sum(len(b) for b in batches)
    if fixed_shapes is None and covered < len(indices):
        batches.append(indices[covered:])
    return batches


def fix_batch_by_size_keeps_last_batch() -> str:
    """``batch_by_size`` keeps the last batch whatever its size."""
    data_utils = importlib.import_module(DATA_UTILS)
    if data_utils.batch_by_size is batch_by_size:
        return ALREADY_APPLIED
    if "b = b[:-1]" not in inspect.getsource(data_utils.batch_by_size):
        return NOT_NEEDED
    replace_attribute(DATA_UTILS, "batch_by_size", batch_by_size)
    return APPLIED
