"""Files of one recording's alignment (:class:`.segments.Alignment`): JSON, NIST CTM, Praat TextGrid, SubRip (SRT).

Every file is written atomically; times are seconds of the original recording.

``<stem>.json``
    :meth:`Alignment.to_dict`: ``audio``, ``duration``, ``segments`` (one per text line, in text order: ``line``,
    ``text``, and ``start``, ``end``, ``score``, ``words`` [``word``, ``start``, ``end``, ``score``] for a kept line;
    ``score`` and ``skipped`` (the reason) for a skipped one).
``<stem>.ctm``
    The words of the kept lines, one a line, as ``sew-transcribe`` writes them
    (:func:`sew_fairseq.transcribe.outputs.ctm_lines`)::

        <recording id> 1 <start> <duration> <word> <confidence = exp(score)>
        talk_1 1 12.340 0.280 HELLO 0.9700

``<stem>.TextGrid``
    Praat's long text format (``ooTextFile``), two interval tiers over ``0 .. duration``: ``segments`` (each kept
    line's text as written) and ``words`` (the words as the model spells them); gaps are intervals with empty
    text, so each tier's intervals are contiguous and do not overlap. Praat, praatio and the Montreal Forced
    Aligner's tools read it. A double quote in a text is doubled, as Praat writes it::

        File type = "ooTextFile"
        Object class = "TextGrid"

        xmin = 0
        xmax = 12.5
        tiers? <exists>
        size = 2
        item []:
            item [1]:
                class = "IntervalTier"
                name = "segments"
                xmin = 0
                xmax = 12.5
                intervals: size = 3
                intervals [1]:
                    xmin = 0
                    xmax = 1.24
                    text = ""
                ...

``<stem>.srt``
    One cue per kept line: its start and end, its text as written.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, List, Optional, Sequence, Tuple

from manifests.atomic import atomic_open
from manifests.records import PathLike

from ..transcribe.outputs import ctm_lines, srt_cues
from .segments import Alignment

FORMATS = ("json", "ctm", "TextGrid", "srt")
#: TextGrid times are written with this many decimals (1 us; frames are 20 ms apart)
TEXTGRID_DECIMALS = 6


def _seconds(x: float) -> str:
    """A TextGrid time: at most :data:`TEXTGRID_DECIMALS` decimals, no trailing zeros (``0``, ``1.24``)."""
    text = f"{x:.{TEXTGRID_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def tier_intervals(spans: Iterable[Tuple[float, float, str]], duration: float) -> List[Tuple[float, float, str]]:
    """``spans`` (start, end, text) as the intervals of a Praat interval tier over ``[0, duration]``: in time order,
    clipped to the recording and to the end of the span before (a span left empty is dropped), the gaps filled
    with empty-text intervals, so that each interval starts where the one before ends."""
    out: List[Tuple[float, float, str]] = []
    t = 0.0
    for start, end, text in sorted(spans, key=lambda s: (s[0], s[1])):
        start, end = max(start, t), min(end, duration)
        if end <= start:
            continue
        if start > t:
            out.append((t, start, ""))
        out.append((start, end, text))
        t = end
    if t < duration or not out:
        out.append((t, duration, ""))
    return out


def textgrid_text(alignment: Alignment) -> str:
    """The alignment as a Praat TextGrid in the long text format (see the module docstring)."""
    kept = alignment.kept
    tiers = [("segments", [(s.start, s.end, s.text) for s in kept]),
             ("words", [(w.start, w.end, w.word) for s in kept for w in s.words])]
    xmax = _seconds(alignment.duration)
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax}",
             "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for n, (name, spans) in enumerate(tiers, 1):
        intervals = tier_intervals(spans, alignment.duration)
        lines += [f"    item [{n}]:", '        class = "IntervalTier"', f"        name = {_quoted(name)}",
                  "        xmin = 0", f"        xmax = {xmax}", f"        intervals: size = {len(intervals)}"]
        for i, (start, end, text) in enumerate(intervals, 1):
            lines += [f"        intervals [{i}]:", f"            xmin = {_seconds(start)}",
                      f"            xmax = {_seconds(end)}", f"            text = {_quoted(text)}"]
    return "\n".join(lines) + "\n"


def write_alignment(alignment: Alignment, stem: PathLike, formats: Sequence[str] = FORMATS,
                    recording: Optional[str] = None) -> List[str]:
    """Write ``<stem>.<format>`` for each of ``formats`` (see :data:`FORMATS` and the module docstring); returns the
    paths written. ``recording``: the CTM's recording id (default: the base name of ``stem``)."""
    stem = os.fspath(stem)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown alignment format(s) {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(FORMATS)}")
    written = []
    for fmt in formats:
        path = f"{stem}.{fmt}"
        with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
            if fmt == "json":
                json.dump(alignment.to_dict(), f, indent=1, ensure_ascii=False)
                f.write("\n")
            elif fmt == "ctm":
                words = [w for s in alignment.kept for w in s.words]
                f.writelines(line + "\n" for line in ctm_lines(recording or os.path.basename(stem), words))
            elif fmt == "TextGrid":
                f.write(textgrid_text(alignment))
            else:
                f.write(srt_cues((s.start, s.end, s.text) for s in alignment.kept))
        written.append(path)
    return written
