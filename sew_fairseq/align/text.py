"""A transcript to align, as the model spells it: one segment a line, case folded to the model's letters,
punctuation dropped, and every other character the model has no label for reported before any audio is read.

Rules, in order, for each line:

1. typographic quotes become ASCII ones (``’`` -> ``'``), and the line is folded to the case of the model's
   letters (upper case for every letter model here);
2. a character the model has a label for is kept; whitespace separates words;
3. punctuation (Unicode category P: ``. , ; : ! ? " ( ) ...``) is dropped, except that dashes and slashes separate
   words (``well-known`` -> ``WELL KNOWN``); with ``keep_punctuation`` it is kept like any other character, so it
   must then have a label;
4. anything else (digits, symbols, letters of another alphabet) is an error naming the file, the line number and the
   characters: spell numbers out (``42`` -> ``forty two``) as the model was trained to hear them.

A line with nothing left (blank, or punctuation only) is not a segment.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Iterable, List, Sequence

from manifests.common import ascii_quotes
from manifests.lexicon import to_letters

WORD_SEPARATORS = frozenset("/\\")


class TextError(ValueError):
    """A transcript the model cannot spell: names the file, the line and the characters."""


@dataclass
class Line:
    """A text line to align: ``number`` (1-based, in its file), ``text`` (as written), ``words`` (as the model spells
    them)."""

    number: int
    text: str
    words: List[str]

    @property
    def normalized(self) -> str:
        return " ".join(self.words)


def _fold(symbols: Iterable[str]):
    letters = [c for s in symbols if len(s) == 1 for c in s if c.isalpha()]
    if letters and all(c.isupper() for c in letters):
        return str.upper
    if letters and all(c.islower() for c in letters):
        return str.lower
    return lambda s: s


def normalize_lines(lines: Sequence[str], symbols: Iterable[str], source: str = "<text>",
                    keep_punctuation: bool = False, boundary: str = "|") -> List[Line]:
    """The non-blank ``lines`` as :class:`Line` objects (see the module docstring). ``symbols``: the model's output
    labels; ``source`` names the text in errors. Raises :class:`TextError` at the first line with a character the
    model cannot spell."""
    symbols = set(symbols)
    fold = _fold(symbols)
    out = []
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        chars: List[str] = []
        bad: List[str] = []
        for c in fold(ascii_quotes(unicodedata.normalize("NFC", text))):
            if c.isspace():
                chars.append(" ")
            elif c in symbols and c != boundary:
                chars.append(c)
            elif c in WORD_SEPARATORS or unicodedata.category(c) == "Pd" and not keep_punctuation:
                chars.append(" ")
            elif unicodedata.category(c).startswith("P") and not keep_punctuation:
                pass  # dropped
            elif c not in bad:
                bad.append(c)
        if bad:
            shown = " ".join(repr(c) for c in bad)
            raise TextError(f"{source}:{number}: the model has no label for {shown} in {text!r}"
                            + ("; spell numbers out" if any(c.isdigit() for c in bad) else ""))
        words = "".join(chars).split()
        if words:
            out.append(Line(number, text, words))
    return out


def read_text(path: str, symbols: Iterable[str], keep_punctuation: bool = False) -> List[Line]:
    """:func:`normalize_lines` of a UTF-8 text file, one segment a line."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise TextError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise TextError(f"cannot read {path}: {e.strerror}") from None
    return normalize_lines(raw, symbols, path, keep_punctuation)


def token_ids(line: Line, index, boundary: str = "|") -> List[int]:
    """The token ids of a line: its letters with ``boundary`` (``|``) between words, as fairseq's ``.ltr`` targets
    spell an utterance (:func:`manifests.lexicon.to_letters`) without the final ``|``: models place that one after
    the last word (the demo models trained here) or not at all (another emitted ``|`` before each word instead), so
    the search leaves it to the garbage state and :class:`~.aligner.Aligner` takes it into the line's end when it
    follows the last letter. ``index``: symbol -> id."""
    return [index(symbol) for symbol in to_letters(line.normalized, boundary).split()[:-1]]
