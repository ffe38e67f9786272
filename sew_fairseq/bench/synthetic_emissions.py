"""Synthetic CTC emissions and texts for decoder benchmarks (``sew-bench decode``): what a fine-tuned letter model
would emit for a sentence, with controlled confusions, without running one.

**Emissions.** No acoustic model is run: each reference sentence becomes synthetic CTC log-probabilities
``[T, V]`` over a LibriSpeech-style letter dictionary (``|``, 26 letters, ``'``, fairseq's specials;
blank ``<s>``) at 50 frames per second, the frame rate of wav2vec 2.0 / SEW CTC heads (20 ms). Per
letter: 1-2 frames of the letter, then 1-2 blank frames (~3 frames: ~17 letters per second, about read
speech); a ``|`` frame between words (no final ``|``); 2-8 blank frames of leading and trailing silence.
Each frame's logits are ``jitter * N(0, 1)`` on every class plus ``peak`` on the heard symbol; with
probability ``noise`` a letter is misheard: a random other letter gets ``peak`` and the true one
``peak - 1`` (the runner-up), so greedy decoding fails where an LM can recover. fairseq's ``<pad>``,
``</s>`` and ``<unk>`` get logit -30 (a fine-tuned model never emits them). ``peak`` sets how
confident the "model" is: 8 (default) puts ~98% of a frame's mass on its top symbol (fine-tuned CTC
models are about that peaky), 5 only ~75% (an uncertain, early model). ``noise=0, jitter=0`` gives
clean emissions whose greedy reading is the reference.

**Texts and LM.** By default ``utterances`` sentences are drawn from a small English-like grammar
(``NP [ADV] VERB NP [PREP NP]``, 5-11 words; the lexicon holds its 50 words and 34 confusable
neighbours such as BAT/HAT/COT), and a 3-gram word ARPA LM is estimated by
:func:`~manifests.arpa.write_arpa` from 2000 other draws, its vocabulary being the lexicon.
``text=`` gives sentences instead (one per line; upper-cased, characters outside the dictionary
dropped; the first ``utterances`` lines are decoded, the LM is estimated from all lines, so it has seen
them). ``lm=`` (ARPA or KenLM binary) and ``lexicon=`` replace the estimated LM and the lexicon
(without ``lexicon=``: the ARPA 1-grams spelled with dictionary letters; a binary LM needs one).
"""
import random
from typing import List, Optional, Sequence, Tuple

import torch

FRAMES_PER_SECOND = 50  # 20 ms frames: the CTC frame rate of wav2vec 2.0 / SEW
LETTERS = list("ETAONIHSRDLUMWCFGYPBVKXJQZ")
SPECIAL_LOGIT = -30.0  # <pad>, </s>, <unk>: never emitted by a fine-tuned model
PEAK = 8.0  # logit margin of the heard symbol (a misheard letter's true one gets PEAK - 1)

# --- a small grammar --------------------------------------------------------------------------------

DET = ["THE", "A", "EVERY", "ONE"]
ADJ = ["BIG", "SMALL", "OLD", "YOUNG", "RED", "BROWN", "QUIET", "HAPPY", "CLEVER", "HUNGRY"]
NOUN = ["CAT", "DOG", "BIRD", "FISH", "HORSE", "MOUSE", "FARMER", "TEACHER", "CHILD", "KING",
        "SAILOR", "DOCTOR", "GARDEN", "RIVER", "HOUSE", "FOREST"]
VERB = ["SEES", "CHASES", "LIKES", "FEEDS", "FOLLOWS", "FINDS", "WATCHES", "HEARS", "CALLS", "HELPS"]
ADV = ["OFTEN", "NEVER", "SLOWLY", "QUICKLY", "ALWAYS"]
PREP = ["NEAR", "BEHIND", "UNDER", "WITH", "BESIDE"]
# in the lexicon (and the LM's vocabulary, unseen in its text), one letter from a grammar word
NEIGHBOURS = ["BAT", "HAT", "COT", "LOG", "FOG", "DIG", "BARD", "BIND", "DISH", "WISH", "NORSE", "MOOSE",
              "LOUSE", "SEAS", "SEEN", "BIKES", "LINES", "NEEDS", "SEEDS", "SHE", "TIE", "KIND", "RING",
              "BOLD", "RIG", "BOG", "WILD", "MILD", "HEADS", "TALLS", "FINES", "MEAR", "UNDO", "WITS"]


def grammar_words() -> List[str]:
    return DET + ADJ + NOUN + VERB + ADV + PREP


def grammar_sentence(rng: random.Random) -> str:
    def np_() -> List[str]:
        return [rng.choice(DET)] + ([rng.choice(ADJ)] if rng.random() < 0.4 else []) + [rng.choice(NOUN)]

    words = np_() + ([rng.choice(ADV)] if rng.random() < 0.3 else []) + [rng.choice(VERB)] + np_()
    if rng.random() < 0.4:
        words += [rng.choice(PREP)] + np_()
    return " ".join(words)


# --- the letter dictionary and emissions ------------------------------------------------------------

def letter_dictionary():
    """A LibriSpeech-like fairseq letter dictionary: specials, ``|``, 26 letters, ``'`` (V = 32)."""
    from fairseq.data.dictionary import Dictionary

    d = Dictionary()  # <s> <pad> </s> <unk>
    for s in ["|"] + LETTERS + ["'"]:
        d.add_symbol(s)
    return d


def normalise_text(line: str, alphabet: Sequence[str]) -> str:
    """Upper-case; characters outside ``alphabet`` (and whitespace) dropped; whitespace collapsed."""
    allowed = set(alphabet)
    words = ["".join(c for c in w if c in allowed) for w in line.upper().split()]
    return " ".join(w for w in words if w)


def synthesise_emissions(dictionary, text: str, rng: random.Random, noise: float = 0.2,
                         jitter: float = 1.0, peak: float = PEAK) -> torch.Tensor:
    """CTC log-probabilities ``[T, V]`` (float32) for ``text`` (module docstring)."""
    V = len(dictionary)
    blank, boundary = dictionary.bos(), dictionary.index("|")
    specials = [dictionary.pad(), dictionary.eos(), dictionary.unk()]
    letters = [i for i, s in enumerate(dictionary.symbols) if i not in (blank, boundary, *specials)]
    frames: List[Tuple[int, Optional[int]]] = []  # (heard, runner-up or None)
    frames += [(blank, None)] * rng.randint(2, 8)
    for n, word in enumerate(text.split()):
        if n:
            frames.append((boundary, None))
            frames += [(blank, None)] * rng.randint(0, 1)
        for c in word:
            true = dictionary.index(c)
            if true == dictionary.unk():
                raise ValueError(f"letter {c!r} of {word!r} is not in the letter dictionary")
            frame = (true, None)
            if noise > 0 and rng.random() < noise:
                frame = (rng.choice([i for i in letters if i != true]), true)
            frames += [frame] * rng.randint(1, 2)
            frames += [(blank, None)] * rng.randint(1, 2)
    frames += [(blank, None)] * rng.randint(2, 8)
    g = torch.Generator().manual_seed(rng.randrange(1 << 31))
    x = jitter * torch.randn(len(frames), V, generator=g) if jitter > 0 else torch.zeros(len(frames), V)
    heard = torch.tensor([f[0] for f in frames])
    x[torch.arange(len(frames)), heard] += peak
    for t, (_, second) in enumerate(frames):
        if second is not None:
            x[t, second] += peak - 1.0
    x[:, specials] = SPECIAL_LOGIT
    return torch.log_softmax(x, dim=-1)
