"""CTC decoding on emissions: ``[T, V]`` log-probabilities -> text, greedy or flashlight-text + KenLM beam search,
and word times from the best path. Imports torch, flashlight-text and (for ``dict.ltr.txt``) fairseq's Dictionary;
never training code or models.

The text files around decoding need neither and live in the light layer: the lexicon (:mod:`manifests.lexicon`),
ARPA LMs (:mod:`manifests.arpa`), WER / CER / PER (:mod:`manifests.error_rates`), trn files
(:mod:`manifests.trn`) and sclite scoring (:mod:`manifests.sclite`).

>>> from sew_fairseq.decoding import build_decoder
>>> dec = build_decoder("kenlm", "dict.ltr.txt", lexicon="lexicon.txt", lm="lm.arpa")  # doctest: +SKIP
>>> hyps = dec.decode(log_probs, lengths)  # [B, T, V] -> n-best lists               # doctest: +SKIP
"""
from .ctc_decoder import (
    KINDS,
    CTCDecoder,
    Hypothesis,
    KenLMLexiconDecoder,
    KenLMLexiconFreeDecoder,
    ViterbiDecoder,
    build_decoder,
    is_phone_dictionary,
    load_letter_dictionary,
    word_boundary_of,
)
from .timestamps import WordTiming, letter_groups, word_timings

__all__ = [
    "KINDS", "CTCDecoder", "Hypothesis", "KenLMLexiconDecoder", "KenLMLexiconFreeDecoder", "ViterbiDecoder",
    "build_decoder", "is_phone_dictionary", "load_letter_dictionary", "word_boundary_of",
    "WordTiming", "letter_groups", "word_timings",
]
