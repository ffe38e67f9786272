"""Fix ``fix_cpu_data_parallel_spawn``: ``common.cpu=true distributed_training.distributed_world_size=N`` trains
on N CPU processes (gloo).

Breaks without it:
    ``sew-train ... common.cpu=true distributed_training.distributed_world_size=2`` fails with
    ``AssertionError: world size is 2 but have 0 available devices``; and past that check fairseq would spawn
    ``min(CUDA devices, world size)`` = 0 processes.
Why:
    fairseq's single-node launcher (``distributed.utils._infer_single_node_init`` and ``call_main``) counts CUDA
    devices (``torch.cuda.device_count()``) and has no CPU data-parallel path.
Versions:
    fairseq 0.12.2 and fairseq-fixed 0.12.3.1, any torch, on machines without CUDA.
Fix:
    for CPU runs without a launcher (no torchrun environment, no SLURM), :func:`call_main` spawns ``world_size``
    processes on a free localhost port with the gloo backend (half precision off, as ``fix_fp16_on_cpu`` does);
    every other run goes to fairseq's ``call_main``. It must be in place before fairseq launches, so it takes
    effect with ``sew-train`` (which imports this package first), not with plain ``fairseq-hydra-train`` (which
    imports the user dir later).
Test:
    ``tests/test_compat.py::test_cpu_data_parallel_spawn`` (fairseq's check fails; the fixed ``call_main`` spawns
    N gloo processes); training end to end, ``tests/test_training.py::test_two_process_data_parallel_training_on_cpu``.
"""
from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any, Callable

import torch

from ._patching import ALREADY_APPLIED, APPLIED, DIST_UTILS, NOT_NEEDED, ORIGINALS, replace_attribute, unpatched
from .fp16_on_cpu import cpu_without_half_precision

logger = logging.getLogger(__name__)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call_main(cfg: Any, main: Callable[..., Any], **kwargs: Any) -> Any:
    """fairseq's ``call_main``, plus single-node data-parallel training on CPU (gloo processes)."""
    import os

    from omegaconf import open_dict

    dist_cfg = cfg.distributed_training
    launched = all(k in os.environ for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")) or any(
        k in os.environ for k in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"))
    original = ORIGINALS[f"{DIST_UTILS}.call_main"]
    if not (cfg.common.cpu and dist_cfg.distributed_world_size > 1 and dist_cfg.distributed_init_method is None
            and not launched and not dist_cfg.pipeline_model_parallel):
        return original(cfg, main, **kwargs)
    dist_utils = importlib.import_module(DIST_UTILS)
    cpu_without_half_precision(cfg)
    with open_dict(dist_cfg):
        if dist_cfg.distributed_port <= 0:
            dist_cfg.distributed_port = _free_port()
        dist_cfg.distributed_init_method = f"tcp://localhost:{dist_cfg.distributed_port}"
        if dist_cfg.distributed_backend == "nccl":
            dist_cfg.distributed_backend = "gloo"
        kwargs["start_rank"] = dist_cfg.distributed_rank
        dist_cfg.distributed_rank = None  # assigned per spawned process
    logger.info("CPU data-parallel training: spawning %d gloo processes on %s", dist_cfg.distributed_world_size,
                dist_cfg.distributed_init_method)
    torch.multiprocessing.spawn(fn=dist_utils.distributed_main, args=(main, cfg, kwargs),
                                nprocs=dist_cfg.distributed_world_size, join=True)


def fix_cpu_data_parallel_spawn() -> str:
    """``common.cpu=true distributed_training.distributed_world_size=N`` spawns N processes."""
    dist_utils = importlib.import_module(DIST_UTILS)
    if dist_utils.call_main is call_main:
        return ALREADY_APPLIED
    try:
        source = inspect.getsource(unpatched(DIST_UTILS, "_infer_single_node_init"))
    except (OSError, TypeError, AttributeError):
        return NOT_NEEDED
    if "torch.cuda.device_count()" not in source:
        return NOT_NEEDED
    replace_attribute(DIST_UTILS, "call_main", call_main)
    return APPLIED
