"""What this machine's CPU has, read from torch and ``/proc/cpuinfo`` (no fairseq): whether it has native bf16 dot
products, and whether it has int8 dot products (AMX-INT8 / VNNI). Used by the inference backends' check
(:mod:`sew_fairseq.engines.hardware`, which re-exports these names) and by bf16 mixed-precision training
(:mod:`sew_fairseq.compat.bf16_mixed`).

    cpu_bf16()   # (True, "AMX-BF16, AVX512-BF16") or (False, "why not")
    cpu_int8()   # (True, "AMX-INT8, AVX512-VNNI") or (False, "why not")

bf16 on a CPU needs native bf16 dot products (x86 AVX512-BF16 or AMX-BF16): without them oneDNN emulates bf16
with fp32 arithmetic plus conversions, which is slower than fp32. They are read from torch (``torch.cpu``'s probes,
private in torch 2.x, used when present) and from the ``flags`` of ``/proc/cpuinfo``.
"""
from __future__ import annotations

import functools
import platform
from typing import FrozenSet, Optional, Tuple

import torch


@functools.lru_cache(maxsize=1)
def cpu_flags() -> FrozenSet[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):  # x86: flags, ARM: Features
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _torch_probe(name: str) -> Optional[bool]:
    probe = getattr(getattr(torch, "cpu", None), name, None)
    if probe is None:
        return None
    try:
        return bool(probe())
    except Exception:  # noqa: BLE001  a private probe that changed: fall back to the flags
        return None


def cpu_bf16() -> Tuple[bool, str]:
    """(whether this CPU has native bf16 dot products, what was found or what is missing)."""
    flags = cpu_flags()
    found = []
    if _torch_probe("_is_amx_tile_supported") or {"amx_bf16", "amx_tile"} <= flags:
        found.append("AMX-BF16")
    if _torch_probe("_is_avx512_bf16_supported") or "avx512_bf16" in flags:
        found.append("AVX512-BF16")
    if found:
        return True, ", ".join(found)
    capability = torch.backends.cpu.get_cpu_capability()
    where = "/proc/cpuinfo flags" if flags else "torch's CPU probes (no /proc/cpuinfo)"
    return False, (f"this {platform.machine()} CPU has neither AVX512-BF16 nor AMX-BF16 ({where}; torch's CPU "
                   f"capability is {capability})")


def cpu_int8() -> Tuple[bool, str]:
    """(whether this CPU has int8 dot-product units: AMX-INT8, AVX512-VNNI or AVX-VNNI, what was found or missing)."""
    flags = cpu_flags()
    found = [name for flag, name in (("amx_int8", "AMX-INT8"), ("avx512_vnni", "AVX512-VNNI"),
                                     ("avx_vnni", "AVX-VNNI")) if flag in flags]
    if found:
        return True, ", ".join(found)
    return False, f"this {platform.machine()} CPU has no AMX-INT8, AVX512-VNNI or AVX-VNNI"
