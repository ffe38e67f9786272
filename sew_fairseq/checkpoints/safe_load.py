"""Loading fairseq checkpoints with torch's restricted (``weights_only``) unpickler.

torch >= 2.6 makes ``torch.load(weights_only=True)`` the default. That unpickler refuses every
global it does not know, and a fairseq checkpoint legitimately holds a few: the training config
as an OmegaConf ``DictConfig`` (older fairseq) or a plain dict, ``argparse.Namespace`` (legacy
``args``), a ``fairseq.data.dictionary.Dictionary`` in a fine-tuned model's ``task_state``,
``collections`` containers and numpy scalars or arrays in the logging meters.

:func:`safe_load` keeps the restricted unpickler and widens it by :data:`TRUSTED_GLOBALS` only:
plain data containers and constructors that run no code chosen by the file. It never falls back
to full unpickling. A checkpoint that needs anything else is refused with
:class:`CheckpointLoadError`, which names the file and the offending global.

The list was found by recording the globals of real checkpoints written by fairseq-fixed 0.12.3.1
(a wav2vec 2.0 pretraining run and a CTC fine-tuning run, ``fairseq-hydra-train`` on CPU), of a
``DictConfig`` as ``load_checkpoint_to_cpu`` returns it, of an ``argparse.Namespace`` and of numpy
values, each saved with ``torch.save``.
"""
from __future__ import annotations

import argparse
import collections
import io
import logging
import os
import pickle
import re
import typing
from typing import IO, Any, Callable, Iterable, Sequence, Tuple, Union

import numpy as np
import omegaconf
import omegaconf.base
import omegaconf.nodes
import torch

logger = logging.getLogger(__name__)

__all__ = ["TRUSTED_GLOBALS", "CheckpointLoadError", "NotACheckpoint", "safe_load", "trusted_globals"]

#: An allow-list entry as torch takes it: the object and the dotted name the pickle uses for it.
TrustedGlobal = Tuple[Callable[..., Any], str]

MapLocation = Union[str, torch.device, Callable[..., Any], dict, None]


def _numpy_multiarray() -> Any:
    """numpy's ``multiarray`` module (``numpy._core`` in numpy 2.x, ``numpy.core`` before)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _build_trusted_globals() -> list[TrustedGlobal]:
    """Assemble the allow-list; each entry is ``(object, name used in the pickle)``."""
    entries: list[TrustedGlobal] = []

    def add(obj: Callable[..., Any], *names: str) -> None:
        for name in names:
            entries.append((obj, name))

    # Builtin types, as DictConfig pickles them (protocol 2 writes __builtin__.dict/list/long,
    # torch maps those to builtins.*). Calling any of these builds plain data.
    for typ in (dict, list, tuple, int, float, str, bool):
        add(typ, f"builtins.{typ.__name__}")

    # collections: OrderedDict and Counter are allowed by torch already; defaultdict appears
    # inside OmegaConf's ContainerMetadata.
    add(collections.OrderedDict, "collections.OrderedDict")
    add(collections.defaultdict, "collections.defaultdict")

    # typing.Any: OmegaConf stores it as the key/element/ref type of untyped containers.
    add(typing.Any, "typing.Any")  # type: ignore[arg-type]

    # OmegaConf containers, their metadata and value nodes (DictConfig saved by older fairseq,
    # or a cfg object passed through broadcast_object in distributed training).
    add(omegaconf.DictConfig, "omegaconf.dictconfig.DictConfig")
    add(omegaconf.ListConfig, "omegaconf.listconfig.ListConfig")
    add(omegaconf.base.ContainerMetadata, "omegaconf.base.ContainerMetadata")
    add(omegaconf.base.Metadata, "omegaconf.base.Metadata")
    for node_name in (
        "AnyNode",
        "StringNode",
        "IntegerNode",
        "FloatNode",
        "BooleanNode",
        "BytesNode",
        "PathNode",
    ):
        node = getattr(omegaconf.nodes, node_name, None)
        if node is not None:  # BytesNode/PathNode are omegaconf >= 2.2
            add(node, f"omegaconf.nodes.{node_name}")

    # Legacy fairseq checkpoints keep the command line as an argparse.Namespace.
    add(argparse.Namespace, "argparse.Namespace")

    # Fine-tuned checkpoints keep the target dictionary in task_state.
    from fairseq.data.dictionary import Dictionary

    add(Dictionary, "fairseq.data.dictionary.Dictionary")

    # numpy scalars, dtypes and arrays (meters, best scores). numpy 2 pickles them under
    # numpy._core, numpy 1.x under numpy.core; accept both names.
    multiarray = _numpy_multiarray()
    add(multiarray.scalar, "numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar")
    add(
        multiarray._reconstruct,
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray._reconstruct",
    )
    add(np.ndarray, "numpy.ndarray")
    add(np.dtype, "numpy.dtype")
    # numpy >= 1.25 gives every dtype instance its own class (numpy.dtypes.Float64DType, ...);
    # the unpickler must be allowed to build (setstate) instances of them. Numbers, bools,
    # strings and datetimes only: object ("O") and structured/void ("V") dtypes stay refused.
    seen: set[type] = set()
    for code in np.typecodes["All"].replace("O", "").replace("V", ""):
        dtype_class = type(np.dtype(code))
        if dtype_class is not np.dtype and dtype_class not in seen:
            seen.add(dtype_class)
            add(dtype_class, f"{dtype_class.__module__}.{dtype_class.__qualname__}")
    return entries


#: Globals a fairseq checkpoint may reference, as ``(object, pickled name)`` pairs for
#: :func:`torch.serialization.safe_globals`. Everything else is refused.
TRUSTED_GLOBALS: list[TrustedGlobal] = _build_trusted_globals()


def trusted_globals(extra: Iterable[Union[Callable[..., Any], TrustedGlobal]] = ()) -> list:
    """:data:`TRUSTED_GLOBALS` plus ``extra`` (objects or ``(object, name)`` pairs)."""
    return [*TRUSTED_GLOBALS, *extra]


class CheckpointLoadError(ValueError):
    """A checkpoint references a global that :data:`TRUSTED_GLOBALS` does not allow."""

    def __init__(self, source: str, offending: str, detail: str) -> None:
        self.source = source
        self.offending = offending
        super().__init__(
            f"Refusing to load checkpoint {source}: its pickle references {offending}, which is "
            f"not in sew_fairseq.checkpoints.safe_load.TRUSTED_GLOBALS. Loading it would let the file run "
            f"code on this machine. If you trust the file and that global is plain data, allow it "
            f"with torch.serialization.add_safe_globals([...]) before loading; never load an "
            f"untrusted checkpoint with weights_only=False. (torch: {detail})"
        )


class NotACheckpoint(CheckpointLoadError):
    """The file is no pickle at all (a text file, another format): nothing was refused, there is nothing to load."""

    def __init__(self, source: str, detail: str) -> None:
        self.source, self.offending = source, ""
        ValueError.__init__(self, f"{source} is not a torch checkpoint (torch: {detail})")


_OFFENDER_RES = (
    re.compile(r"GLOBAL (\S+)"),  # unknown or blocked global
    re.compile(r"unrecognized function (.+?)(?: which belongs to|$)", re.MULTILINE),  # REDUCE
    re.compile(r"but got (<class '[^']+'>)"),  # NEWOBJ/BUILD of a class that is not allowed
)
_DETAIL_RE = re.compile(r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", re.DOTALL)


def _describe_source(path_or_file: Union[str, os.PathLike, IO[bytes]]) -> str:
    """A readable name for the thing being loaded."""
    if isinstance(path_or_file, (str, os.PathLike)):
        return os.fspath(path_or_file)
    name = getattr(path_or_file, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(path_or_file, io.BytesIO):
        return "<in-memory buffer>"
    return repr(path_or_file)


def _offending_global(message: str) -> str:
    """Pull the refused global (or callable) out of torch's UnpicklingError message."""
    for pattern in _OFFENDER_RES:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return "a global that is not allowed"


def safe_load(
    path_or_file: Union[str, os.PathLike, IO[bytes]],
    map_location: MapLocation = "cpu",
    extra_globals: Sequence[Union[Callable[..., Any], TrustedGlobal]] = (),
    mmap: bool = False,
) -> Any:
    """Load a fairseq checkpoint with ``weights_only=True`` and the fairseq allow-list.

    Args:
        path_or_file: checkpoint path or an open binary file (as :func:`torch.load` takes).
        map_location: passed to :func:`torch.load`; defaults to ``"cpu"``.
        extra_globals: further trusted globals for this call only.
        mmap: memory-map the tensors of a path saved in torch's zip format instead of reading them (to look at a
            large checkpoint's config cheaply); a legacy-format file is then read in full.

    Returns:
        The unpickled object (for a fairseq checkpoint, the state dict).

    Raises:
        CheckpointLoadError: the pickle references a global outside the allow-list. The refused
            global is never called: torch's unpickler stops at it.
    """
    if not hasattr(torch.serialization, "safe_globals"):
        raise RuntimeError(
            f"safe_load needs torch >= 2.6 (torch.serialization.safe_globals); this is {torch.__version__}"
        )
    allowed = trusted_globals(extra_globals)
    try:
        with torch.serialization.safe_globals(allowed):
            if mmap and isinstance(path_or_file, (str, os.PathLike)):
                try:
                    return torch.load(path_or_file, map_location=map_location, weights_only=True, mmap=True)
                except RuntimeError as err:  # not a zip-format file: mmap is unavailable
                    if "mmap" not in str(err):
                        raise
            return torch.load(path_or_file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        message = str(err)
        detail_match = _DETAIL_RE.search(message)
        detail = detail_match.group(1).strip() if detail_match else message.strip()
        source = _describe_source(path_or_file)
        if detail.startswith("Unsupported operand"):  # the first byte is no pickle opcode: not a checkpoint
            raise NotACheckpoint(source, detail) from err
        offending = _offending_global(message)
        logger.error("refused to load %s: it references %s", source, offending)
        raise CheckpointLoadError(source, offending, detail) from err
