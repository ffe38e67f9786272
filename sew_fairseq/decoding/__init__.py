"""CTC decoding: greedy and flashlight-text + KenLM beam search, lexicons, ARPA LMs, WER/CER/PER, trn files.

Imports only torch, editdistance, flashlight-text and (for ``dict.ltr.txt``) fairseq's Dictionary;
never training code or models.

>>> from sew_fairseq.decoding import build_decoder, wer
>>> dec = build_decoder("kenlm", "dict.ltr.txt", lexicon="lexicon.txt", lm="lm.arpa")  # doctest: +SKIP
>>> hyps = dec.decode(log_probs, lengths)  # [B, T, V] -> n-best lists               # doctest: +SKIP
"""
from .arpa import ArpaModel, estimate_arpa, read_arpa, read_arpa_vocabulary, write_arpa
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
from .lexicon import (
    LMVocabularyReport,
    build_lexicon,
    check_lm_vocabulary,
    read_lexicon,
    spell,
    to_letters,
    words_from_wrd_files,
    write_lexicon,
)
from .metrics import PHONE_IGNORE, ErrorRate, cer, char_errors, per, phone_errors, score_texts, wer, word_errors
from .timestamps import WordTiming, letter_groups, word_timings
from .trn import UtteranceResult, read_trn, sanitize_utt_id, write_trn, write_utterance_tsv

__all__ = [
    "ArpaModel", "estimate_arpa", "read_arpa", "read_arpa_vocabulary", "write_arpa",
    "KINDS", "CTCDecoder", "Hypothesis", "KenLMLexiconDecoder", "KenLMLexiconFreeDecoder", "ViterbiDecoder",
    "build_decoder", "is_phone_dictionary", "load_letter_dictionary", "word_boundary_of",
    "LMVocabularyReport", "build_lexicon", "check_lm_vocabulary", "read_lexicon", "spell", "to_letters",
    "words_from_wrd_files", "write_lexicon",
    "PHONE_IGNORE", "ErrorRate", "cer", "char_errors", "per", "phone_errors", "score_texts", "wer", "word_errors",
    "WordTiming", "letter_groups", "word_timings",
    "UtteranceResult", "read_trn", "sanitize_utt_id", "write_trn", "write_utterance_tsv",
]
