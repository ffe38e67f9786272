"""``sew_ctc``: CTC fine-tuning of a pretrained ``sew``, ``sew_d``, ``w2v2_mlp``, fairseq ``wav2vec2`` or fairseq
``hubert`` checkpoint.

fairseq's :class:`Wav2VecCtc` already does what fine-tuning needs with any model that has the wav2vec 2.0
interface (``extract_features``, ``remove_pretraining_modules``): it loads ``model.w2v_path`` (through the
allow-listed loader, see ``sew_fairseq/compat/checkpoint_weights_only.py``), overrides the pretraining config's
dropouts, masking and layerdrop with the fine-tuning ones, freezes the feature extractor (``feature_grad_mult: 0``)
and the whole encoder for ``freeze_finetune_updates``, and adds the output projection to the letter dictionary
(blank ``<s>``).
This module registers it under this plugin's name, and under ``wav2vec_ctc_v2``, the name of the original SEW
release's fine-tuned checkpoints, with SEW's fine-tuning defaults. Its encoder is
:class:`~sew_fairseq.models.hubert.BackboneEncoder`: ``Wav2VecEncoder`` that also takes fairseq HuBERT
checkpoints (and reads fairseq ``hubert_ctc`` ones, see that module).

    fairseq-hydra-train --config-dir recipes/finetuning --config-name 100h common.user_dir=$PWD/sew_fairseq \\
        task.data=/path/to/manifests model.w2v_path=/path/to/pretrained.pt
"""
from dataclasses import dataclass, field

from fairseq.models import register_model
from fairseq.models.wav2vec.wav2vec2_asr import Wav2Vec2CtcConfig, Wav2VecCtc

from .hubert import BackboneEncoder


@dataclass
class SEWCtcConfig(Wav2Vec2CtcConfig):
    # the release's fine-tuning: frozen feature extractor, mask channels
    feature_grad_mult: float = field(default=0.0, metadata={"help": "gradient scale of the feature extractor "
                                                                    "(0 = frozen, as in the SEW release)"})


@register_model("wav2vec_ctc_v2", dataclass=SEWCtcConfig)
@register_model("sew_ctc", dataclass=SEWCtcConfig)
class SEWCtc(Wav2VecCtc):
    """Pretrained encoder + dropout + Linear(D, letters): emissions [T, B, V] for fairseq's ``ctc`` criterion."""

    @classmethod
    def build_model(cls, cfg: SEWCtcConfig, task):
        return cls(cfg, BackboneEncoder(cfg, len(task.target_dictionary)))
