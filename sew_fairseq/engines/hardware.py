"""What this machine can run, checked before a backend is built: a dtype the hardware cannot run is an error that
says what is missing, never a silent fall-back to another precision.

    check_backend("torch", "bf16", "cpu")        # None, or UnsupportedBackend naming dtype, backend, device and the gap
    cpu_bf16()                                    # (True, "AMX-BF16, AVX512-BF16") or (False, "why not")

bf16 on a CPU needs native bf16 dot products (x86 AVX512-BF16 or AMX-BF16): without them oneDNN emulates bf16
with fp32 arithmetic plus conversions, which is slower than fp32. They are read from torch (``torch.cpu``'s probes,
private in torch 2.x, used when present) and from the ``flags`` of ``/proc/cpuinfo``. fp16 runs on CUDA only.
"""
from __future__ import annotations

import functools
import platform
from typing import FrozenSet, Optional, Tuple

import torch

BACKENDS = ("torch", "onnxruntime")
DTYPES = ("fp32", "bf16", "fp16", "int8")
#: what each backend runs (anything else is refused before any hardware check)
BACKEND_DTYPES = {"torch": ("fp32", "bf16", "fp16"), "onnxruntime": ("fp32", "int8")}


class UnsupportedBackend(ValueError):
    """A backend / dtype / device combination this package or this machine cannot run."""


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


def cpu_description() -> str:
    """A one-line description of the CPU's vector and matrix units (for benchmark headers)."""
    flags = cpu_flags()
    units = [name for flag, name in (("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"),
                                     ("avx512_vnni", "AVX512-VNNI"), ("amx_bf16", "AMX-BF16"),
                                     ("amx_int8", "AMX-INT8")) if flag in flags]
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{model or platform.processor() or platform.machine()}" + (f" ({', '.join(units)})" if units else "")


def _cuda(device: str) -> bool:
    return torch.device(device).type == "cuda"


def check_backend(backend: str, dtype: str, device: str = "cpu", early_exit: bool = False) -> None:
    """Raise :class:`UnsupportedBackend` unless ``backend`` can run ``dtype`` on ``device`` on this machine."""
    what = f"--backend {backend} --dtype {dtype} on --device {device}"
    if backend not in BACKENDS:
        raise UnsupportedBackend(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise UnsupportedBackend(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        raise UnsupportedBackend(f"{what}: device {device!r} is neither cpu nor cuda")
    if early_exit and backend != "torch":
        raise UnsupportedBackend(f"{what}: early exit decides per utterance between layers, which only the torch "
                                 f"backend does (an exported graph runs every layer); use --backend torch")
    if dtype not in BACKEND_DTYPES[backend]:
        hint = {"int8": "int8 runs in ONNX Runtime (--backend onnxruntime --dtype int8): torch's quantize_dynamic "
                        "fails on these models (fairseq's MultiheadAttention reads q_proj.bias as a tensor)",
                "bf16": "ONNX Runtime runs fp32 and int8 here; bf16 runs with --backend torch",
                "fp16": "ONNX Runtime runs fp32 and int8 here; fp16 runs with --backend torch on CUDA"}[dtype]
        raise UnsupportedBackend(f"{what}: backend {backend} does not run {dtype} ({hint})")
    if kind == "cuda" and backend == "torch" and not torch.cuda.is_available():
        raise UnsupportedBackend(f"{what}: no CUDA device (torch {torch.__version__} sees none); use --device cpu")
    if backend == "torch" and dtype == "fp16" and kind != "cuda":
        raise UnsupportedBackend(f"{what}: fp16 needs a CUDA device (torch's CPU fp16 matrix products are not faster "
                                 f"than fp32); on this CPU use bf16 or fp32")
    if backend == "torch" and dtype == "bf16":
        if kind == "cuda":
            if not torch.cuda.is_bf16_supported():
                raise UnsupportedBackend(f"{what}: this GPU ({torch.cuda.get_device_name(device)}) has no bf16 "
                                         f"support; use --dtype fp16")
        else:
            ok, detail = cpu_bf16()
            if not ok:
                raise UnsupportedBackend(f"{what}: bf16 on a CPU needs AVX512-BF16 or AMX-BF16 dot products; "
                                         f"{detail}. Use fp32, or --backend onnxruntime --dtype int8")
    if backend == "onnxruntime":
        try:
            import onnxruntime as ort
        except ImportError:
            raise UnsupportedBackend(f"{what}: onnxruntime is not installed (pip install 'sew-fairseq[onnx]', or "
                                     f"onnxruntime-gpu for CUDA)") from None
        providers = ort.get_available_providers()
        if kind == "cuda":
            if "CUDAExecutionProvider" not in providers:
                raise UnsupportedBackend(f"{what}: this onnxruntime has no CUDAExecutionProvider (available: "
                                         f"{', '.join(providers)}); install onnxruntime-gpu, or use --device cpu")
            if dtype == "int8":
                raise UnsupportedBackend(f"{what}: dynamic int8 (DynamicQuantizeLinear, MatMulInteger) is a CPU "
                                         f"path in onnxruntime; on CUDA use --backend onnxruntime --dtype fp32 or "
                                         f"--backend torch --dtype fp16/bf16")
