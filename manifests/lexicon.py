"""Letters and lexicons: spelling words in fairseq's wav2vec letter convention, lexicon files for CTC beam search,
the LM-vocabulary check, and ``sew-lm`` (dependency-free: the corpus builders use it too).

A transcript's ``.ltr`` line spells each word letter by letter and ends each word with the boundary
``|``, as fairseq's ``examples/wav2vec/libri_labels.py`` writes it::

    >>> to_letters("HELLO WORLD")
    'H E L L O | W O R L D |'

A lexicon maps each word to its spelling in the acoustic model's letters, ending with the word
boundary ``|`` (the same convention as the ``.ltr`` label files)::

    HELLO	H E L L O |
    WORLD	W O R L D |

One word per line, the word, then whitespace, then space-separated letters. A word may appear on
several lines (alternative spellings). flashlight-text's ``load_words`` reads the same format.
Case is kept as given: spell the lexicon in the case of ``dict.ltr.txt`` and of the LM.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Union

from .arpa import read_arpa_vocabulary, write_arpa
from .atomic import atomic_write_text
from .records import PathLike, cli_error

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
    lm_path = os.fspath(lm_path)
    vocab = read_arpa_vocabulary(lm_path)
    words = list(lexicon.keys()) if isinstance(lexicon, Mapping) else list(lexicon)
    words = [w for w in words if w != "<unk>"]
    missing = [w for w in words if w not in vocab]
    return LMVocabularyReport(lm_path, len(words), len(vocab), missing)


# --------------------------------------------------------------------------------------------------- sew-lm

CLI_DESCRIPTION = """sew-lm: lexicons and n-gram LMs for CTC decoding with ``sew-infer`` / ``ctc_lm_wer``.

    sew-lm lexicon --wrd data/train.wrd data/dev-other.wrd -o lexicon.txt        # WORD<TAB>W O R D |
    sew-lm arpa --text data/train.wrd --order 3 -o lm.arpa                       # small word LM (no lmplz)
    sew-lm arpa --text data/train.ltr --order 6 -o letters.arpa                  # letter LM (kenlm-lexfree)
    sew-lm check --lm lm.arpa --lexicon lexicon.txt                              # LM vocabulary vs lexicon

arpa is a small interpolated absolute-discounting estimator meant for small corpora and tests; for real
corpora use KenLM's lmplz (see manifests/arpa.py for how to build it from PyPI's kenlm
source distribution)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sew-lm", description=CLI_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    lex = sub.add_parser("lexicon", help="a letter lexicon from .wrd files or a word list")
    lex.add_argument("--wrd", nargs="*", default=[], help=".wrd files (one transcript per line)")
    lex.add_argument("--words", help="a word list (one word per line)")
    lex.add_argument("-o", "--output", required=True, help="lexicon file to write")
    arpa = sub.add_parser("arpa", help="estimate an ARPA n-gram LM from text lines")
    arpa.add_argument("--text", nargs="+", required=True, help="text files, one sentence per line")
    arpa.add_argument("--order", type=int, default=3, help="n-gram order, 2-6 (default 3)")
    arpa.add_argument("-o", "--output", required=True, help="ARPA file to write")
    check = sub.add_parser("check", help="report lexicon words the LM does not know")
    check.add_argument("--lm", required=True, help="ARPA file")
    check.add_argument("--lexicon", required=True, help="lexicon file")
    check.add_argument("--strict", action="store_true", help="exit 1 when words are missing")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``sew-lm`` (the light layer: it starts without torch or fairseq)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "lexicon":
            words = words_from_wrd_files(args.wrd) if args.wrd else []
            if args.words:
                with open(args.words, encoding="utf-8") as f:
                    words += [w for line in f for w in line.split()]
            if not words:
                return cli_error("sew-lm", "no words: give --wrd files or --words", 2)
            lexicon = build_lexicon(words)
            write_lexicon(args.output, lexicon)
            print(f"{args.output}: {len(lexicon)} words")
        elif args.command == "arpa":
            lines = []
            for path in args.text:
                with open(path, encoding="utf-8") as f:
                    lines += [line.strip() for line in f if line.strip()]
            write_arpa(args.output, lines, order=args.order)
            print(f"{args.output}: order {args.order}, {len(lines)} sentences")
        else:
            report = check_lm_vocabulary(args.lm, read_lexicon(args.lexicon))
            print(report.summary())
            return 1 if args.strict and not report.ok else 0
    except (OSError, ValueError) as e:
        return cli_error("sew-lm", e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
