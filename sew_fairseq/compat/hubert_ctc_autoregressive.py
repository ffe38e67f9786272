"""Fix ``fix_hubert_ctc_autoregressive``: fairseq's own ``hubert_ctc`` fine-tunes and loads (fairseq issue #4916).

Breaks without it:
    fine-tuning with fairseq's ``hubert_ctc`` model, or loading a fine-tuned HuBERT checkpoint with
    ``load_model_ensemble_and_task``, fails with ``omegaconf.errors.ConfigAttributeError: Key 'autoregressive' not
    in 'HubertCtcConfig'``.
Why:
    ``hubert_asr.HubertEncoder`` reads ``cfg.autoregressive``, a field that only its seq2seq config
    (``HubertSeq2SeqConfig``) declares, and the CTC model builds the same encoder from ``HubertCtcConfig``.
Versions:
    fairseq-fixed 0.12.3.1 (fairseq 0.12.2's ``HubertEncoder`` does not read the field).
Fix:
    ``hubert_ctc``'s registered dataclass becomes a subclass of ``HubertCtcConfig`` with the field (default False),
    as fairseq PR #4917 proposed; the model registry, Hydra's config store and ``hubert_asr.HubertCtcConfig`` use it.
Test:
    ``tests/test_compat.py::test_hubert_ctc_autoregressive``; fine-tuning with fairseq's own ``hubert_ctc`` end to
    end, the session fixture ``fairseq_made`` (``tests/conftest.py``, ``tests/fairseq_made.py``) that
    ``tests/test_backbones.py`` loads and decodes.
"""
from __future__ import annotations

import importlib
import inspect

from ._patching import ALREADY_APPLIED, APPLIED, HUBERT_ASR, NOT_NEEDED, replace_attribute, unpatched


def has_hubert_ctc_autoregressive_bug() -> bool:
    """True if fairseq's ``HubertEncoder`` reads ``cfg.autoregressive`` and ``HubertCtcConfig`` lacks it."""
    try:
        module = importlib.import_module(HUBERT_ASR)
        source = inspect.getsource(module.HubertEncoder.__init__)
    except (ImportError, AttributeError, OSError, TypeError):
        return False
    config = unpatched(HUBERT_ASR, "HubertCtcConfig")
    return "cfg.autoregressive" in source and "autoregressive" not in config.__dataclass_fields__


def fix_hubert_ctc_autoregressive() -> str:
    """Give ``hubert_ctc``'s config the ``autoregressive`` field its encoder reads (default False)."""
    import dataclasses

    from fairseq.models import MODEL_DATACLASS_REGISTRY, MODEL_REGISTRY
    from hydra.core.config_store import ConfigStore

    module = importlib.import_module(HUBERT_ASR)
    if getattr(module.HubertCtcConfig, "_sew_fairseq_fixed", False):
        return ALREADY_APPLIED
    if not has_hubert_ctc_autoregressive_bug():
        return NOT_NEEDED
    original = module.HubertCtcConfig
    fixed = dataclasses.make_dataclass(
        original.__name__, [("autoregressive", bool, dataclasses.field(default=False, metadata={
            "help": "decoders that take previous tokens (seq2seq); always false for CTC"}))],
        bases=(original,), namespace={"_sew_fairseq_fixed": True, "__module__": original.__module__})
    replace_attribute(HUBERT_ASR, "HubertCtcConfig", fixed)
    # what register_model("hubert_ctc", dataclass=HubertCtcConfig) set up, with the fixed class
    MODEL_DATACLASS_REGISTRY["hubert_ctc"] = fixed
    setattr(MODEL_REGISTRY["hubert_ctc"], "__dataclass", fixed)
    node = fixed()
    node._name = "hubert_ctc"
    ConfigStore.instance().store(name="hubert_ctc", group="model", node=node, provider="fairseq")
    return APPLIED
