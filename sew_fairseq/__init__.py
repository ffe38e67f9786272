"""sew-fairseq: SEW, SEW-D and wav2vec 2.0 (MLP heads) as a fairseq plugin.

Use as ``common.user_dir=/path/to/sew_fairseq`` or ``import sew_fairseq``. Importing applies the
fairseq-on-current-Python fixes (:mod:`sew_fairseq.compat`) and registers the models and tasks.
"""
from . import compat

compat.apply_patches()

from . import models  # noqa: E402,F401  (registers sew, sew_d, w2v2_mlp and the original names)
from . import tasks  # noqa: E402,F401
from . import criterions  # noqa: E402,F401  (fairseq does not auto-import a user dir's criterions)

__version__ = "0.1.0"
