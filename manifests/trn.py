"""NIST sclite ``trn`` files and a per-utterance TSV report.

A trn line is the transcript followed by the utterance id in parentheses::

    HELLO WORLD (utt-001)

Score with ``sclite -r ref.trn trn -h hyp.trn trn -i rm -o all``. Text is written as given (case
kept; whitespace runs collapsed to single spaces); ids are sanitised by :func:`sanitize_utt_id`.
"""
from __future__ import annotations

import os
import re
from typing import Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from .atomic import atomic_open
from .records import PathLike
from .error_rates import phone_errors, word_errors

Entries = Union[Mapping[str, str], Iterable[Tuple[str, str]]]

_BAD_ID = re.compile(r"[\s()]+")
_TRN_LINE = re.compile(r"^(.*?)\s*\(([^()\s]+)\)\s*$")


def sanitize_utt_id(utt_id: str) -> str:
    """Replace whitespace and parentheses (which would break the trn id) with ``_``."""
    clean = _BAD_ID.sub("_", str(utt_id)).strip("_")
    if not clean:
        raise ValueError(f"utterance id {utt_id!r} is empty after removing whitespace and parentheses")
    return clean


def _items(entries: Entries) -> List[Tuple[str, str]]:
    return list(entries.items()) if isinstance(entries, Mapping) else list(entries)


def format_trn_line(utt_id: str, text: str) -> str:
    """``"HELLO WORLD (utt-001)"``; an empty text gives ``"(utt-001)"``."""
    text = " ".join(text.split())
    uid = sanitize_utt_id(utt_id)
    return f"{text} ({uid})" if text else f"({uid})"


def write_trn(path: PathLike, entries: Entries) -> None:
    """Write ``(utt_id, text)`` pairs (or a mapping) as trn lines, in the given order.

    Two ids that sanitise to the same string raise ValueError (sclite would merge them).
    """
    seen = {}
    lines = []
    for utt_id, text in _items(entries):
        uid = sanitize_utt_id(utt_id)
        if uid in seen:
            raise ValueError(f"utterance ids {seen[uid]!r} and {utt_id!r} both become {uid!r} in the trn file")
        seen[uid] = utt_id
        lines.append(format_trn_line(uid, text))
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def read_trn(path: PathLike) -> List[Tuple[str, str]]:
    """Read trn lines back as ``(utt_id, text)`` pairs (errors name the file and line)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"trn file not found: {path}")
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            m = _TRN_LINE.match(line.rstrip("\n"))
            if m is None:
                raise ValueError(f"{path}:{lineno}: expected 'TEXT (utt_id)', got {line.rstrip()!r}")
            out.append((m.group(2), m.group(1)))
    return out


class UtteranceResult(NamedTuple):
    """One decoded utterance for the per-utterance report."""

    utt_id: str
    ref: str
    hyp: str
    exit_layer: Optional[int] = None  # early-exit models: the layer whose branch answered


def write_utterance_tsv(path: PathLike, results: Sequence[UtteranceResult], unit: str = "word",
                        ignore: Iterable[str] = ()) -> None:
    """A tab-separated report: ``id ref hyp word_errors ref_words`` (+ ``exit_layer`` if any result has one).

    ``unit="phone"``: the columns are ``phone_errors ref_phones``, counted without the ``ignore`` symbols (as
    :func:`~manifests.error_rates.per`; ``sew-infer --labels phn`` passes ``("sil",)``). Tabs and newlines
    inside texts become spaces.
    """
    if unit not in ("word", "phone"):
        raise ValueError(f"unit must be 'word' or 'phone', not {unit!r}")
    ignore = tuple(ignore)
    header = ("id", "ref", "hyp", f"{unit}_errors", f"ref_{unit}s")
    with_exit = any(r.exit_layer is not None for r in results)
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(header + (("exit_layer",) if with_exit else ())) + "\n")
        for r in results:
            err = word_errors(r.ref, r.hyp) if unit == "word" else phone_errors(r.ref, r.hyp, ignore)
            row = [sanitize_utt_id(r.utt_id), " ".join(r.ref.split()), " ".join(r.hyp.split()),
                   str(err.errors), str(err.ref_len)]
            if with_exit:
                row.append("" if r.exit_layer is None else str(r.exit_layer))
            f.write("\t".join(row) + "\n")
