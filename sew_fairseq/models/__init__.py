"""Registered fairseq models, one per file (``encoder_steps``: every context network behind the layer-stepping
protocol of ``modules/layer_pass.py``, for early exit)."""
from . import w2v2_mlp, sew, sew_d, sew_ctc, sew_ctc_early_exit  # noqa: F401
