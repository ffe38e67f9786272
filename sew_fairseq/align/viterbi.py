"""CTC forced alignment of a whole text with a whole recording: one Viterbi search over every frame and every line,
in memory that does not grow with the recording.

The search graph (a CTC topology over the text, with room for what real data holds):

    G_0  line_1  G_1  line_2  G_2 ...  line_N  G_N

* ``line_i`` is the usual CTC chain of its tokens ``y_1 .. y_n`` (letters, ``|`` between words) with a blank
  between two tokens: ``y_1 b y_2 b ... b y_n`` (2n - 1 states). A token may repeat over frames, the blank between
  two different tokens may be skipped, and a line is entered only at ``y_1`` and left only after ``y_n``, so its
  first and last frames are letters.
* ``G_i`` is a garbage state between two lines (and before the first, after the last): it stays on any number of
  frames and scores each frame ``max(log p(blank), log p(|), max_v log p(v) - garbage_penalty)``: a pause costs
  nothing, speech that is not in the text costs ``garbage_penalty`` per frame instead of stretching a neighbouring
  line over it.
* A line can be skipped as a whole: ``G_{i-1} -> G_i`` within one frame, at ``skip_cost``; so a line that is not in
  the recording is left out and does not move its neighbours.

The path may start in ``G_0`` or at ``line_1``'s first token and ends in ``G_N`` or at ``line_N``'s last token.
The score of a path is the sum of its frames' log-probabilities (garbage frames as above) minus ``skip_cost`` per
skipped line; :func:`viterbi` returns the best path.

Exactness and memory. With ``beam=None`` every state is scored at every frame: the exact best path (the tests check
it against a plain full-table implementation). With a beam, only states within ``beam`` of the frame's best score
are kept (a band of the graph that moves along the text), and the back-pointers are not kept for the whole
recording: every ``commit_every`` frames the surviving paths are traced back to the frame where they all meet, and
everything before it is final (partial traceback: a prefix shared by every survivor is a prefix of the best path).
Memory is then that of the band times the frames since the survivors last met, whatever the recording's length; a
band that has not met for ``max_lag`` frames is cut at the best state's path (not exact, logged; it does not happen
on speech with a beam as wide as the default).

Shapes: ``log_probs`` [T, V] (float32 or float64; log-softmax of the emissions), lines of token ids, path [T].
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

GARBAGE = -1  # the token of a garbage state in :attr:`Graph.tokens`
BLANK_STATE, LETTER_STATE, GARBAGE_STATE = 0, 1, 2
#: inputs with at most this many frames x states are searched exactly whatever the beam (16 MB of back-pointers)
FULL_TABLE_CELLS = 4_000_000


@dataclass
class Graph:
    """The states of the search graph (see the module docstring), in order.

    ``tokens[s]``: the dictionary index state ``s`` emits (:data:`GARBAGE` for a garbage state); ``kinds[s]``: blank,
    letter (a token of the text, ``|`` included) or garbage; ``lines[s]``: the line (index into the given lines) of
    a line state, -1 for garbage; ``positions[s]``: the token's index within its line (-1 for a blank or garbage);
    ``skip2[s]``: the state may be entered from ``s - 2`` (the blank before it skipped); ``garbage``: the index of
    ``G_0 .. G_N``; ``line_start[i]`` / ``line_end[i]``: the first / one past the last state of line i."""

    tokens: np.ndarray
    kinds: np.ndarray
    lines: np.ndarray
    positions: np.ndarray
    skip2: np.ndarray
    garbage: np.ndarray
    line_start: np.ndarray
    line_end: np.ndarray

    @property
    def size(self) -> int:
        return len(self.tokens)


def build_graph(lines: Sequence[Sequence[int]], blank: int) -> Graph:
    """The graph of ``lines`` (each a non-empty sequence of token ids; ``blank``: the blank's id)."""
    tokens, kinds, owner, positions, skip2 = [], [], [], [], []
    garbage, line_start, line_end = [], [], []

    def add(token: int, kind: int, line: int, position: int, skippable: bool = False) -> None:
        tokens.append(token)
        kinds.append(kind)
        owner.append(line)
        positions.append(position)
        skip2.append(skippable)

    for i, line in enumerate(lines):
        if len(line) == 0:
            raise ValueError(f"line {i} has no tokens")
        garbage.append(len(tokens))
        add(GARBAGE, GARBAGE_STATE, -1, -1)
        line_start.append(len(tokens))
        for k, token in enumerate(line):
            if k:
                add(blank, BLANK_STATE, i, -1)
            add(int(token), LETTER_STATE, i, k, skippable=k > 0 and int(token) != int(line[k - 1]))
        line_end.append(len(tokens))
    garbage.append(len(tokens))
    add(GARBAGE, GARBAGE_STATE, -1, -1)
    return Graph(np.array(tokens, np.int64), np.array(kinds, np.int8), np.array(owner, np.int64),
                 np.array(positions, np.int64), np.array(skip2, bool), np.array(garbage, np.int64),
                 np.array(line_start, np.int64), np.array(line_end, np.int64))


def garbage_scores(log_probs: np.ndarray, blank: int, boundary: Optional[int], penalty: float) -> np.ndarray:
    """[T] float64: what a garbage state scores on each frame (module docstring)."""
    lp = np.asarray(log_probs)
    g = np.maximum(lp[:, blank], lp.max(axis=1) - penalty).astype(np.float64)
    if boundary is not None:
        g = np.maximum(g, lp[:, boundary])
    return g


@dataclass
class Path:
    """The best path: ``states`` [T] (graph state of each frame), ``score`` (its total), ``exact`` (False when the
    band had to be cut: see the module docstring)."""

    states: np.ndarray
    score: float
    exact: bool = True


class _Band:
    """Scores of the states ``[lo, lo + len(scores))`` at one frame."""

    __slots__ = ("lo", "scores")

    def __init__(self, lo: int, scores: np.ndarray) -> None:
        self.lo, self.scores = lo, scores


def viterbi(log_probs, lines: Sequence[Sequence[int]], blank: int, boundary: Optional[int] = None, *,
            garbage_penalty: float = 4.0, skip_cost: float = 16.0, beam: Optional[float] = 64.0,
            commit_every: int = 256, max_lag: int = 6000, full_table_cells: int = FULL_TABLE_CELLS,
            graph: Optional[Graph] = None) -> Path:
    """The best path through the graph of ``lines`` over ``log_probs`` [T, V] (module docstring).

    ``skip_cost=math.inf`` makes every line mandatory. ``beam=None`` scores every state at every frame (exact; memory
    T x states); so does any beam when T x states <= ``full_table_cells``, so that small inputs are always searched
    exactly. Raises ValueError when no path exists (fewer frames than the mandatory lines need)."""
    lp = np.asarray(log_probs)
    if lp.ndim != 2 or lp.shape[0] == 0:
        raise ValueError(f"expected log-probabilities [T, V] with T > 0, got shape {list(lp.shape)}")
    g = graph if graph is not None else build_graph(lines, blank)
    gem = garbage_scores(lp, blank, boundary, garbage_penalty)
    if lp.shape[0] * g.size <= full_table_cells:
        beam = None
    search = _Search(g, lp, gem, skip_cost, beam, commit_every, max_lag)
    return search.run()


class _Search:
    def __init__(self, g: Graph, lp: np.ndarray, gem: np.ndarray, skip_cost: float, beam: Optional[float],
                 commit_every: int, max_lag: int) -> None:
        self.g, self.lp, self.gem = g, lp, gem
        self.skip_cost, self.beam = skip_cost, beam
        self.commit_every, self.max_lag = max(1, commit_every), max(commit_every, max_lag)
        self.is_garbage = g.kinds == GARBAGE_STATE
        self.gather = np.where(self.is_garbage, 0, g.tokens)  # a valid column for every state
        self.skip2 = g.skip2
        # garbage ordinal of every state (the number of garbage states before it): a chain of skips from G_i to G_j
        # costs (j - i) * skip_cost
        self.g_ordinal = np.cumsum(self.is_garbage) - 1
        self.exact = True

    # -- one frame ---------------------------------------------------------------------------------------------
    def step(self, t: int, prev: _Band) -> "tuple[_Band, np.ndarray]":
        """(the band at frame t, its back-pointers: the state at t - 1 of each state's best path)."""
        S = self.g.size
        lo = prev.lo
        if self.beam is None or t == self.lp.shape[0] - 1:
            hi = S  # the last frame: every garbage state, so that the lines after the band can be skipped to the end
        else:
            hi = min(S, prev.lo + len(prev.scores) + 2)
            if math.isfinite(self.skip_cost):  # skips reach the garbage states within the beam's reach
                last_g = self.g_ordinal[hi - 1]
                reach = last_g + int(self.beam // self.skip_cost)
                if reach < len(self.g.garbage):
                    hi = max(hi, int(self.g.garbage[reach]) + 1)
                else:
                    hi = S
        width = hi - lo
        ext = np.full(width + 2, -np.inf)
        ext[2:2 + len(prev.scores)] = prev.scores  # states outside the previous band: -inf
        stay, one, two = ext[2:], ext[1:-1], ext[:-2]
        two = np.where(self.skip2[lo:hi], two, -np.inf)
        best = np.maximum(stay, one)
        back = (one > stay).astype(np.int64)  # 0 stay, 1 from s - 1, 2 from s - 2
        better = two > best
        best = np.where(better, two, best)
        back[better] = 2
        prev_state = np.arange(lo, hi) - back
        # skips: G_i -> G_j at (j - i) * skip_cost, within this frame (a running maximum over the garbage states)
        gi = np.flatnonzero(self.is_garbage[lo:hi])
        if math.isfinite(self.skip_cost) and len(gi) > 1:
            order = self.g_ordinal[lo + gi].astype(np.float64)
            u = best[gi] + order * self.skip_cost
            run = np.maximum.accumulate(u)
            src = np.maximum.accumulate(np.where(u >= run, np.arange(len(gi)), 0))
            best[gi] = run - order * self.skip_cost
            prev_state[gi] = prev_state[gi[src]]
        row = self.lp[t]
        emit = np.where(self.is_garbage[lo:hi], self.gem[t], row[self.gather[lo:hi]])
        scores = best + emit
        if self.beam is not None:
            top = scores.max()
            if not np.isfinite(top):
                raise ValueError(f"no path reaches frame {t}")
            keep = np.flatnonzero(scores >= top - self.beam)
            a, b = int(keep[0]), int(keep[-1]) + 1
            return _Band(lo + a, scores[a:b]), prev_state[a:b]
        return _Band(lo, scores), prev_state

    # -- the whole search --------------------------------------------------------------------------------------
    def run(self) -> Path:
        T = self.lp.shape[0]
        S = self.g.size
        states = np.full(T, -1, np.int64)
        # a virtual frame -1 in G_0 only: frame 0 may be G_0 (or a skip from it) or line 1's first token
        band = _Band(0, np.array([0.0]))
        pointers: List["tuple[int, np.ndarray]"] = []  # (lo, back-pointers) of frames root+1 .. t
        root = -1  # frames <= root are final in `states`
        for t in range(T):
            band, back = self.step(t, band)
            pointers.append((band.lo, back.astype(np.int32)))
            if self.beam is not None and t % self.commit_every == self.commit_every - 1:
                root = self._commit(band, pointers, states, root, t)
        end_scores = np.full(S, -np.inf)
        end_scores[band.lo:band.lo + len(band.scores)] = band.scores
        finals = [S - 1]
        if len(self.g.line_end):
            finals.append(int(self.g.line_end[-1]) - 1)
        final = max(finals, key=lambda s: end_scores[s])
        if not np.isfinite(end_scores[final]):
            raise ValueError(f"no path through the text in {T} frames: the mandatory lines need more frames")
        self._trace(final, pointers, states, root, T - 1)
        return Path(states, float(end_scores[final]), self.exact)

    def _trace(self, state: int, pointers: list, states: np.ndarray, root: int, t: int) -> None:
        """Write the path ending in ``state`` at frame ``t`` back to frame ``root + 1``."""
        for frame in range(t, root, -1):
            states[frame] = state
            lo, back = pointers[frame - root - 1]
            state = int(back[state - lo])

    def _commit(self, band: _Band, pointers: list, states: np.ndarray, root: int, t: int) -> int:
        """Trace every surviving state back; the frames up to where they all meet are final. Returns the new root."""
        alive = np.flatnonzero(np.isfinite(band.scores)) + band.lo
        cur = alive
        meet = None  # the latest frame where every survivor's path is in one state
        for frame in range(t, root, -1):
            if cur.min() == cur.max():
                meet = frame
                break
            lo, back = pointers[frame - root - 1]
            cur = back[cur - lo]
        if meet is None:
            if t - root < self.max_lag:
                return root
            # the survivors have not met for max_lag frames: keep the best one's path (logged; not exact)
            best = int(band.lo + np.argmax(band.scores))
            logger.warning("alignment band did not converge for %d frames: cut at the best path", t - root)
            self.exact = False
            self._trace(best, pointers, states, root, t)
            pointers.clear()
            keep = band.scores[best - band.lo]
            band.scores[:] = -np.inf  # every later path goes through the state kept
            band.scores[best - band.lo] = keep
            return t
        self._trace(int(cur[0]), pointers, states, root, meet)
        del pointers[:meet - root]
        return meet
