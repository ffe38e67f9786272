"""Letter spelling and lexicon files: fairseq's wav2vec letter convention, dependency-free.

This is the single home of the speller: :mod:`sew_fairseq.decoding.lexicon` re-exports it, and the corpus
builders in :mod:`manifests` use it without importing ``sew_fairseq`` (which imports fairseq).

A transcript's ``.ltr`` line spells each word letter by letter and ends each word with the boundary
``|``, as fairseq's ``examples/wav2vec/libri_labels.py`` writes it::

    >>> to_letters("HELLO WORLD")
    'H E L L O | W O R L D |'

A lexicon line is ``WORD<TAB>W O R D |`` (flashlight-text's ``load_words`` reads it).
"""
from typing import Dict, Iterable, List, Mapping, Sequence, Union

from .atomic import atomic_write_text
from .records import PathLike

WORD_BOUNDARY = "|"
# word -> one spelling, or word -> several spellings
Lexicon = Mapping[str, Union[Sequence[str], Sequence[Sequence[str]]]]


def spell(word: str, boundary: str = WORD_BOUNDARY) -> List[str]:
    """``"HELLO"`` -> ``["H", "E", "L", "L", "O", "|"]`` (one letter per character)."""
    return list(word) + [boundary]


def to_letters(sentence: str, boundary: str = WORD_BOUNDARY) -> str:
    """A transcript as an ``.ltr`` line: ``"HELLO WORLD"`` -> ``"H E L L O | W O R L D |"``.

    Runs of whitespace count as one word separator. Use it for ``.ltr`` labels and for the training text
    of a letter-level LM for the lexicon-free decoder.
    """
    return " ".join(" ".join(spell(w, boundary)) for w in sentence.split())


def build_lexicon(words: Iterable[str], boundary: str = WORD_BOUNDARY) -> Dict[str, List[str]]:
    """Spell each distinct word as letters + ``|``, in first-seen order.

    >>> build_lexicon(["HELLO", "WORLD", "HELLO"])
    {'HELLO': ['H', 'E', 'L', 'L', 'O', '|'], 'WORLD': ['W', 'O', 'R', 'L', 'D', '|']}
    """
    lexicon: Dict[str, List[str]] = {}
    for word in words:
        if word and word not in lexicon:
            if any(c.isspace() for c in word):
                raise ValueError(f"build_lexicon: word {word!r} contains whitespace; pass single words")
            lexicon[word] = spell(word, boundary)
    return lexicon


def spellings(lexicon: Lexicon) -> Dict[str, List[List[str]]]:
    """Normalise a lexicon to ``word -> list of spellings`` (accepts one spelling per word too)."""
    out: Dict[str, List[List[str]]] = {}
    for word, value in lexicon.items():
        value = list(value)
        if value and all(isinstance(v, str) for v in value):
            out[word] = [list(value)]
        else:
            out[word] = [list(v) for v in value]
    return out


def lexicon_lines(lexicon: Lexicon) -> List[str]:
    """``WORD<TAB>L E T T E R S |`` lines (one per spelling), without newlines."""
    return [f"{word}\t{' '.join(s)}" for word, spells in spellings(lexicon).items() for s in spells]


def write_lexicon(path: PathLike, lexicon: Lexicon) -> None:
    """Write ``WORD<TAB>L E T T E R S |`` lines (one per spelling), atomically."""

    atomic_write_text(path, lexicon_lines(lexicon))
