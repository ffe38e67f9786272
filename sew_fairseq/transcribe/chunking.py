"""Long recordings in chunks: cutting a stream of samples into overlapping chunks, and stitching the chunks'
log-probabilities back into one sequence with every frame taken from a chunk's interior (what
:class:`sew_fairseq.transcribe.Transcriber` does with a long recording; its docstring gives the rules).

Shapes: samples [l], log-probabilities [F_i, V] per chunk, [T, V] stitched.
"""
from typing import Iterable, Iterator, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch


class Chunk(NamedTuple):
    """``samples`` [l] starting at sample ``start`` of the (resampled) recording."""

    start: int
    samples: np.ndarray


def chunk_stream(blocks: Iterable[np.ndarray], chunk: int, overlap: int, align: int) -> Iterator[Chunk]:
    """Cut a stream of sample blocks into overlapping chunks (see the module docstring), holding at most one chunk
    plus one block in memory. ``chunk``, ``overlap``, ``align``: in samples; ``chunk - 2 * overlap`` must be a
    positive multiple of ``align``. A stream no longer than ``chunk`` gives one chunk, all of it."""
    step = chunk - 2 * overlap
    if step <= 0 or step % align:
        raise ValueError(f"chunk {chunk} - 2 x overlap {overlap} samples must be a positive multiple of {align}")
    buf = np.zeros(0, np.float32)
    buf_start = 0  # sample index of buf[0]
    next_start = 0
    emitted: Optional[int] = None  # start of the last chunk given out
    for block in blocks:
        buf = np.concatenate([buf, block]) if len(buf) else block
        # a regular chunk goes out once audio exists beyond its end (else it may be the last one)
        while buf_start + len(buf) > next_start + chunk:
            yield Chunk(next_start, buf[next_start - buf_start:next_start - buf_start + chunk].copy())
            emitted = next_start
            next_start += step
            buf = buf[emitted - buf_start:]  # the last chunk may start inside the one just given out
            buf_start = emitted
    total = buf_start + len(buf)
    if total == 0:
        return
    if emitted is None:
        yield Chunk(0, buf)
        return
    last = max(0, -(-(total - chunk) // align) * align)  # the aligned start whose chunk reaches the end
    yield Chunk(last, buf[last - buf_start:])


#: where two overlapping chunks hand over (:class:`Stitcher`): ``middle`` of the overlap, or the middle of the
#: longest run of frames both chunks read as blank in its central half (``blank``; the middle when there is none)
STITCH_RULES = ("middle", "blank")


def check_stitch_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`STITCH_RULES`, else ValueError."""
    if rule not in STITCH_RULES:
        raise ValueError(f"unknown stitching rule {rule!r}: expected one of {', '.join(STITCH_RULES)}")
    return rule


class Stitcher:
    """Joins per-chunk log-probabilities ``(first frame, [F_i, V])``, given in order, into one [T, V].

    Where two chunks overlap, frames before the hand-over frame come from the earlier chunk, the rest from the later
    one. ``rule="middle"``: the hand-over is the middle of the overlap, so every frame is the one farthest from both
    cut edges (a tie goes to the earlier chunk). ``rule="blank"``: the hand-over is the middle of the longest run of
    frames that both chunks decode as ``blank`` (their argmax) within the central half of the overlap, a pause both
    chunks hear, so that no word is put together from two chunks' pieces; with no such frame, the middle. Every
    frame stays at least a quarter of the overlap away from a cut edge.

    It holds one pending chunk and writes the rest into one buffer that doubles as it fills: many small long-lived
    tensors between the forwards' large transient ones would fragment the C heap, and the process would grow with
    the recording's length."""

    def __init__(self, rule: str = "middle", blank: int = 0) -> None:
        self.rule, self.blank = check_stitch_rule(rule), blank
        self._out: Optional[torch.Tensor] = None
        self._frames = 0
        self._pending: Optional[Tuple[int, torch.Tensor]] = None

    def add(self, first: int, log_probs: torch.Tensor) -> None:
        if self._pending is not None:
            start, lp = self._pending
            end = start + lp.shape[0]
            if first > end:
                raise ValueError(f"chunks do not overlap: frames {end}..{first} are missing")
            self._append(lp[self._frames - start:self._hand_over(start, lp, first, log_probs) - start])
        self._pending = (first, log_probs)

    def _hand_over(self, start: int, earlier: torch.Tensor, first: int, later: torch.Tensor) -> int:
        """The first frame taken from ``later`` (absolute index)."""
        end = min(start + earlier.shape[0], first + later.shape[0])
        middle = (first + end + 1) // 2
        if self.rule == "middle" or end - first < 4:
            return middle
        lo, hi = first + (end - first) // 4, end - (end - first) // 4  # the central half of the overlap
        both = ((earlier[lo - start:hi - start].argmax(-1) == self.blank)
                & (later[lo - first:hi - first].argmax(-1) == self.blank)).tolist()
        best, best_key = middle, None
        t = 0
        while t < len(both):
            if not both[t]:
                t += 1
                continue
            run_end = t
            while run_end < len(both) and both[run_end]:
                run_end += 1
            centre = lo + (t + run_end) // 2
            key = (run_end - t, -abs(centre - middle))  # the longest run, then the one nearest the middle
            if best_key is None or key > best_key:
                best, best_key = centre, key
            t = run_end
        return max(best, self._frames)

    def finish(self) -> torch.Tensor:
        """[T, V]: every frame given, once."""
        if self._pending is None:
            raise ValueError("no chunks")
        start, lp = self._pending
        self._append(lp[self._frames - start:])
        self._pending = None
        return self._out[:self._frames]

    def _append(self, x: torch.Tensor) -> None:
        need = self._frames + x.shape[0]
        if self._out is None or need > self._out.shape[0]:
            grown = torch.empty(max(need, 2 * (0 if self._out is None else self._out.shape[0]), 1024), x.shape[1],
                                dtype=x.dtype)
            if self._out is not None:
                grown[:self._frames] = self._out[:self._frames]
            self._out = grown
        self._out[self._frames:need] = x
        self._frames = need


def stitch(pieces: Sequence[Tuple[int, torch.Tensor]], rule: str = "middle", blank: int = 0) -> torch.Tensor:
    """:class:`Stitcher` over a list of ``(first frame, [F_i, V])``."""
    stitcher = Stitcher(rule, blank)
    for first, lp in pieces:
        stitcher.add(first, lp)
    return stitcher.finish()
