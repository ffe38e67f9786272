r"""A small n-gram LM estimator that writes ARPA files KenLM (and flashlight-text) can load.

Meant for tests, demos and small corpora, when KenLM's ``lmplz`` is not installed. Word-level LMs
take transcripts (``.wrd`` lines); letter-level LMs for the lexicon-free decoder take ``.ltr`` lines
(``H E L L O | W O R L D |``, see :func:`manifests.lexicon.to_letters`): tokens are
whitespace-separated either way.

Smoothing: interpolated absolute discounting (Ney, Essen & Kneser 1994), written in back-off form.
Each sentence is padded as ``<s> w1 ... wk </s>`` and n-grams of every order 1..N are counted over it.
For order n >= 2 and a context h (n-1 tokens) with ``c(h) = sum_w c(h w) > 0``::

    P(w | h) = max(c(h w) - D_n, 0) / c(h) + gamma(h) * P(w | h')     h' = h without its first token
    gamma(h) = D_n * N1+(h .) / c(h)                                   N1+(h .) = #{w : c(h w) > 0}

and for unigrams, with V the vocabulary without ``<s>`` (``</s>`` and ``<unk>`` included) and N the
number of counted tokens::

    P(w) = max(c(w) - D_1, 0) / N + D_1 * N1+(.) / N / |V|

``D_n = n1 / (n1 + 2 n2)`` from the count-of-counts of order n (Ney's estimate), 0.5 when n1 or n2
is 0, clipped to [0.1, 0.9]. The ARPA file stores ``log10 P(w | h)`` for every seen n-gram and
``log10 gamma(h)`` as the back-off weight of h: for an unseen ``h w`` the back-off rule
``P(w | h) = bow(h) * P(w | h')`` then gives exactly the interpolated probability, so every context's
distribution sums to 1 (``ArpaModel.max_normalisation_error``; tests check it through KenLM too).
``<s>`` gets the conventional log10 probability -99 (never predicted). ``<unk>`` and the words of
``vocabulary`` that the text lacks share the unigram floor mass.

For big corpora use KenLM's ``lmplz`` (modified Kneser-Ney) and ``build_binary``. PyPI carries no
binaries, but the ``kenlm`` sdist holds the whole source; on Debian/Ubuntu::

    sudo apt-get install -y cmake build-essential libboost-program-options-dev libboost-system-dev \
        libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev
    pip download --no-binary :all: --no-deps kenlm==0.3.0
    tar xzf kenlm-0.3.0.tar.gz && mkdir -p kenlm-0.3.0/build && cd kenlm-0.3.0/build
    cmake .. && make -j2 lmplz build_binary
    bin/lmplz -o 4 --discount_fallback < train.wrd > lm.arpa     # word LM; -o 6+ for letter LMs
    bin/build_binary lm.arpa lm.bin                               # faster loading, same scores
"""
from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .atomic import atomic_open
from .records import PathLike

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
BOS_LOG10 = -99.0
Ngram = Tuple[str, ...]

def _discount(counts: Dict[Ngram, int]) -> float:
    """Ney's absolute discount n1 / (n1 + 2 n2), 0.5 without singletons or doubletons, in [0.1, 0.9]."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    d = n1 / (n1 + 2 * n2) if n1 > 0 and n2 > 0 else 0.5
    return min(max(d, 0.1), 0.9)


@dataclass
class ArpaModel:
    """A back-off n-gram model: ``ngrams[n-1][gram] = (log10 prob, log10 back-off weight)``."""

    order: int
    ngrams: List[Dict[Ngram, Tuple[float, float]]] = field(default_factory=list)

    @property
    def vocabulary(self) -> List[str]:
        return [g[0] for g in self.ngrams[0]]

    def logprob(self, word: str, context: Sequence[str] = ()) -> float:
        """log10 P(word | context) by the ARPA back-off rule (unknown words as ``<unk>``)."""
        if (word,) not in self.ngrams[0]:
            word = UNK
        context = tuple(c if (c,) in self.ngrams[0] else UNK for c in context)
        context = context[len(context) - (self.order - 1):] if self.order > 1 else ()
        backoff = 0.0
        while True:
            gram = context + (word,)
            entry = self.ngrams[len(gram) - 1].get(gram)
            if entry is not None:
                return entry[0] + backoff
            if not context:
                raise KeyError(f"{word!r} is not in the model and the model has no {UNK}")
            ctx = self.ngrams[len(context) - 1].get(context) if context else None
            if ctx is not None:
                backoff += ctx[1]
            context = context[1:]

    def max_normalisation_error(self) -> float:
        """max over all contexts in the model (and the empty one) of |sum_w P(w | h) - 1|."""
        words = [w for w in self.vocabulary if w != BOS]
        contexts: List[Ngram] = [()] + [g for n in range(self.order - 1) for g in self.ngrams[n]]
        worst = 0.0
        for h in contexts:
            total = sum(10.0 ** self.logprob(w, h) for w in words)
            worst = max(worst, abs(total - 1.0))
        return worst

    def write(self, path: PathLike) -> None:
        """Write the model as an ARPA file (bow columns only where non-zero)."""
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write("\\data\\\n")
            for n, grams in enumerate(self.ngrams, 1):
                f.write(f"ngram {n}={len(grams)}\n")
            for n, grams in enumerate(self.ngrams, 1):
                f.write(f"\n\\{n}-grams:\n")
                for gram, (prob, bow) in grams.items():
                    line = f"{prob:.7f}\t{' '.join(gram)}"
                    if n < self.order and bow != 0.0:
                        line += f"\t{bow:.7f}"
                    f.write(line + "\n")
            f.write("\n\\end\\\n")


def estimate_arpa(lines: Iterable[str], order: int = 3, vocabulary: Optional[Iterable[str]] = None,
                  tokenize: Callable[[str], List[str]] = str.split) -> ArpaModel:
    """Estimate an interpolated absolute-discounting model (module docstring) from text lines.

    ``order`` 2..6 (KenLM loads at least bigrams; 6 is its default maximum order). ``vocabulary``:
    extra words to give a probability (e.g. every lexicon word), besides the text's tokens.
    """
    if not 2 <= order <= 6:
        raise ValueError(f"order must be between 2 and 6 (KenLM needs at least a bigram model), got {order}")
    counts: List[Counter] = [Counter() for _ in range(order)]
    for line in lines:
        tokens = tokenize(line)
        if not tokens:
            continue
        if BOS in tokens[1:] or EOS in tokens[:-1]:
            raise ValueError(f"text line contains {BOS} or {EOS} inside the sentence: {line.strip()!r}")
        tokens = [t for t in tokens if t not in (BOS, EOS)]
        padded = [BOS] + tokens + [EOS]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                counts[n - 1][tuple(padded[i:i + n])] += 1
    if not counts[0]:
        raise ValueError("estimate_arpa: no tokens in the text")

    vocab: Dict[str, None] = {w: None for (w,) in counts[0]}
    for w in [UNK] + list(vocabulary or []):
        vocab.setdefault(w, None)
    predicted = [w for w in vocab if w != BOS]

    model = ArpaModel(order, [dict() for _ in range(order)])
    # unigrams: discounted counts + floor mass spread uniformly over V
    uni = {g: c for g, c in counts[0].items() if g[0] != BOS}
    d1 = _discount(uni)
    total = sum(uni.values())
    floor = d1 * len(uni) / total / len(predicted)
    full: Dict[Ngram, float] = {}  # full (interpolated) probability of every stored n-gram
    for w in vocab:
        if w == BOS:
            continue
        p = max(uni.get((w,), 0) - d1, 0.0) / total + floor
        full[(w,)] = p

    def lower(gram: Ngram) -> float:
        """Full back-off probability of gram[-1] given gram[1:-1] under the orders built so far."""
        h, w = gram[1:-1], gram[-1]
        if gram[1:] in full:
            return full[gram[1:]]
        prob = 1.0
        while (h + (w,)) not in full:
            prob *= gammas.get(h, 1.0)
            h = h[1:]
        return prob * full[h + (w,)]

    gammas: Dict[Ngram, float] = {}
    for n in range(2, order + 1):
        grams = counts[n - 1]
        d = _discount(grams)
        ctx_total: Dict[Ngram, int] = defaultdict(int)
        ctx_types: Dict[Ngram, int] = defaultdict(int)
        for g, c in grams.items():
            ctx_total[g[:-1]] += c
            ctx_types[g[:-1]] += 1
        new_full = {}
        for g, c in grams.items():
            h = g[:-1]
            gamma = d * ctx_types[h] / ctx_total[h]
            new_full[g] = (c - d) / ctx_total[h] + gamma * lower(g)
        for h in ctx_total:
            gammas[h] = d * ctx_types[h] / ctx_total[h]
        full.update(new_full)

    for w in vocab:
        gram = (w,)
        prob = BOS_LOG10 if w == BOS else math.log10(full[gram])
        model.ngrams[0][gram] = (prob, math.log10(gammas[gram]) if gram in gammas else 0.0)
    for n in range(2, order + 1):
        for g in counts[n - 1]:
            model.ngrams[n - 1][g] = (math.log10(full[g]), math.log10(gammas[g]) if g in gammas else 0.0)
    return model


def write_arpa(path: PathLike, lines: Iterable[str], order: int = 3,
               vocabulary: Optional[Iterable[str]] = None) -> ArpaModel:
    """Estimate a model from ``lines`` (:func:`estimate_arpa`) and write it to ``path``."""
    model = estimate_arpa(lines, order=order, vocabulary=vocabulary)
    model.write(path)
    return model


def is_arpa(path: PathLike) -> bool:
    """True if the file starts like an ARPA file (KenLM binaries start with ``mmap lm``)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    return head.lstrip().startswith(b"\\data\\")


def read_arpa(path: PathLike) -> ArpaModel:
    """Parse an ARPA file (errors name the file and line)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"ARPA file not found: {path}")
    model = ArpaModel(0)
    section = -1
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if line == "\\data\\":
                section = 0
            elif line.startswith("ngram ") and section == 0:
                model.ngrams.append({})
                model.order += 1
            elif line == "\\end\\":
                break
            elif line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1:line.index("-")])
            elif section >= 1:
                parts = line.split("\t") if "\t" in line else line.split()
                try:
                    if "\t" in line:
                        prob, gram = float(parts[0]), tuple(parts[1].split())
                        bow = float(parts[2]) if len(parts) > 2 else 0.0
                    else:
                        prob, gram = float(parts[0]), tuple(parts[1:1 + section])
                        bow = float(parts[1 + section]) if len(parts) > 1 + section else 0.0
                except (ValueError, IndexError) as e:
                    raise ValueError(f"{path}:{lineno}: not an ARPA {section}-gram line: {line!r}") from e
                if len(gram) != section:
                    raise ValueError(f"{path}:{lineno}: expected a {section}-gram, got {line!r}")
                model.ngrams[section - 1][gram] = (prob, bow)
            else:
                raise ValueError(f"{path}:{lineno}: unexpected line in ARPA file: {line!r}")
    if model.order == 0 or not model.ngrams[0]:
        raise ValueError(f"{path} is not an ARPA file (no \\data\\ header or no 1-grams)")
    return model


def read_arpa_vocabulary(path: PathLike) -> Set[str]:
    """The words of an ARPA file's 1-gram section (reads only that section)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"LM file not found: {path}")
    if not is_arpa(path):
        raise ValueError(f"{path} is not an ARPA file (a KenLM binary?); its vocabulary cannot be read here")
    vocab: Set[str] = set()
    inside = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and (line.startswith("\\")):
                break
            elif inside and line:
                parts = line.split()
                if len(parts) >= 2:
                    vocab.add(parts[1])
    return vocab
