"""Parameter averaging of fairseq checkpoints of one model (``sew-average``): pretrained, fine-tuned, early exit.

    paths = last_checkpoints("ckpt/", 5)             # the 5 newest numbered checkpoints, newest first
    paths = best_checkpoints("ckpt/", 5)             # the 5 with the best validation value, best first
    state = average_checkpoints(paths)               # a checkpoint dict: paths[0]'s, with the averaged weights
    write_average(paths, "ckpt/average_last5.pt")    # both, written atomically; returns the paths averaged

What is averaged: every floating tensor of the ``model`` state dict, summed in float64 in the order given, divided
by the count and cast back to its own dtype (so N copies of one checkpoint average to it bit for bit). Integer and
bool tensors of ``model`` (counters, index buffers) are not averaged: they are the first checkpoint's. Everything
else (``cfg`` / ``args``, ``task_state`` with the output dictionary, ``extra_state``, the optimizer history and
state, an EMA copy in ``extra_state["ema"]``) is the first checkpoint's as well, so the result loads wherever the
first one does; ``extra_state["averaged_from"]`` lists the files averaged. The checkpoints must hold the same
tensor names, shapes and dtypes; the first difference is an :class:`AverageError` naming the key and both files.

Which files (fairseq's names, ``fairseq/checkpoint_utils.py`` ``save_checkpoint``): ``checkpoint<epoch>.pt`` at the
end of an epoch, ``checkpoint_<epoch>_<updates>.pt`` every ``checkpoint.save_interval_updates``;
``checkpoint_best.pt`` / ``checkpoint_last.pt`` are copies of numbered ones and never chosen by
:func:`last_checkpoints`. ``checkpoint.best_<metric>_<value>.pt`` (``checkpoint.keep_best_checkpoints``) are copies
too: :func:`best_checkpoints` considers them only where the numbered file they copy is gone. fairseq stores in every
checkpoint the validation value it was saved with (``extra_state["val_loss"]``: the first valid subset's
``checkpoint.best_checkpoint_metric``, ``loss`` by default, ``wer`` in the fine-tuning recipes; None when it was
saved without validating) and the run's ``cfg.checkpoint.maximize_best_checkpoint_metric``, which sets the direction.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

from .plugin import ConversionError, atomic_save, checkpoint_cfg, load_checkpoint

logger = logging.getLogger(__name__)

#: fairseq's numbered checkpoint names: end of an epoch, and every save_interval_updates within one
EPOCH_NAME = re.compile(r"checkpoint(\d+)\.pt")
UPDATE_NAME = re.compile(r"checkpoint_(\d+)_(\d+)\.pt")
#: checkpoint.keep_best_checkpoints copies: checkpoint.best_<metric>_<value with 3 decimals><random digit>.pt
KEEP_BEST_NAME = re.compile(r"checkpoint\.best_.+_\d+\.?\d*\.pt")


class AverageError(ValueError):
    """Checkpoints that cannot be averaged, or a directory without the checkpoints asked for; one line."""


def numbered_checkpoints(directory: str) -> List[Tuple[Tuple[int, int, int], str]]:
    """``(order key, path)`` of the numbered checkpoints in ``directory``, newest first.

    ``checkpoint<E>.pt`` is saved at the end of epoch E, after every ``checkpoint_<E>_<U>.pt`` of that epoch and
    before those of epoch E + 1: the key ``(E, 1, 0)`` against ``(E, 0, U)`` orders both kinds by file name alone."""
    if not os.path.isdir(directory):
        raise AverageError(f"{directory}: no such directory")
    found = []
    for name in os.listdir(directory):
        epoch, update = EPOCH_NAME.fullmatch(name), UPDATE_NAME.fullmatch(name)
        if epoch:
            found.append(((int(epoch.group(1)), 1, 0), os.path.join(directory, name)))
        elif update:
            found.append(((int(update.group(1)), 0, int(update.group(2))), os.path.join(directory, name)))
    return sorted(found, reverse=True)


def last_checkpoints(directory: str, n: int) -> List[str]:
    """The ``n`` numbered checkpoints of ``directory`` with the highest epoch / update numbers, newest first."""
    if n < 1:
        raise AverageError(f"the number of checkpoints to average must be at least 1, not {n}")
    found = [path for _, path in numbered_checkpoints(directory)]
    if len(found) < n:
        raise AverageError(f"{directory}: {n} numbered checkpoints (checkpoint<epoch>.pt, checkpoint_<epoch>_<updates>"
                           f".pt) asked for, {len(found)} found")
    return found[:n]


class Scored(NamedTuple):
    """A checkpoint's validation value and where it stands in training."""

    path: str
    value: Optional[float]  # extra_state["val_loss"]: the metric on the first valid subset, None if not validated
    metric: str  # cfg.checkpoint.best_checkpoint_metric
    maximize: bool  # cfg.checkpoint.maximize_best_checkpoint_metric
    position: Tuple[int, int]  # (epoch, updates) at which it was saved


def checkpoint_score(path: str) -> Scored:
    """What :func:`best_checkpoints` ranks by, read from one checkpoint (tensors memory-mapped, not read)."""
    state = _load(path, mmap=True)
    cfg = checkpoint_cfg(state, path)
    section = cfg.get("checkpoint") or {}
    extra = state.get("extra_state") or {}
    value = extra.get("val_loss")
    epoch = int((extra.get("train_iterator") or {}).get("epoch", 0))
    updates = int(((state.get("optimizer_history") or [{}])[-1]).get("num_updates", 0))
    return Scored(path, None if value is None else float(value), str(section.get("best_checkpoint_metric", "loss")),
                  bool(section.get("maximize_best_checkpoint_metric", False)), (epoch, updates))


def best_checkpoints(directory: str, n: int) -> List[str]:
    """The ``n`` checkpoints of ``directory`` with the best validation value, best first (ties: the newer first).

    Candidates are the numbered checkpoints and the ``checkpoint.best_*.pt`` copies, one per (epoch, updates);
    those saved without validation are left out. Better is higher when the run maximised its metric
    (``cfg.checkpoint.maximize_best_checkpoint_metric``), else lower; checkpoints that disagree on the metric or
    its direction are refused."""
    if n < 1:
        raise AverageError(f"the number of checkpoints to average must be at least 1, not {n}")
    numbered = [path for _, path in numbered_checkpoints(directory)]
    copies = sorted(os.path.join(directory, name) for name in os.listdir(directory) if KEEP_BEST_NAME.fullmatch(name))
    scored: Dict[Tuple[int, int], Scored] = {}
    for path in numbered + copies:  # a copy counts only where its numbered original is gone
        score = checkpoint_score(path)
        scored.setdefault(score.position, score)
    rated = [s for s in scored.values() if s.value is not None]
    for s in rated[1:]:
        if (s.metric, s.maximize) != (rated[0].metric, rated[0].maximize):
            raise AverageError(f"{rated[0].path} and {s.path} rank by different metrics: {_direction(rated[0])} "
                               f"against {_direction(s)}")
    if len(rated) < n:
        unrated = len(scored) - len(rated)
        raise AverageError(f"{directory}: {n} checkpoints with a validation value asked for, {len(rated)} found"
                           + (f" ({unrated} more saved without validation)" if unrated else ""))
    sign = -1.0 if rated and rated[0].maximize else 1.0
    rated.sort(key=lambda s: (sign * s.value, -s.position[0], -s.position[1]))
    chosen = rated[:n]
    logger.info("best %d by %s: %s", n, _direction(chosen[0]), ", ".join(f"{s.path} ({s.value:g})" for s in chosen))
    return [s.path for s in chosen]


def _direction(s: Scored) -> str:
    return f"{s.metric} ({'higher' if s.maximize else 'lower'} is better)"


def _load(path: str, mmap: bool = False) -> Dict[str, Any]:
    """A fairseq checkpoint by the allow-list loader; a file torch cannot read is an :class:`AverageError`."""
    try:
        return load_checkpoint(path, mmap=mmap)
    except ConversionError as e:
        raise AverageError(str(e)) from None
    except (RuntimeError, EOFError) as e:  # not a torch file, or a truncated one
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AverageError(f"{path}: not a readable torch checkpoint ({first_line})") from None


def _first_difference(reference: Dict[str, torch.Tensor], other: Dict[str, Any]) -> Optional[str]:
    """How ``other`` first differs from ``reference`` in names, shapes or dtypes (in ``reference``'s order), or None."""
    for key, tensor in reference.items():
        if key not in other:
            return f"'{key}' is in the first only"
        value = other[key]
        if not isinstance(value, torch.Tensor):
            return f"'{key}' is not a tensor in the second"
        if value.shape != tensor.shape:
            return f"'{key}' has shape {list(tensor.shape)} against {list(value.shape)}"
        if value.dtype != tensor.dtype:
            return f"'{key}' has dtype {tensor.dtype} against {value.dtype}"
    extra = [key for key in other if key not in reference]
    return f"'{extra[0]}' is in the second only" if extra else None


def average_checkpoints(paths: Sequence[str]) -> Dict[str, Any]:
    """The checkpoint dict of ``paths[0]`` with ``model`` replaced by the average over ``paths`` (see the module).

    Reads one checkpoint at a time (memory: the first checkpoint and a float64 sum of the model)."""
    if not paths:
        raise AverageError("no checkpoint to average")
    first = _load(paths[0])
    reference = first["model"]
    bad = [k for k, v in reference.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise AverageError(f"{paths[0]}: model entry '{bad[0]}' is not a tensor")
    sums = {k: v.to(torch.float64, copy=True) for k, v in reference.items() if v.is_floating_point()}
    for path in paths[1:]:
        weights = _load(path, mmap=True)["model"]
        difference = _first_difference(reference, weights)
        if difference:
            raise AverageError(f"{paths[0]} and {path} are not checkpoints of one model: {difference}")
        for key, total in sums.items():
            total += weights[key].to(torch.float64)
        kept = [k for k, v in reference.items() if not v.is_floating_point() and not torch.equal(v, weights[k])]
        if kept:
            logger.info("%s: %d integer/bool tensors (e.g. '%s') differ from %s; the first checkpoint's are kept",
                        path, len(kept), kept[0], paths[0])  # counters such as BatchNorm's num_batches_tracked
        del weights
    count = float(len(paths))
    first["model"] = {k: (sums[k] / count).to(v.dtype) if k in sums else v for k, v in reference.items()}
    extra = first.get("extra_state")
    first["extra_state"] = dict(extra) if isinstance(extra, dict) else {}
    first["extra_state"]["averaged_from"] = [os.fspath(p) for p in paths]
    return first


def write_average(paths: Sequence[str], out: str) -> List[str]:
    """:func:`average_checkpoints` of ``paths`` written to ``out`` atomically; the paths averaged."""
    state = average_checkpoints(paths)
    atomic_save(state, out)
    return list(paths)
