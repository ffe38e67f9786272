"""``sew-align``: forced alignment of long recordings with their transcripts, one text line a segment.

* :mod:`.text`: the transcript as the model spells it (errors name the file, line and characters);
* :mod:`.viterbi`: the search (one CTC Viterbi over the whole recording and text, with garbage and line skips);
* :mod:`.aligner`: :class:`Aligner`, one recording at a time: read, emissions, search, segments and words;
* :mod:`.segments`: the results (:class:`Segment`, :class:`AlignedWord`, :class:`Alignment`).

    from sew_fairseq.align import Aligner
    result = Aligner.from_checkpoint("ckpt/checkpoint_best.pt").align("talk.flac", open("talk.txt").readlines())
"""
from .aligner import DEFAULT_GARBAGE_PENALTY, DEFAULT_MIN_SCORE, DEFAULT_SKIP_COST, Aligner
from .segments import AlignedWord, Alignment, Segment
from .text import Line, TextError

__all__ = ["DEFAULT_GARBAGE_PENALTY", "DEFAULT_MIN_SCORE", "DEFAULT_SKIP_COST", "AlignedWord", "Aligner", "Alignment",
           "Line", "Segment", "TextError"]
