"""``ctc_lm_wer``: fairseq's ``ctc`` criterion whose validation ``wer`` comes from a KenLM beam search.

fairseq's own ``ctc`` criterion takes ``wer_kenlm_model`` / ``wer_lexicon`` but then imports
``examples.speech_recognition.w2l_decoder``, which a pip-installed fairseq does not ship and which needs the
old ``flashlight.lib.sequence`` bindings (not on PyPI). This criterion takes the same options and decodes with
flashlight-text through :mod:`sew_fairseq.decoding`. At validation it logs ``wer`` (lexicon + LM beam search),
``raw_wer`` (greedy) and ``uer`` (letter error rate), so ``checkpoint.best_checkpoint_metric=wer`` selects
checkpoints by LM WER. Without ``wer_kenlm_model`` it is exactly ``ctc``.

    criterion:
      _name: ctc_lm_wer
      wer_kenlm_model: /path/to/4-gram.arpa   # or a KenLM binary
      wer_lexicon: /path/to/lexicon.txt       # WORD<TAB>W O R D |
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List

from fairseq.criterions import register_criterion
from fairseq.criterions.ctc import CtcCriterion, CtcCriterionConfig
from omegaconf import DictConfig, open_dict

from ..decoding import build_decoder


@dataclass
class CtcLMWerConfig(CtcCriterionConfig):
    wer_beam: int = field(default=50, metadata={"help": "beam size of the validation LM decoding"})
    wer_beam_threshold: float = field(default=25.0, metadata={"help": "beam threshold of the validation LM decoding"})


class _WordsDecoder:
    """fairseq's ``w2l_decoder`` interface (``decode(lp [1, T, V]) -> [[{"words": [...]}]]``) over ours."""

    def __init__(self, decoder):
        self.decoder = decoder

    def decode(self, log_probs) -> List[List[Dict[str, List[str]]]]:
        return [[{"words": h.words} for h in nbest] for nbest in self.decoder.decode(log_probs.float().cpu())]


def _set_lm(cfg, value) -> None:
    """``cfg.wer_kenlm_model = value`` on a dataclass or a (struct) DictConfig."""
    if isinstance(cfg, DictConfig):
        with open_dict(cfg):
            cfg.wer_kenlm_model = value
    else:
        cfg.wer_kenlm_model = value


@register_criterion("ctc_lm_wer", dataclass=CtcLMWerConfig)
class CtcLMWerCriterion(CtcCriterion):
    def __init__(self, cfg: CtcLMWerConfig, task, rdrop_alpha: float = 0.0):
        lm, lexicon = cfg.wer_kenlm_model, cfg.wer_lexicon
        if cfg.wer_args is not None:
            raise ValueError("criterion.wer_args is deprecated in fairseq; set wer_kenlm_model and wer_lexicon")
        if lm and not lexicon:
            raise ValueError("criterion.wer_kenlm_model needs criterion.wer_lexicon (WORD<TAB>W O R D | lines)")
        # keep fairseq's constructor away from its examples/ decoder; ours is set below
        _set_lm(cfg, None)
        try:
            super().__init__(cfg, task, rdrop_alpha)
        finally:
            _set_lm(cfg, lm)
        if lm:
            dictionary = task.target_dictionary
            self.w2l_decoder = _WordsDecoder(build_decoder(
                "kenlm", dictionary, lexicon=lexicon, lm=lm, beam=cfg.wer_beam,
                beam_size_token=min(50, len(dictionary)), beam_threshold=cfg.wer_beam_threshold,
                lm_weight=cfg.wer_lm_weight, word_score=cfg.wer_word_score, sil_score=cfg.wer_sil_weight,
                unk_score=-math.inf))
