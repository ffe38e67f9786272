"""What an INPUT argument names: audio files, folders searched recursively, ``@LIST`` files, and the output stem
each file maps to. Read by ``sew-transcribe`` (:mod:`.files`), ``sew-align``'s pairs and ``--calibration``
(:mod:`.calibration`); no model involved.

    resolve_inputs(["talks/", "@more.txt", "one.flac"])   # [InputFile(path, stem), ...]
"""
from __future__ import annotations

import os
from typing import List, NamedTuple, Sequence, Tuple


class InputFile(NamedTuple):
    """An input recording and the output stem it maps to (its path relative to the folder it was found in,
    without the extension; a file given by itself: its base name)."""

    path: str
    stem: str


class InputError(ValueError):
    """An INPUT argument that names nothing to transcribe."""


def resolve_inputs(inputs: Sequence[str]) -> List[InputFile]:
    """Audio files of ``inputs``: files, directories (searched recursively, see
    :data:`manifests.audio.AUDIO_SUFFIXES`) and ``@LIST`` files (one path per line; blank lines and ``#`` comments
    ignored; relative paths are relative to the list's folder). Two inputs that would write the same outputs keep
    their extension in the stem (``a.wav`` -> ``a.wav.txt``); if they still collide, :class:`InputError`."""
    from manifests.audio import find_audio_files

    found: List[Tuple[str, str]] = []  # (path, relative name)
    for item in inputs:
        if item.startswith("@"):
            found.extend((path, os.path.basename(path)) for _, (path,) in list_entries(item[1:]))
        elif os.path.isdir(item):
            files = find_audio_files(item)
            if not files:
                raise InputError(f"no audio files in the directory {item}")
            found.extend((p, os.path.relpath(p, item)) for p in files)
        else:
            found.append((item, os.path.basename(item)))  # a bad file is reported when it is transcribed
    return [InputFile(path, stem) for (path, _), stem in zip(found, output_stems(found))]


def list_entries(listing: str, fields: int = 1, what: str = "PATH") -> List[Tuple[int, List[str]]]:
    """The entries of a list file: ``(line number, paths)`` of each line that is not blank or a ``#`` comment, with
    ``fields`` tab-separated paths (``what`` names them in the error), each relative to the list's folder unless
    absolute. Raises :class:`InputError` for an unreadable list or a line with another number of fields."""
    try:
        with open(listing, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InputError(f"cannot read the list {listing}: {e.strerror}") from None
    base = os.path.dirname(os.path.abspath(listing))
    out = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        paths = [p.strip() for p in line.split("\t")] if fields > 1 else [line]
        if len(paths) != fields:
            raise InputError(f"{listing}:{n}: expected {what}, found {len(paths)} field(s)")
        out.append((n, [p if os.path.isabs(p) else os.path.join(base, p) for p in paths]))
    return out


def output_stems(found: Sequence[Tuple[str, str]]) -> List[str]:
    """The output stem of each ``(path, relative name)``: the name without its extension; two inputs that would
    write the same outputs keep their extension in the stem (``a.wav`` -> ``a.wav.txt``); if they still collide,
    :class:`InputError`."""
    stems = [os.path.splitext(rel)[0] for _, rel in found]
    counts = {s: stems.count(s) for s in stems}
    out, seen = [], {}
    for (path, rel), stem in zip(found, stems):
        stem = rel if counts[stem] > 1 else stem
        if stem in seen:
            raise InputError(f"{seen[stem]} and {path} would both write {stem}.*: give their common folder as the "
                             f"input instead, so that the outputs mirror their paths")
        seen[stem] = path
        out.append(stem)
    return out
