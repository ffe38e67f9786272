"""Registered fairseq models, one per file (``encoder_steps`` is the layer-by-layer pass used by early exit)."""
from . import w2v2_mlp, sew, sew_d, sew_ctc, sew_ctc_early_exit  # noqa: F401
