"""Word, character and phone error rates (Levenshtein distance via ``editdistance``).

Corpus-level rates are total errors over total reference length (not a mean of per-utterance
rates). Words are whitespace-separated tokens; characters are those of the words joined by single
spaces, spaces included (``ignore_spaces=True`` drops them). Text is compared as given: normalise
case and punctuation before calling. Phones are whitespace-separated symbols (``sil sh iy hh ae d``);
:func:`per` removes the ``ignore`` symbols (``sil``) from references and hypotheses before aligning them.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, NamedTuple, Sequence

import editdistance

#: not scored in the PER of phone models (TIMIT's folded closures, pauses and h#)
PHONE_IGNORE = ("sil",)


class ErrorRate(NamedTuple):
    """``errors`` edits (substitutions + deletions + insertions) over ``ref_len`` reference units."""

    errors: int
    ref_len: int
    rate: float  # errors / ref_len; 0.0 for an empty reference with no errors, inf with errors


def _rate(errors: int, ref_len: int) -> ErrorRate:
    if ref_len == 0:
        return ErrorRate(errors, 0, 0.0 if errors == 0 else float("inf"))
    return ErrorRate(errors, ref_len, errors / ref_len)


def _chars(text: str, ignore_spaces: bool) -> List[str]:
    return list("".join(text.split()) if ignore_spaces else " ".join(text.split()))


def word_errors(ref: str, hyp: str) -> ErrorRate:
    """One utterance's word edit distance and reference word count."""
    r, h = ref.split(), hyp.split()
    return _rate(int(editdistance.eval(r, h)), len(r))


def char_errors(ref: str, hyp: str, ignore_spaces: bool = False) -> ErrorRate:
    """One utterance's character edit distance and reference character count."""
    r, h = _chars(ref, ignore_spaces), _chars(hyp, ignore_spaces)
    return _rate(int(editdistance.eval(r, h)), len(r))


def _check(refs: Sequence[str], hyps: Sequence[str]) -> None:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses; they must pair up one to one")


def wer(refs: Sequence[str], hyps: Sequence[str]) -> ErrorRate:
    """Corpus word error rate: sum of word edits / sum of reference words."""
    _check(refs, hyps)
    per = [word_errors(r, h) for r, h in zip(refs, hyps)]
    return _rate(sum(p.errors for p in per), sum(p.ref_len for p in per))


def cer(refs: Sequence[str], hyps: Sequence[str], ignore_spaces: bool = False) -> ErrorRate:
    """Corpus character error rate: sum of character edits / sum of reference characters."""
    _check(refs, hyps)
    per = [char_errors(r, h, ignore_spaces) for r, h in zip(refs, hyps)]
    return _rate(sum(p.errors for p in per), sum(p.ref_len for p in per))


def phone_errors(ref: str, hyp: str, ignore: Iterable[str] = PHONE_IGNORE) -> ErrorRate:
    """One utterance's phone edit distance and reference phone count, the ``ignore`` symbols removed from both."""
    skip = set(ignore)
    r = [p for p in ref.split() if p not in skip]
    h = [p for p in hyp.split() if p not in skip]
    return _rate(int(editdistance.eval(r, h)), len(r))


def per(refs: Sequence[str], hyps: Sequence[str], ignore: Iterable[str] = PHONE_IGNORE) -> ErrorRate:
    """Corpus phone error rate: sum of phone edits / sum of reference phones, ``ignore`` symbols not scored.

    TIMIT phone error rates are conventionally reported over the 39 folded phones with silence (``sil``: the
    closures, pauses and ``h#``) not scored; ``ignore=()`` scores every symbol, as Kaldi's TIMIT scoring does.

    >>> per(["sil sh iy sil hh ae d"], ["sh iy hh eh d sil"])
    ErrorRate(errors=1, ref_len=5, rate=0.2)
    """
    _check(refs, hyps)
    ignore = tuple(ignore)
    scores = [phone_errors(r, h, ignore) for r, h in zip(refs, hyps)]
    return _rate(sum(p.errors for p in scores), sum(p.ref_len for p in scores))


def score_texts(refs: Sequence[str], hyps: Sequence[str], phones: bool = False) -> Dict[str, object]:
    """The scores of a decoded set (what ``sew-infer``'s ``results.json`` and ``sew-transcribe``'s ``summary.json``
    report), rates in percent: for words, ``wer``, ``cer``, ``word_errors`` and ``words`` (reference words); for a
    phone model (``phones``), ``per`` without :data:`PHONE_IGNORE`, ``phone_errors``, ``phones`` (reference phones
    scored), ``per_ignores`` and ``per_with_sil`` (every symbol scored)."""
    if phones:
        p, p_all = per(refs, hyps, ignore=PHONE_IGNORE), per(refs, hyps, ignore=())
        return {"per": 100 * p.rate, "phone_errors": p.errors, "phones": p.ref_len, "per_ignores": list(PHONE_IGNORE),
                "per_with_sil": 100 * p_all.rate}
    w, c = wer(refs, hyps), cer(refs, hyps)
    return {"wer": 100 * w.rate, "cer": 100 * c.rate, "word_errors": w.errors, "words": w.ref_len}
