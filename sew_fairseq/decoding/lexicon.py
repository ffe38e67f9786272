"""Letter lexicons for CTC beam search, and the LM-vocabulary check.

A lexicon maps each word to its spelling in the acoustic model's letters, ending with the word
boundary ``|`` (fairseq's wav2vec letter convention, the same as its ``.ltr`` label files)::

    HELLO	H E L L O |
    WORLD	W O R L D |

One word per line, the word, then whitespace, then space-separated letters. A word may appear on
several lines (alternative spellings). flashlight-text's ``load_words`` reads the same format.
Case is kept as given: spell the lexicon in the case of ``dict.ltr.txt`` and of the LM.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Union

# The speller and the lexicon writer live in the dependency-free ``manifests.letters`` (the corpus
# builders use them without importing fairseq); re-exported here.
from manifests.letters import (  # noqa: E402,F401
    WORD_BOUNDARY,
    Lexicon,
    PathLike,
    build_lexicon,
    lexicon_lines,
    spell,
    spellings,
    to_letters,
    write_lexicon,
)


def read_lexicon(path: PathLike, alphabet: Optional[Iterable[str]] = None) -> Dict[str, List[List[str]]]:
    """Read a lexicon file into ``word -> list of spellings`` (file order kept).

    ``alphabet``: the acoustic model's symbols; a letter outside it raises ValueError naming the file,
    line, word and letter. Blank lines are skipped; a word without a spelling is an error.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"lexicon file not found: {path}")
    allowed = set(alphabet) if alphabet is not None else None
    lexicon: Dict[str, List[List[str]]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            word, letters = fields[0], fields[1:]
            if not letters:
                raise ValueError(f"{path}:{lineno}: word {word!r} has no spelling; expected "
                                 f"'WORD L E T T E R S |'")
            if allowed is not None:
                check_spelling(word, letters, allowed, where=f"{path}:{lineno}")
            lexicon.setdefault(word, []).append(letters)
    if not lexicon:
        raise ValueError(f"lexicon file {path} has no entries")
    return lexicon


def check_spelling(word: str, letters: Sequence[str], alphabet: Iterable[str], where: str) -> None:
    """Raise ValueError if a letter of ``word``'s spelling is outside ``alphabet``."""
    allowed = alphabet if isinstance(alphabet, (set, frozenset, dict)) else set(alphabet)
    for letter in letters:
        if letter not in allowed:
            raise ValueError(f"{where}: word {word!r} is spelled with {letter!r}, which is not in the "
                             f"dictionary (dict.ltr.txt); fix the lexicon or the letter dictionary")


def words_from_wrd_files(paths: Iterable[PathLike]) -> List[str]:
    """Distinct words of ``.wrd`` files (one transcript per line), in first-seen order."""
    seen: Dict[str, None] = {}
    for path in paths:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ValueError(f"transcript file not found: {path}")
        with open(path, encoding="utf-8") as f:
            for line in f:
                for w in line.split():
                    seen.setdefault(w, None)
    return list(seen)


class LMVocabularyReport(NamedTuple):
    """Lexicon words missing from an LM's vocabulary (which the LM would score as ``<unk>``)."""

    lm_path: str
    lexicon_words: int
    lm_words: int
    missing: List[str]

    @property
    def ok(self) -> bool:
        return not self.missing

    def summary(self, examples: int = 5) -> str:
        if self.ok:
            return f"all {self.lexicon_words} lexicon words are in the LM {self.lm_path}"
        shown = ", ".join(repr(w) for w in self.missing[:examples])
        more = ", ..." if len(self.missing) > examples else ""
        return (f"{len(self.missing)} of {self.lexicon_words} lexicon words are not in the vocabulary "
                f"of the LM {self.lm_path} ({self.lm_words} words), e.g. {shown}{more}; the LM scores "
                f"them as <unk>. Check the case (lexicon vs LM text) or rebuild the LM over the lexicon")


def check_lm_vocabulary(lm_path: PathLike, lexicon: Union[Lexicon, Iterable[str]]) -> LMVocabularyReport:
    """Compare lexicon words (or any words) with the 1-gram section of an ARPA file."""
    from .arpa import read_arpa_vocabulary  # local: arpa.py does not need the lexicon

    lm_path = os.fspath(lm_path)
    vocab = read_arpa_vocabulary(lm_path)
    words = list(lexicon.keys()) if isinstance(lexicon, Mapping) else list(lexicon)
    words = [w for w in words if w != "<unk>"]
    missing = [w for w in words if w not in vocab]
    return LMVocabularyReport(lm_path, len(words), len(vocab), missing)
