"""CTC decoders over letter emissions: greedy (Viterbi) and flashlight-text beam search with KenLM.

Emissions are per-frame scores over a fairseq letter dictionary (``dict.ltr.txt``): shape
``[B, T, V]`` with V = ``len(dictionary)``, log-probabilities or raw logits (both are passed through
``log_softmax`` first, which leaves log-probabilities unchanged). The CTC blank is ``<s>``
(``dictionary.bos()``, fairseq's fine-tuning convention), the word boundary is ``|``; ``<pad>`` and
``</s>`` are never output.

Token-level dictionaries without a word boundary (TIMIT's phones, ``dict.phn.txt``: ``sil``, ``aa``, ...) decode
with ``word_boundary=None``: each output symbol is then a "word" of the hypothesis (``words`` = the collapsed
symbols, ``tokens`` the same joined by spaces); only :class:`ViterbiDecoder` supports it (the KenLM decoders need
the boundary to find words).

Decoders:

* :class:`ViterbiDecoder`: argmax per frame, collapse repeats, drop blanks (no LM).
* :class:`KenLMLexiconDecoder`: flashlight's ``LexiconDecoder``: beam search constrained to the
  words of a lexicon (``WORD L E T T E R S |``, see :mod:`.lexicon`) with a **word-level** KenLM
  (ARPA or binary) whose vocabulary should cover the lexicon.
* :class:`KenLMLexiconFreeDecoder`: flashlight's ``LexiconFreeDecoder``: free letter sequences, scored
  by a **token-level** KenLM whose "words" are the dictionary's symbols (letters and ``|``), i.e. an LM
  trained on ``.ltr`` lines such as ``H E L L O | W O R L D |``. The LM scores every emitted letter and
  every ``|``; a word-level LM would score each letter as ``<unk>``.

All share ``decode(emissions, lengths) -> List[List[Hypothesis]]`` (n-best per utterance, best first);
:func:`build_decoder` makes one by name.
"""
from __future__ import annotations

import logging
import math
import os
import warnings
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from manifests.records import PathLike

from manifests.arpa import is_arpa, read_arpa_vocabulary
from manifests.lexicon import WORD_BOUNDARY, Lexicon, check_lm_vocabulary, check_spelling, read_lexicon, spellings

logger = logging.getLogger(__name__)

KINDS = ("viterbi", "kenlm", "kenlm-lexfree")


class Hypothesis(NamedTuple):
    """One decoding: ``words``, the letter path as ``.ltr``-style ``tokens`` (``"H E L L O | W O R L D"``,
    ``|`` between words only), the decoder's ``score`` (Viterbi: summed frame log-probabilities;
    beam search: acoustic + weighted LM + word/silence scores) and ``path``, the dictionary index chosen at
    each frame (length T, blanks and repeats included; what word timestamps are read from, see :mod:`.timestamps`).
    Without a word boundary (``word_boundary=None``) ``words`` are the output symbols themselves
    (``["sil", "sh", "iy"]``) and ``tokens`` is ``"sil sh iy"``."""

    words: List[str]
    tokens: str
    score: float
    path: Tuple[int, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(self.words)


def load_letter_dictionary(path: PathLike):
    """``fairseq.data.Dictionary.load(dict.ltr.txt)`` with a clear error for a missing file."""
    from fairseq.data.dictionary import Dictionary  # the only fairseq type decoding uses

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"letter dictionary not found: {path} (expected fairseq's dict.ltr.txt)")
    return Dictionary.load(path)


def word_boundary_of(dictionary) -> Optional[str]:
    """The word boundary of a fairseq output dictionary: ``|``, or None for a dictionary without one (TIMIT's phones,
    ``dict.phn.txt``), which decodes token by token (the ``word_boundary`` of the decoders)."""
    return WORD_BOUNDARY if WORD_BOUNDARY in dictionary.indices else None


def is_phone_dictionary(dictionary) -> bool:
    """Whether a model with this output dictionary is a phone model (scored in PER, decoded greedily token by token):
    the one rule, a dictionary without the word boundary ``|`` (:func:`word_boundary_of`)."""
    return word_boundary_of(dictionary) is None


class CTCDecoder:
    """Shared checks and post-processing. ``dictionary``: a fairseq ``Dictionary`` (or a path to one);
    ``word_boundary``: the symbol between words (``|``), or None for token-level output (see the module docstring)."""

    def __init__(self, dictionary, nbest: int = 1, blank_symbol: Optional[str] = None,
                 word_boundary: Optional[str] = "|"):
        if isinstance(dictionary, (str, os.PathLike)):
            dictionary = load_letter_dictionary(dictionary)
        self.dictionary = dictionary
        self.vocab_size = len(dictionary)
        if nbest < 1:
            raise ValueError(f"nbest must be >= 1, got {nbest}")
        self.nbest = nbest
        if blank_symbol is None:
            self.blank = dictionary.bos()
        elif blank_symbol in dictionary.indices:
            self.blank = dictionary.index(blank_symbol)
        else:
            raise ValueError(f"blank symbol {blank_symbol!r} is not in the letter dictionary")
        if word_boundary is None:
            self.silence: Optional[int] = None
        elif word_boundary not in dictionary.indices:
            raise ValueError(f"word boundary {word_boundary!r} is not in the letter dictionary "
                             f"({self.vocab_size} symbols); fairseq letter dictionaries have '|'. A dictionary of "
                             f"phones or other units without a word boundary decodes token by token with "
                             f"word_boundary=None and the viterbi decoder (sew-infer --labels phn)")
        else:
            self.silence = dictionary.index(word_boundary)
        # symbols never output: the blank and fairseq's <pad>/</s> (and <s> if it is not the blank)
        self._hidden = {self.blank, dictionary.pad(), dictionary.eos(), dictionary.bos()}
        self.letters = [s for i, s in enumerate(dictionary.symbols) if i not in self._hidden]

    # -- inputs -----------------------------------------------------------------------------------
    def _prepare(self, emissions: torch.Tensor, lengths: Optional[torch.Tensor]) -> Tuple[torch.Tensor, List[int]]:
        """Check shapes, return float32 CPU log-probs [B, T, V] and the valid length of each utterance."""
        if not isinstance(emissions, torch.Tensor) or emissions.dim() != 3:
            shape = list(emissions.shape) if isinstance(emissions, torch.Tensor) else type(emissions).__name__
            raise ValueError(f"expected emissions as a [B, T, V] tensor, found {shape}")
        B, T, V = emissions.shape
        if V != self.vocab_size:
            raise ValueError(f"emissions have V={V} classes but the letter dictionary has {self.vocab_size} "
                             f"symbols; decode with the dict.ltr.txt the model was fine-tuned with")
        if lengths is None:
            lens = [T] * B
        else:
            lens = [int(x) for x in torch.as_tensor(lengths).reshape(-1).tolist()]
            if len(lens) != B or any(not 0 <= n <= T for n in lens):
                raise ValueError(f"lengths must be {B} frame counts in [0, {T}], found {lens}")
        x = torch.log_softmax(emissions.detach().to("cpu", torch.float32), dim=-1).contiguous()
        return x, lens

    # -- outputs ----------------------------------------------------------------------------------
    def _hypothesis(self, path: Sequence[int], score: float, words: Optional[List[str]] = None) -> Hypothesis:
        """Collapse repeats of the frame ``path``, drop blanks/specials, split at ``|``; ``words`` overrides the
        split. Without a word boundary the collapsed symbols are the words."""
        collapsed: List[int] = []
        prev = None
        for i in path:
            if i != prev:
                collapsed.append(i)
            prev = i
        if self.silence is None:
            symbols = [self.dictionary.symbols[i] for i in collapsed if i >= 0 and i not in self._hidden]
            return Hypothesis(symbols if words is None else words, " ".join(symbols), float(score), tuple(path))
        split: List[List[str]] = [[]]
        for i in collapsed:
            if i < 0 or i in self._hidden:
                continue
            if i == self.silence:
                if split[-1]:
                    split.append([])
            else:
                split[-1].append(self.dictionary.symbols[i])
        if not split[-1]:
            split.pop()
        tokens = " | ".join(" ".join(w) for w in split)
        if words is None:
            words = ["".join(w) for w in split]
        return Hypothesis(words, tokens, float(score), tuple(path))

    def decode(self, emissions: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> List[List[Hypothesis]]:
        """Decode ``emissions`` [B, T, V] (``lengths`` [B]: valid frames) into n-best lists, best first."""
        x, lens = self._prepare(emissions, lengths)
        return [self._decode_one(x[b, :n]) if n > 0 else [Hypothesis([], "", 0.0)]
                for b, n in enumerate(lens)]

    def _decode_one(self, x: torch.Tensor) -> List[Hypothesis]:  # x: [T, V] log-probs, contiguous
        raise NotImplementedError

    def word_timings(self, hyp: Hypothesis, log_probs: torch.Tensor):
        """Frames and confidence of each word of ``hyp`` (decoded from ``log_probs`` [T, V]) along its frame path:
        a list of :class:`.timestamps.WordTiming`."""
        from .timestamps import word_timings

        return word_timings(hyp.words, hyp.path, torch.log_softmax(log_probs.float(), -1), sorted(self._hidden),
                            self.silence)


class ViterbiDecoder(CTCDecoder):
    """Greedy CTC: the best class per frame, repeats collapsed, blanks removed; 1-best only."""

    def _decode_one(self, x: torch.Tensor) -> List[Hypothesis]:
        best, idx = x.max(dim=-1)  # [T], [T]
        return [self._hypothesis(idx.tolist(), best.sum().item())]


# ---------------------------------------------------------------------------------------------------
# flashlight-text beam search


def _flashlight():
    """Import flashlight-text's decoder (not PyPI ``flashlight``, an unrelated package)."""
    try:
        from flashlight.lib.text import decoder, dictionary
        from flashlight.lib.text.decoder.kenlm import KenLM
    except ImportError as e:
        raise ImportError("KenLM decoding needs flashlight-text with KenLM (pip install flashlight-text); "
                          "note that PyPI 'flashlight' is an unrelated package") from e
    return decoder, dictionary, KenLM


def _load_kenlm(path: PathLike, token_dict):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"LM file not found: {path}")
    _, _, KenLM = _flashlight()
    try:
        return KenLM(path, token_dict)
    except RuntimeError as e:
        detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot load the LM {path} (expected an ARPA or KenLM binary file): {detail}") from e


def _report_missing(message: str, strict: bool) -> None:
    if strict:
        raise ValueError(message)
    warnings.warn(message, stacklevel=3)
    logger.warning(message)


class _BeamDecoder(CTCDecoder):
    end_with_boundary = True

    def __init__(self, dictionary, nbest: int, blank_symbol: Optional[str], word_boundary: Optional[str]):
        if word_boundary is None:
            raise ValueError(f"{type(self).__name__} needs a word boundary symbol (the '|' of letter dictionaries); "
                             f"decode token-level emissions such as phones with the viterbi decoder")
        super().__init__(dictionary, nbest, blank_symbol, word_boundary)

    def _run(self, x: torch.Tensor, word_dict=None) -> List[Hypothesis]:
        frames = x.shape[0]
        if self.end_with_boundary:
            # lexicon spellings end with '|', so a word completes only once '|' is emitted: append one
            # frame that is '|' with certainty (log-prob 0) so the last word completes even when the model
            # stopped emitting before its final '|'. It merges with a final '|' already there.
            last = torch.full((1, x.shape[1]), -1e4, dtype=x.dtype)
            last[0, self.silence] = 0.0
            x = torch.cat([x, last]).contiguous()  # [T + 1, V]
        T, V = x.shape
        results = self.decoder.decode(x.data_ptr(), T, V)  # x stays alive (a local) during the call
        hyps: List[Hypothesis] = []
        seen = set()
        # best first; frame paths that read the same are merged (the best one kept)
        for r in sorted(results, key=lambda r: -r.score):
            words = None
            if word_dict is not None:
                words = [word_dict.get_entry(i) for i in r.words if i >= 0]
            # r.tokens holds one index per frame between a start and an end symbol: frame t is r.tokens[t + 1]
            hyp = self._hypothesis(list(r.tokens)[1:1 + frames], r.score, words)
            key = (tuple(hyp.words), hyp.tokens)
            if key not in seen:
                seen.add(key)
                hyps.append(hyp)
                if len(hyps) == self.nbest:
                    break
        return hyps


class KenLMLexiconDecoder(_BeamDecoder):
    """Lexicon-constrained CTC beam search with a word-level KenLM (flashlight ``LexiconDecoder``).

    ``lexicon``: a lexicon file or mapping (``word -> letters`` or ``word -> [spellings]``);
    ``lm``: an ARPA or KenLM binary file over the lexicon's words. Options as fairseq's
    ``w2l_decoder``/``infer.py``: ``beam`` (fairseq infer uses 500; 50 is CPU-friendly),
    ``beam_size_token`` (default: all of V), ``beam_threshold``, ``lm_weight``, ``word_score`` (added per
    word), ``unk_score`` (``-inf``: never emit ``<unk>``), ``sil_score`` (added per ``|``), ``log_add``
    (merge equal hypotheses by log-add instead of max). Lexicon words missing from an ARPA LM are reported
    (a warning; ``strict=True``: ValueError); a KenLM binary is not checked. ``end_with_boundary``: append
    one certain ``|`` frame, so that a last word whose final ``|`` the model did not emit still completes
    (spellings end with ``|``; without it such a word is lost or replaced by a shorter one).
    """

    def __init__(self, dictionary, lexicon: Union[PathLike, Lexicon], lm: PathLike, *, beam: int = 50,
                 beam_size_token: Optional[int] = None, beam_threshold: float = 25.0, lm_weight: float = 2.0,
                 word_score: float = -1.0, unk_score: float = -math.inf, sil_score: float = 0.0,
                 log_add: bool = False, nbest: int = 1, strict: bool = False,
                 blank_symbol: Optional[str] = None, word_boundary: str = "|", end_with_boundary: bool = True):
        super().__init__(dictionary, nbest, blank_symbol, word_boundary)
        self.end_with_boundary = end_with_boundary
        fl_decoder, fl_dict, _ = _flashlight()
        alphabet = set(self.letters) | {word_boundary}
        if isinstance(lexicon, (str, os.PathLike)):
            lex = read_lexicon(lexicon, alphabet=alphabet)
        else:
            lex = spellings(lexicon)
            for n, (word, spells) in enumerate(lex.items(), 1):
                for s in spells:
                    check_spelling(word, s, alphabet, where=f"lexicon entry {n}")
        lex = {w: s for w, s in lex.items() if w != "<unk>"}
        if not lex:
            raise ValueError("the lexicon has no words")
        lm = os.fspath(lm)
        if not os.path.isfile(lm):
            raise ValueError(f"LM file not found: {lm}")
        if is_arpa(lm):
            report = check_lm_vocabulary(lm, lex)
            if not report.ok:
                _report_missing(report.summary(), strict)
        else:
            logger.info("%s is a KenLM binary: lexicon/LM vocabulary check skipped", lm)

        self.lexicon = lex
        self.word_dict = fl_dict.create_word_dict({**lex, "<unk>": []})
        self.lm = _load_kenlm(lm, self.word_dict)
        self.unk_word = self.word_dict.get_index("<unk>")
        # trie over letter paths; each word's node carries its unigram LM score (smeared up the trie)
        self.trie = fl_decoder.Trie(self.vocab_size, self.silence)
        start = self.lm.start(False)
        for word, spells in lex.items():
            word_idx = self.word_dict.get_index(word)
            _, score = self.lm.score(start, word_idx)
            for s in spells:
                self.trie.insert([self.dictionary.index(c) for c in s], word_idx, score)
        self.trie.smear(fl_decoder.SmearingMode.MAX)
        self.options = fl_decoder.LexiconDecoderOptions(
            beam_size=beam, beam_size_token=beam_size_token or self.vocab_size, beam_threshold=beam_threshold,
            lm_weight=lm_weight, word_score=word_score, unk_score=unk_score, sil_score=sil_score,
            log_add=log_add, criterion_type=fl_decoder.CriterionType.CTC)
        self.decoder = fl_decoder.LexiconDecoder(self.options, self.trie, self.lm, self.silence, self.blank,
                                                 self.unk_word, [], False)

    def _decode_one(self, x: torch.Tensor) -> List[Hypothesis]:
        return self._run(x, self.word_dict)


class KenLMLexiconFreeDecoder(_BeamDecoder):
    """Lexicon-free CTC beam search with a token-level KenLM (flashlight ``LexiconFreeDecoder``).

    ``lm``: an ARPA or KenLM binary over the dictionary's symbols as words, e.g. estimated from ``.ltr``
    lines (``H E L L O | W O R L D |``) with ``lmplz`` or :func:`manifests.arpa.write_arpa`;
    use a high order (letter LMs need 6+ for real text). Each emitted letter and ``|`` gets
    ``lm_weight`` times its LM log10-probability, ``|`` also ``sil_score``. Letters missing from an ARPA
    LM's vocabulary are reported (warning; ``strict=True``: ValueError). ``end_with_boundary``: append one
    certain ``|`` frame (as ``.ltr`` lines end with ``|``, so the LM scores ``| </s>`` at the end).
    """

    def __init__(self, dictionary, lm: PathLike, *, beam: int = 50, beam_size_token: Optional[int] = None,
                 beam_threshold: float = 25.0, lm_weight: float = 1.0, sil_score: float = 0.0,
                 log_add: bool = False, nbest: int = 1, strict: bool = False,
                 blank_symbol: Optional[str] = None, word_boundary: str = "|", end_with_boundary: bool = True):
        super().__init__(dictionary, nbest, blank_symbol, word_boundary)
        self.end_with_boundary = end_with_boundary
        fl_decoder, fl_dict, _ = _flashlight()
        lm = os.fspath(lm)
        if not os.path.isfile(lm):
            raise ValueError(f"LM file not found: {lm}")
        if is_arpa(lm):
            vocab = read_arpa_vocabulary(lm)
            missing = [s for s in self.letters if s != "<unk>" and s not in vocab]
            if missing:
                _report_missing(
                    f"{len(missing)} of {len(self.letters)} dictionary symbols are not in the vocabulary of "
                    f"the token-level LM {lm}, e.g. {', '.join(repr(s) for s in missing[:5])}; a lexicon-free "
                    f"LM must be trained on letter sequences (.ltr lines such as 'H E L L O | W O R L D |')",
                    strict)
        else:
            logger.info("%s is a KenLM binary: token vocabulary check skipped", lm)
        # the LM's user dictionary is the emission vocabulary itself: token index i <-> LM word symbols[i]
        self.token_dict = fl_dict.Dictionary(list(self.dictionary.symbols))
        self.lm = _load_kenlm(lm, self.token_dict)
        self.options = fl_decoder.LexiconFreeDecoderOptions(
            beam_size=beam, beam_size_token=beam_size_token or self.vocab_size, beam_threshold=beam_threshold,
            lm_weight=lm_weight, sil_score=sil_score, log_add=log_add,
            criterion_type=fl_decoder.CriterionType.CTC)
        self.decoder = fl_decoder.LexiconFreeDecoder(self.options, self.lm, self.silence, self.blank, [])

    def _decode_one(self, x: torch.Tensor) -> List[Hypothesis]:
        return self._run(x)


def build_decoder(kind: str, dictionary, lexicon: Union[PathLike, Lexicon, None] = None,
                  lm: Optional[PathLike] = None, **opts) -> CTCDecoder:
    """``kind``: ``"viterbi"``, ``"kenlm"`` (lexicon + word LM) or ``"kenlm-lexfree"`` (token LM).

    ``dictionary``: a fairseq ``Dictionary`` or the path of ``dict.ltr.txt``; ``opts`` go to the class.
    """
    if kind == "viterbi":
        if lexicon is not None or lm is not None:
            raise ValueError("the viterbi decoder takes no lexicon or LM; use kind='kenlm'")
        return ViterbiDecoder(dictionary, **opts)
    if kind == "kenlm":
        if lexicon is None or lm is None:
            raise ValueError("kind='kenlm' needs lexicon= (a lexicon file) and lm= (an ARPA/KenLM binary)")
        return KenLMLexiconDecoder(dictionary, lexicon, lm, **opts)
    if kind == "kenlm-lexfree":
        if lm is None:
            raise ValueError("kind='kenlm-lexfree' needs lm= (a letter-level ARPA/KenLM binary)")
        if lexicon is not None:
            raise ValueError("kind='kenlm-lexfree' takes no lexicon; use kind='kenlm' for lexicon decoding")
        return KenLMLexiconFreeDecoder(dictionary, lm, **opts)
    raise ValueError(f"unknown decoder kind {kind!r}; choose one of {', '.join(KINDS)}")
