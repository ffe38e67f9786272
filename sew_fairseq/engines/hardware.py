"""What this machine can run, checked before a backend is built: a dtype the hardware cannot run is an error that
says what is missing, never a silent fall-back to another precision.

    check_backend("torch", "bf16", "cpu")        # None, or UnsupportedBackend naming dtype, backend, device and the gap
    check_backend("torch", "int8", "cpu", hardware=False)   # the rules alone, without asking this machine
    cpu_bf16()                                    # (True, "AMX-BF16, AVX512-BF16") or (False, "why not")

:func:`check_backend` is the one statement of what runs where: :func:`sew_fairseq.engines.load_engine`, each engine's
constructor, ``sew-bench``'s pairs and the command lines' usage checks (``hardware=False``) all ask it. Its errors
speak of backends, dtypes and devices, never of command-line flags; :attr:`UnsupportedBackend.reason` says which rule
refused, for a command line that words it with its flags.

bf16 on a CPU needs native bf16 dot products (x86 AVX512-BF16 or AMX-BF16): without them oneDNN emulates bf16
with fp32 arithmetic plus conversions, which is slower than fp32. They are read from torch (``torch.cpu``'s probes,
private in torch 2.x, used when present) and from the ``flags`` of ``/proc/cpuinfo``. fp16 runs on CUDA only.
"""
from __future__ import annotations

import platform
from typing import Optional, Tuple

import torch

from ..hardware_probes import _torch_probe, cpu_bf16, cpu_flags, cpu_int8  # noqa: F401  (moved there; importable here)

BACKENDS = ("torch", "onnxruntime", "openvino")
DTYPES = ("fp32", "bf16", "fp16", "int8")
#: what each backend runs (anything else is refused before any hardware check)
BACKEND_DTYPES = {"torch": ("fp32", "bf16", "fp16"), "onnxruntime": ("fp32", "int8"),
                  "openvino": ("fp32", "bf16", "int8")}
#: what ``backend="auto"`` tries, fastest first (:func:`choose_backend`). int8 is OpenVINO's calibrated static int8
#: (within 1.0 greedy WER of torch fp32 on the demo's held-out split), only with calibration audio and only on a CPU
#: with int8 dot products (:func:`cpu_int8`: on an AVX2-only CPU it ran slower than OpenVINO fp32, docs/speed.md);
#: OpenVINO bf16 was 3.24x transformers fp32 on an AMX Xeon (issue 20). On the AVX2 machine OpenVINO fp32 and
#: onnxruntime fp32 were within the load noise of each other and ahead of torch fp32 (docs/speed.md); OpenVINO comes
#: first because its bf16 and int8 share its cache. Every pair's accuracy bound is tested (tests/test_backends.py,
#: tests/test_openvino.py).
AUTO_ORDER = (("openvino", "int8"), ("openvino", "bf16"), ("torch", "bf16"), ("openvino", "fp32"),
              ("onnxruntime", "fp32"), ("torch", "fp32"))


class UnsupportedBackend(ValueError):
    """A backend / dtype / device combination this package or this machine cannot run.

    ``reason``: the rule that refused it (:data:`REFUSALS`; "" for other failures), ``detail``: the message without
    the combination, ``backend``, ``dtype``, ``device``: the combination (None where unknown)."""

    def __init__(self, detail: str, reason: str = "", backend: Optional[str] = None, dtype: Optional[str] = None,
                 device: Optional[str] = None):
        self.detail, self.reason, self.backend, self.dtype, self.device = detail, reason, backend, dtype, device
        known = backend in BACKENDS and dtype in DTYPES and device is not None
        super().__init__(f"backend {backend} with dtype {dtype} on device {device}: {detail}" if known else detail)


#: UnsupportedBackend.reason: the rules of check_backend, those that hold on every machine first
STATIC_REFUSALS = ("unknown_backend", "unknown_dtype", "unknown_device", "dtype", "early_exit", "onnx_model",
                   "fp16_cpu", "int8_cuda", "openvino_cuda")
REFUSALS = STATIC_REFUSALS + ("no_cuda", "bf16_gpu", "bf16_cpu", "no_onnxruntime", "no_cuda_provider",
                              "no_openvino", "auto")


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


def check_backend(backend: str, dtype: str, device: str = "cpu", early_exit: bool = False,
                  onnx_model: Optional[str] = None, hardware: bool = True) -> None:
    """Raise :class:`UnsupportedBackend` unless ``backend`` can run ``dtype`` on ``device`` on this machine.

    ``early_exit``: with an early-exit rule; ``onnx_model``: with a given ONNX graph. ``hardware=False`` checks the
    rules that hold on every machine only (:data:`STATIC_REFUSALS`), without asking this one (CUDA, the CPU's bf16,
    onnxruntime and its providers)."""

    def refuse(reason: str, detail: str) -> UnsupportedBackend:
        return UnsupportedBackend(detail, reason, backend, dtype, device)

    if backend not in BACKENDS:
        raise refuse("unknown_backend", f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise refuse("unknown_dtype", f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        kind = None
    if kind not in ("cpu", "cuda"):
        raise refuse("unknown_device", f"device {device!r} is neither cpu nor cuda")
    if dtype not in BACKEND_DTYPES[backend]:
        hint = {"int8": "int8 runs with backend onnxruntime or openvino: torch's quantize_dynamic fails on these "
                        "models (fairseq's MultiheadAttention reads q_proj.bias as a tensor)",
                "bf16": "bf16 runs with backend torch or openvino",
                "fp16": "fp16 runs with backend torch on CUDA"}[dtype]
        raise refuse("dtype", f"backend {backend} runs {' / '.join(BACKEND_DTYPES[backend])}, not {dtype} ({hint})")
    if early_exit and backend != "torch":
        raise refuse("early_exit", "early exit decides per utterance between layers, which only backend torch does "
                                   "(an exported graph runs every layer); use backend torch")
    if onnx_model and backend != "onnxruntime":
        raise refuse("onnx_model", f"an ONNX graph ({onnx_model}) runs with backend onnxruntime only")
    if backend == "torch" and dtype == "fp16" and kind != "cuda":
        raise refuse("fp16_cpu", "fp16 needs a CUDA device (torch's CPU fp16 matrix products are not faster than "
                                 "fp32); on a CPU use dtype bf16 or fp32")
    if backend == "openvino" and kind != "cpu":
        raise refuse("openvino_cuda", "this package runs OpenVINO on the CPU only; on CUDA use backend torch or "
                                      "onnxruntime")
    if backend == "onnxruntime" and dtype == "int8" and kind == "cuda":
        raise refuse("int8_cuda", "dynamic int8 (DynamicQuantizeLinear, MatMulInteger) is a CPU path in onnxruntime; "
                                  "on CUDA use backend onnxruntime with dtype fp32, or backend torch with dtype fp16 "
                                  "or bf16")
    if not hardware:
        return
    if backend == "torch" and kind == "cuda":
        if not torch.cuda.is_available():
            raise refuse("no_cuda", f"no CUDA device (torch {torch.__version__} sees none); use device cpu")
        if dtype == "bf16" and not torch.cuda.is_bf16_supported():
            raise refuse("bf16_gpu", f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16 support; use "
                                     f"dtype fp16")
    if backend in ("torch", "openvino") and dtype == "bf16" and kind == "cpu":
        ok, detail = cpu_bf16()
        if not ok:
            raise refuse("bf16_cpu", f"bf16 on a CPU needs AVX512-BF16 or AMX-BF16 dot products; {detail}. Use dtype "
                                     f"fp32, or backend onnxruntime or openvino with dtype int8")
    if backend == "openvino":
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise refuse("no_openvino", "openvino is not installed (pip install 'sew-fairseq[openvino]')") from None
    if backend == "onnxruntime":
        try:
            import onnxruntime as ort
        except ImportError:
            raise refuse("no_onnxruntime", "onnxruntime is not installed (pip install 'sew-fairseq[onnx]', or "
                                           "onnxruntime-gpu for CUDA)") from None
        providers = ort.get_available_providers()
        if kind == "cuda" and "CUDAExecutionProvider" not in providers:
            raise refuse("no_cuda_provider", f"this onnxruntime has no CUDAExecutionProvider (available: "
                                             f"{', '.join(providers)}); install onnxruntime-gpu, or use device cpu")


def choose_backend(device: str = "cpu", calibrated: bool = False, dtype: Optional[str] = None,
                   early_exit: bool = False, onnx_model: Optional[str] = None) -> Tuple[str, str]:
    """``backend="auto"``: the first pair of :data:`AUTO_ORDER` that this machine runs (:func:`check_backend`),
    as (backend, dtype). int8 only when ``calibrated`` (calibration audio given) on a CPU with int8 dot products
    (:func:`cpu_int8`); ``dtype``: only pairs of that
    dtype; ``early_exit`` / ``onnx_model``: only the backends that run them (torch / onnxruntime). Raises
    :class:`UnsupportedBackend` (reason ``auto``) when none runs."""
    tried = []
    for backend, pair_dtype in AUTO_ORDER:
        if (dtype is not None and pair_dtype != dtype) or (pair_dtype == "int8" and not calibrated):
            continue
        if pair_dtype == "int8" and not cpu_int8()[0]:
            tried.append(f"{backend} int8: {cpu_int8()[1]} (int8 is not faster than fp32 without them)")
            continue
        try:
            check_backend(backend, pair_dtype, device, early_exit, onnx_model)
        except UnsupportedBackend as e:
            tried.append(f"{backend} {pair_dtype}: {e.detail}")
            continue
        return backend, pair_dtype
    raise UnsupportedBackend("backend auto found nothing this machine runs" + (f" in dtype {dtype}" if dtype else "")
                             + (": " + "; ".join(tried) if tried else ""), "auto", None, dtype, device)
