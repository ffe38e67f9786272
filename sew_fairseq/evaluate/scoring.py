"""Scoring decoded splits (what ``sew-infer`` and ``sew-bench tradeoff`` report): n-best lists of every utterance,
WER / CER or (phones) PER, the reference words a lexicon cannot produce, LM-weight tuning, and the result files
(``hyp.trn``, ``ref.trn``, ``utterances.tsv``, ``results.json``).

``emissions`` are :class:`sew_fairseq.evaluate.splits.Emission` (an utterance with its references and its [T, V]
log-probabilities); decoders are :mod:`sew_fairseq.decoding`'s.
"""
import itertools
import json
import os
import random
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from manifests.atomic import atomic_open

from manifests.error_rates import PHONE_IGNORE, score_texts


def decode_all(decoder, emissions) -> List[List]:
    """n-best lists of every emission, one utterance at a time (no padding in the beam search)."""
    return [decoder.decode(e.log_probs.unsqueeze(0))[0] for e in emissions]


def score(emissions, nbests, labels: str = "wrd") -> Dict[str, object]:
    """WER and CER of word references, or (``labels="phn"``) PER without ``sil`` and with every symbol
    (:func:`manifests.error_rates.score_texts` of the best hypotheses); {} without references."""
    refs = [e.utterance.words for e in emissions]
    if any(r is None for r in refs):
        return {}
    hyps = [" ".join(n[0].words) if n else "" for n in nbests]
    return score_texts(refs, hyps, phones=labels == "phn")


def reference_oov(lexicon_path: str, emissions) -> Dict[str, object]:
    """Reference words a lexicon decoder cannot output: count, rate and a few examples."""
    from manifests.lexicon import read_lexicon

    lexicon = read_lexicon(lexicon_path)
    words = [w for e in emissions if e.utterance.words for w in e.utterance.words.split()]
    oov = [w for w in words if w not in lexicon]
    return {"oov_words": len(oov), "reference_words": len(words),
            "oov_rate": 100 * len(oov) / max(1, len(words)), "oov_examples": sorted(set(oov))[:10]}


def summarize(emissions, nbests, sample_rate: int, forward_seconds: float, decode_seconds: float,
              labels: str = "wrd") -> Dict:
    """The head of ``results.json``: utterances, audio seconds, forward and decoding seconds, the real-time factor
    ((forward + decoding) / audio) and the scores of :func:`score`."""
    audio_s = sum(e.utterance.num_samples for e in emissions) / sample_rate
    return {"utterances": len(emissions), "audio_seconds": audio_s, "forward_seconds": forward_seconds,
            "decode_seconds": decode_seconds, "rtf": (forward_seconds + decode_seconds) / audio_s, "labels": labels,
            **score(emissions, nbests, labels)}


def write_results(out_dir: str, emissions, nbests, summary: Dict, labels: str = "wrd") -> None:
    from manifests.trn import UtteranceResult, write_trn, write_utterance_tsv

    os.makedirs(out_dir, exist_ok=True)
    hyps = [" ".join(n[0].words) if n else "" for n in nbests]
    ids = [e.utterance.id for e in emissions]
    write_trn(os.path.join(out_dir, "hyp.trn"), list(zip(ids, hyps)))
    if all(e.utterance.words is not None for e in emissions):
        write_trn(os.path.join(out_dir, "ref.trn"), [(i, e.utterance.words) for i, e in zip(ids, emissions)])
    write_utterance_tsv(os.path.join(out_dir, "utterances.tsv"),
                        [UtteranceResult(i, e.utterance.words or "", h, e.exit_layer)
                         for i, e, h in zip(ids, emissions, hyps)],
                        unit="phone" if labels == "phn" else "word", ignore=PHONE_IGNORE if labels == "phn" else ())
    with atomic_open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)


#: the (LM weight, word score) grid ``sew-infer --tune`` searches by default
DEFAULT_LM_WEIGHTS = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
DEFAULT_WORD_SCORES = [-2.0, -1.0, 0.0, 1.0, 2.0]


def tuning_grid(lm_weights: Sequence[float], word_scores: Sequence[float], lexicon_free: bool = False,
                budget: Optional[int] = None, seed: int = 0) -> List[Tuple[float, float]]:
    """The (lm weight, word score) pairs to try: every pair, or for the lexicon-free decoder (no word score) every
    weight with 0; a random subset of ``budget`` pairs (``seed``) when there are more."""
    grid = [(w, 0.0) for w in lm_weights] if lexicon_free else list(itertools.product(lm_weights, word_scores))
    if budget is not None and len(grid) > budget:
        grid = random.Random(seed).sample(grid, budget)
    return grid


def tune_lm_weights(emissions, grid: Sequence[Tuple[float, float]], make_decoder: Callable[[float, float], object],
                    report: Optional[Callable[[Dict], None]] = None) -> Dict:
    """Decode ``emissions`` with ``make_decoder(lm_weight, word_score)`` for each pair of ``grid``; ``{"best": the
    row of the lowest WER (then CER), "trials": every row}``, each row the pair and its :func:`score`."""
    rows = []
    for lm_weight, word_score in grid:
        result = score(emissions, decode_all(make_decoder(lm_weight, word_score), emissions))
        rows.append({"lm_weight": lm_weight, "word_score": word_score, **result})
        if report is not None:
            report(rows[-1])
    best = min(rows, key=lambda r: (r["wer"], r["cer"]))
    return {"best": best, "trials": rows}
