"""What every fix module shares: the record of what was replaced, the status strings, and fairseq's module names.

A fix replaces an attribute of a fairseq module with :func:`replace_attribute`, which keeps the first object it
replaced in :data:`ORIGINALS` (keyed ``"module.attribute"``); :func:`unpatched` gives that original back, so a
fix can probe fairseq's own code even after it was patched, and tests can show the bug against it.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict

#: What each patch replaced, keyed by ``"module.attribute"``; filled the first time it patches.
ORIGINALS: Dict[str, Any] = {}

# What a fix returns (``apply_patches`` collects them by fix name).
APPLIED = "applied"
ALREADY_APPLIED = "already applied"
NOT_NEEDED = "not needed"

DATA_UTILS = "fairseq.data.data_utils"
CHECKPOINT_UTILS = "fairseq.checkpoint_utils"
DIST_UTILS = "fairseq.distributed.utils"
TRAINER = "fairseq.trainer"
HUBERT_ASR = "fairseq.models.hubert.hubert_asr"


def replace_attribute(module_name: str, attr: str, new: Any) -> None:
    """Set ``module.attr = new``, remembering the first original in :data:`ORIGINALS`."""
    module = importlib.import_module(module_name)
    ORIGINALS.setdefault(f"{module_name}.{attr}", getattr(module, attr))
    setattr(module, attr, new)


def unpatched(module_name: str, attr: str) -> Any:
    """The unpatched ``module.attr`` (from :data:`ORIGINALS` once patched)."""
    key = f"{module_name}.{attr}"
    if key in ORIGINALS:
        return ORIGINALS[key]
    return getattr(importlib.import_module(module_name), attr)
