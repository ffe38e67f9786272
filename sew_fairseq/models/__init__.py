"""Registered fairseq models, one per file."""
from . import w2v2_mlp, sew, sew_d, sew_ctc  # noqa: F401
