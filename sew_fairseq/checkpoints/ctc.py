"""Loading a fine-tuned CTC checkpoint for inference: the model, its output dictionary and its config.

What every inference path starts from (:func:`sew_fairseq.engines.load_engine`, ``sew-infer``, ``sew-transcribe``,
``sew-bench accuracy``). Loading goes through fairseq's own ``load_checkpoint_to_cpu``, which this plugin's
:mod:`sew_fairseq.compat.checkpoint_weights_only` points at :func:`sew_fairseq.checkpoints.safe_load.safe_load`.
"""
import os
from typing import Optional


def load_ctc_model(checkpoint: str, data: Optional[str] = None, device: str = "cpu", dictionary: Optional[str] = None):
    """(model in eval mode on ``device``, output dictionary, cfg) of a fine-tuned fairseq CTC checkpoint.

    Any fine-tuned CTC model of this plugin (``sew_ctc``, ``sew_ctc_early_exit``) or of fairseq (``wav2vec_ctc``;
    ``hubert_ctc``, read as ``sew_ctc`` by :func:`sew_fairseq.checkpoints.hubert_ctc.as_sew_ctc`). The output dictionary
    is the one saved in the checkpoint (fairseq keeps it in ``task_state``); ``dictionary`` (a ``dict.ltr.txt``)
    replaces it, or serves a checkpoint saved without one. ``data`` overrides ``task.data`` (where fairseq would
    otherwise look for the dictionary)."""
    from fairseq import checkpoint_utils
    from fairseq.data import Dictionary

    from .hubert_ctc import as_sew_ctc

    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    overrides = {"data": data} if data else {}
    state = as_sew_ctc(checkpoint_utils.load_checkpoint_to_cpu(checkpoint, overrides), checkpoint)
    task_state = state.setdefault("task_state", {}) or {}
    state["task_state"] = task_state
    if dictionary is not None:
        if not os.path.isfile(dictionary):
            raise FileNotFoundError(f"dictionary {dictionary} does not exist")
        task_state["target_dictionary"] = Dictionary.load(dictionary)
    elif task_state.get("target_dictionary") is None:
        task_cfg = state["cfg"]["task"]  # load_checkpoint_to_cpu gives legacy (args) checkpoints a cfg too
        labels = task_cfg.get("labels") or "ltr"
        where = os.path.join(str(task_cfg.get("data") or ""), f"dict.{labels}.txt")
        if not os.path.isfile(where):
            raise FileNotFoundError(f"{checkpoint} holds no output dictionary and {where} does not exist: pass the "
                                    f"dict.{labels}.txt it was fine-tuned with (--dict, or --data DIR)")
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides=overrides,
                                                                      state=state)
    model = models[0].eval().to(device)
    return model, task.target_dictionary, cfg


def sample_rate(cfg) -> int:
    """The audio rate (Hz) a loaded checkpoint's model was trained on: ``cfg.task.sample_rate`` (16000 where the
    config does not say, fairseq's default)."""
    return int(getattr(cfg.task, "sample_rate", 16000) or 16000)
