"""Registered fairseq models, one per file."""
from . import w2v2_mlp, sew, sew_d  # noqa: F401
