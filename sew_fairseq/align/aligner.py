"""Forced alignment of long recordings with their transcripts: every line (and word) of the text placed on the
recording, the lines that were never spoken left out.

    from sew_fairseq.align import Aligner
    aligner = Aligner.from_checkpoint("ckpt/checkpoint_best.pt")          # backend=, dtype=, chunking as Transcriber
    result = aligner.align("talk.flac", open("talk.txt").read().splitlines())
    for s in result.segments:   # one per non-blank line, in text order
        print(s.line, s.start, s.end, s.score, s.skipped, [(w.word, w.start, w.end) for w in s.words])

What happens:

1. The text is spelled as the model spells it (:mod:`.text`; an unknown character is an error before any audio is
   read).
2. The recording's log-probabilities come from the same engine, reader and chunking as ``sew-transcribe``
   (:class:`sew_fairseq.transcribe.Transcriber`): any format, rate and length, in bounded memory.
3. One Viterbi search over the whole recording and the whole text (:mod:`.viterbi`): lines in order, garbage
   between them for pauses and untranscribed speech, and any line may be skipped.
4. A line the search skipped is ``not_spoken``; a kept line whose score is below ``min_score`` is ``low_score``
   and skipped too (its neighbours keep their times). A skipped line's score is the one it gets when forced into
   the frames between its kept neighbours.

Scores are mean log-posteriors per frame (:mod:`.segments`).
"""
from __future__ import annotations

import math
import time
from typing import List, Optional, Sequence, Union

import numpy as np

from .segments import AlignedWord, Alignment, Segment
from .text import Line, normalize_lines, token_ids
from .viterbi import LETTER_STATE, build_graph, viterbi

#: how sew-align runs a long recording through the network: 12 s chunks handed over in the middle of their 1.6 s
#: overlap, the settings its accuracy was measured with (README, "Aligning"; sew-transcribe's defaults moved to 6 s
#: chunks and the blank hand-over later, chosen on WER)
ALIGN_CHUNK_SECONDS = 12.0
ALIGN_STITCH = "middle"
#: per-frame cost of speech that is not in the text (garbage), in nats: the line/garbage trade-off, chosen from
#: measurements on the demo models (README, "Aligning")
DEFAULT_GARBAGE_PENALTY = 4.0
#: cost of skipping one line
DEFAULT_SKIP_COST = 16.0
#: the search's beam, in nats: states further below the frame's best are dropped (small inputs: no beam)
DEFAULT_BEAM = 64.0
#: kept lines scoring below this (mean log-posterior per frame) are skipped as ``low_score``
DEFAULT_MIN_SCORE = -2.0
#: a line's end takes in a word boundary ``|`` that the model emits at most this many blank frames (0.1 s) after
#: the line's last letter: models trained on fairseq's letter targets often mark the end of an utterance's last
#: word so, where its sound ends (measured on a demo model: segment ends 0.09 s early at the median without it)
END_BOUNDARY_FRAMES = 5


class Aligner:
    """A fine-tuned CTC letter model (through a :class:`~sew_fairseq.transcribe.Transcriber`, which reads, chunks and
    runs the engine) and the search settings (see the module docstring)."""

    def __init__(self, transcriber, *, garbage_penalty: float = DEFAULT_GARBAGE_PENALTY,
                 skip_cost: float = DEFAULT_SKIP_COST, beam: Optional[float] = DEFAULT_BEAM,
                 min_score: Optional[float] = DEFAULT_MIN_SCORE, keep_punctuation: bool = False):
        d = transcriber.dictionary
        if "|" not in d.indices:
            raise ValueError("alignment needs a letter model with a word boundary '|' in its dictionary")
        self.transcriber = transcriber
        self.garbage_penalty, self.skip_cost, self.beam = garbage_penalty, skip_cost, beam
        self.min_score, self.keep_punctuation = min_score, keep_punctuation
        self.blank, self.boundary = d.bos(), d.index("|")

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu", dictionary: Optional[str] = None, *,
                        backend: str = "torch", dtype: Optional[str] = None, onnx_cache: Optional[str] = None,
                        onnx_model: Optional[str] = None, threads: Optional[int] = None, calibration=None,
                        chunk_seconds: float = ALIGN_CHUNK_SECONDS, overlap_seconds: Optional[float] = None,
                        batch_size: Optional[int] = None, stitch: str = ALIGN_STITCH, **kwargs) -> "Aligner":
        """Load a fine-tuned CTC checkpoint as :meth:`Transcriber.from_checkpoint` does (engine, dtype, chunking;
        :data:`ALIGN_CHUNK_SECONDS`, :data:`ALIGN_STITCH`); ``kwargs`` go to the constructor."""
        from ..transcribe import Transcriber

        chunking = {k: v for k, v in (("chunk_seconds", chunk_seconds), ("overlap_seconds", overlap_seconds),
                                      ("batch_size", batch_size)) if v is not None}
        tr = Transcriber.from_checkpoint(path, device, dictionary, backend=backend, dtype=dtype, onnx_cache=onnx_cache,
                                         onnx_model=onnx_model, threads=threads, calibration=calibration,
                                         stitch=stitch, **chunking)
        return cls(tr, **kwargs)

    @property
    def dictionary(self):
        return self.transcriber.dictionary

    @property
    def frame_seconds(self) -> float:
        return self.transcriber.frame_seconds

    def lines(self, text: Sequence[str], source: str = "<text>") -> List[Line]:
        """The non-blank lines of ``text`` as the model spells them (:func:`.text.normalize_lines`)."""
        return normalize_lines(text, self.dictionary.symbols, source, self.keep_punctuation)

    def align(self, audio: Union[str, np.ndarray], lines: Sequence[Union[str, Line]],
              sample_rate: Optional[int] = None, channel: Optional[int] = None, info=None) -> Alignment:
        """Align a file (or a 1-D wave at ``sample_rate``) with ``lines`` (text lines, or :class:`.text.Line`
        objects from :meth:`lines`)."""
        if lines and not isinstance(lines[0], Line):
            lines = self.lines(lines)
        e = self.transcriber.emissions(audio, sample_rate, channel, info)
        start = time.perf_counter()
        segments = self.align_emissions(e.log_probs, lines)
        return Alignment(e.audio, e.duration, segments, e.sample_rate, e.forward_seconds,
                         time.perf_counter() - start)

    # -- the search on emissions -------------------------------------------------------------------------------
    def align_emissions(self, log_probs, lines: Sequence[Line]) -> List[Segment]:
        """The segments of ``lines`` on a recording's log-probabilities [T, V] (frames ``frame_seconds`` apart)."""
        lp = log_probs.numpy() if hasattr(log_probs, "numpy") else np.asarray(log_probs)
        segments = [Segment(line.number, line.text, line.normalized) for line in lines]
        if not lines:
            return segments
        index = self.dictionary.index
        tokens = [token_ids(line, index) for line in lines]
        graph = build_graph(tokens, self.blank)
        path = viterbi(lp, tokens, self.blank, self.boundary, garbage_penalty=self.garbage_penalty,
                       skip_cost=self.skip_cost, beam=self.beam, graph=graph)
        states = path.states
        owner = graph.lines[states]
        # each frame's log-probability of its state's token (garbage frames lie outside every line: never used)
        frame_lp = lp[np.arange(len(states)), np.maximum(graph.tokens[states], 0)]
        # frames of each line: the path visits a line's states in one contiguous run of frames, or not at all
        line_frames = np.flatnonzero(owner >= 0)
        firsts, lasts = {}, {}
        if len(line_frames):
            ids = owner[line_frames]
            cuts = np.flatnonzero(np.diff(ids)) + 1
            for run in np.split(np.arange(len(line_frames)), cuts):
                i = int(ids[run[0]])
                firsts[i], lasts[i] = int(line_frames[run[0]]), int(line_frames[run[-1]])
        fs = self.frame_seconds
        best = lp.argmax(axis=1)
        starts = sorted(firsts.values())
        next_start = dict(zip(starts, starts[1:] + [len(states)]))  # the first frame of the line placed after
        for i, seg in enumerate(segments):
            if i not in firsts:
                seg.skipped = "not_spoken"
                continue
            a, b = firsts[i], lasts[i] + 1
            seg.start, seg.score = a * fs, float(frame_lp[a:b].mean())
            seg.end = self._end_boundary(best, b, next_start[a]) * fs
            seg.words = self._words(lines[i], tokens[i], graph, states[a:b], frame_lp[a:b], a)
            if self.min_score is not None and seg.score < self.min_score:
                seg.skipped = "low_score"
        for i, seg in enumerate(segments):
            if seg.skipped == "not_spoken":
                seg.score = self._forced_score(lp, tokens[i], segments, i)
            if seg.skipped:
                seg.start = seg.end = None
                seg.words = []
        return segments

    def _end_boundary(self, best: np.ndarray, end: int, limit: int) -> int:
        """One past a run of ``|`` (frame argmax) that starts within :data:`END_BOUNDARY_FRAMES` blank frames of
        frame ``end`` and before frame ``limit`` (the next line), else ``end``."""
        t = end
        while t < min(limit, end + END_BOUNDARY_FRAMES) and best[t] == self.blank:
            t += 1
        if t >= limit or best[t] != self.boundary:
            return end
        while t < limit and best[t] == self.boundary:
            t += 1
        return t

    def _words(self, line: Line, tokens: List[int], graph, states: np.ndarray, frame_lp: np.ndarray,
               offset: int) -> List[AlignedWord]:
        """The words of one kept line: ``states`` / ``frame_lp`` are its frames, from frame ``offset``."""
        word_of = []  # the word of each token position (-1: a boundary)
        w = 0
        for token in tokens:
            if token == self.boundary:
                word_of.append(-1)
                w += 1
            else:
                word_of.append(w)
        word_of = np.array(word_of)
        is_letter = graph.kinds[states] == LETTER_STATE
        positions = np.where(is_letter, graph.positions[states], 0)
        frame_word = np.where(is_letter, word_of[positions], -1)
        fs = self.frame_seconds
        out = []
        for k, word in enumerate(line.words):
            frames = np.flatnonzero(frame_word == k)
            a, b = int(frames[0]), int(frames[-1]) + 1
            out.append(AlignedWord(word, (offset + a) * fs, (offset + b) * fs, float(frame_lp[a:b].mean())))
        return out

    def _forced_score(self, lp: np.ndarray, tokens: List[int], segments: List[Segment], i: int) -> Optional[float]:
        """The score of line i forced into the frames between its kept neighbours (None when it does not fit)."""
        fs = self.frame_seconds
        before = [s for s in segments[:i] if s.skipped is None]
        after = [s for s in segments[i + 1:] if s.skipped is None]
        a = int(round(before[-1].end / fs)) if before else 0
        b = int(round(after[0].start / fs)) if after else lp.shape[0]
        if b <= a:
            return None
        graph = build_graph([tokens], self.blank)
        try:
            path = viterbi(lp[a:b], [tokens], self.blank, self.boundary, garbage_penalty=self.garbage_penalty,
                           skip_cost=math.inf, beam=self.beam, graph=graph)
        except ValueError:
            return None
        frames = np.flatnonzero(graph.lines[path.states] == 0)
        states = path.states[frames[0]:frames[-1] + 1]
        t = np.arange(frames[0], frames[-1] + 1)
        return float(lp[a:b][t, graph.tokens[states]].mean())
