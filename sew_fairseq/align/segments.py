"""What an alignment gives: each text line placed on the recording (:class:`Segment`), with its words
(:class:`AlignedWord`), or left out with a reason; one recording's result is an :class:`Alignment`.

Times are seconds of the original recording (frames 20 ms apart; no padding). A line's ``start`` is its first
letter frame, its ``end`` one past its last letter frame, or one past the word boundary ``|`` that the model emits
right after it (within 0.1 s), where models trained on fairseq's letter targets mark the end of an utterance's last
word (its letter frames come earlier: on a demo model, segment ends 0.09 s early at the median without it,
0.06 s with it). A word spans its first to one past its last letter frame, as
:mod:`sew_fairseq.decoding.timestamps` counts word times in transcripts. ``score`` is the mean log-posterior per
frame of the path from the first to the last letter frame (blank frames inside included): 0 is a perfect match,
and a line's and a word's scores are comparable across lines and recordings, so one threshold means the same
everywhere (``--min-score``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional


def _rounded(x: Optional[float], digits: int) -> Optional[float]:
    return None if x is None or not math.isfinite(x) else round(x, digits)


@dataclass
class AlignedWord:
    """A word of a line: its letters as the model spells them, ``start`` / ``end`` in seconds, ``score``."""

    word: str
    start: float
    end: float
    score: float

    @property
    def confidence(self) -> float:
        """``exp(score)``, the geometric mean posterior of the word's frames, in [0, 1] (the CTM column)."""
        return math.exp(self.score)

    def to_dict(self) -> dict:
        return {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3),
                "score": _rounded(self.score, 4)}


@dataclass
class Segment:
    """One text line (``line``: 1-based line number in its text file; ``text``: as written there; ``words``: as the
    model spells them, i.e. the normalised text). A kept line has ``start``, ``end``, ``score`` and ``words``; a
    skipped one has ``skipped`` (the reason, e.g. ``not_spoken``, ``low_score``), no times, no word times, and the
    score it gets when forced into its place between its kept neighbours (None when it does not fit there)."""

    line: int
    text: str
    normalized: str
    start: Optional[float] = None
    end: Optional[float] = None
    score: Optional[float] = None
    words: List[AlignedWord] = field(default_factory=list)
    skipped: Optional[str] = None

    @property
    def kept(self) -> bool:
        return self.skipped is None

    def to_dict(self) -> dict:
        d = {"line": self.line, "text": self.text}
        if self.kept:
            d.update(start=round(self.start, 3), end=round(self.end, 3), score=_rounded(self.score, 4),
                     words=[w.to_dict() for w in self.words])
        else:
            d.update(score=_rounded(self.score, 4), skipped=self.skipped)
        return d


@dataclass
class Alignment:
    """One recording aligned with its text: ``segments`` one per non-blank text line, in text order."""

    audio: Optional[str]  # its path (None for a wave given in memory)
    duration: float  # seconds
    segments: List[Segment]
    sample_rate: Optional[int] = None  # the recording's own rate
    forward_seconds: float = 0.0
    align_seconds: float = 0.0

    @property
    def kept(self) -> List[Segment]:
        return [s for s in self.segments if s.kept]

    def to_dict(self) -> dict:
        return {"audio": self.audio, "duration": round(self.duration, 6),
                "segments": [s.to_dict() for s in self.segments],
                "forward_seconds": round(self.forward_seconds, 4), "align_seconds": round(self.align_seconds, 4)}


def alignment_from_dict(d: dict) -> Alignment:
    """An :class:`Alignment` read back from its ``.json`` (``sew-align`` reuses the outputs of a file already done).
    A segment's ``normalized`` text is its words (a skipped segment's: none, it was not placed)."""
    segments = []
    for s in d["segments"]:
        words = [AlignedWord(w["word"], w["start"], w["end"], w["score"] if w["score"] is not None else -math.inf)
                 for w in s.get("words", [])]
        segments.append(Segment(s["line"], s["text"], " ".join(w.word for w in words), s.get("start"),
                                s.get("end"), s.get("score"), words, s.get("skipped")))
    return Alignment(d["audio"], d["duration"], segments, None, d.get("forward_seconds", 0.0),
                     d.get("align_seconds", 0.0))
