"""Checkpoint interoperability: the original SEW release, Hugging Face transformers (both ways) and ONNX.

Each direction is one module (``original``, ``hf``, ``onnx``); ``common`` holds the safe checkpoint reading, the
name/shape checks and the atomic writers they share. ``sew-convert`` (:mod:`sew_fairseq.cli.convert`) is the
command line.
"""
from .common import ConversionError  # noqa: F401
