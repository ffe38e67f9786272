"""The alignment search (sew_fairseq/align/viterbi.py) against a plain full-table Viterbi written here from the graph's
definition, and on hand-built emissions whose best path is known."""
import math

import numpy as np
import pytest

from sew_fairseq.align.viterbi import GARBAGE_STATE, LETTER_STATE, build_graph, viterbi

BLANK, BAR = 0, 1


def reference(lp, lines, penalty, skip_cost):
    """(best score, per-frame state names) by a full T x S table, states and moves spelled out one by one:
    ("G", i) garbage before line i (i = len(lines): after the last), ("L", i, k) token k of line i, ("B", i, k) the
    blank after token k of line i."""
    T, V = lp.shape
    names = []
    for i, line in enumerate(lines):
        names.append(("G", i))
        for k in range(len(line)):
            if k:
                names.append(("B", i, k - 1))
            names.append(("L", i, k))
    names.append(("G", len(lines)))
    index = {n: s for s, n in enumerate(names)}

    def emission(t, name):
        if name[0] == "G":
            return max(lp[t, BLANK], lp[t, BAR], max(lp[t]) - penalty)
        if name[0] == "B":
            return lp[t, BLANK]
        return lp[t, lines[name[1]][name[2]]]

    def moves(name):
        """(predecessor, cost) of a state, garbage skips excluded."""
        kind = name[0]
        if kind == "G":
            i = name[1]
            return [(name, 0.0)] + ([(("L", i - 1, len(lines[i - 1]) - 1), 0.0)] if i > 0 else [])
        if kind == "B":
            return [(name, 0.0), (("L", name[1], name[2]), 0.0)]
        i, k = name[1], name[2]
        if k == 0:
            return [(name, 0.0), (("G", i), 0.0)]
        out = [(name, 0.0), (("B", i, k - 1), 0.0)]
        if lines[i][k] != lines[i][k - 1]:
            out.append((("L", i, k - 1), 0.0))
        return out

    NEG = -math.inf
    prev = {n: NEG for n in names}
    prev[("G", 0)] = 0.0  # a virtual frame before the first
    table = []
    for t in range(T):
        pre, arg = {}, {}
        for name in names:
            best, src = NEG, None
            for p, cost in moves(name):
                if prev[p] - cost > best:
                    best, src = prev[p] - cost, p
            pre[name], arg[name] = best, src
        # a skip: G_i -> G_j within the frame at (j - i) * skip_cost
        for j in range(1, len(lines) + 1):
            for i in range(j):
                value = pre[("G", i)] - (j - i) * skip_cost
                if value > pre[("G", j)]:
                    pre[("G", j)], arg[("G", j)] = value, arg[("G", i)]
        cur = {n: pre[n] + emission(t, n) for n in names}
        table.append(arg)
        prev = cur
    ends = [("G", len(lines)), ("L", len(lines) - 1, len(lines[-1]) - 1)]
    end = max(ends, key=lambda n: prev[n])
    path = [end]
    for t in range(T - 1, 0, -1):
        path.append(table[t][path[-1]])
    assert index  # every name is a state
    return prev[end], path[::-1]


def names_of(graph, states):
    out = []
    g_of = {int(s): i for i, s in enumerate(graph.garbage)}
    for s in states:
        s = int(s)
        if graph.kinds[s] == GARBAGE_STATE:
            out.append(("G", g_of[s]))
        elif graph.kinds[s] == LETTER_STATE:
            out.append(("L", int(graph.lines[s]), int(graph.positions[s])))
        else:
            out.append(("B", int(graph.lines[s]), int(graph.positions[s - 1])))
    return out


def random_case(rng, frames, n_lines, sharp=3.0):
    V = 6
    lines = [list(rng.integers(2, V, size=rng.integers(1, 5))) for _ in range(n_lines)]
    lines = [[int(x) for x in line] for line in lines]
    logits = rng.normal(size=(frames, V)) * sharp
    lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return lp, lines


@pytest.mark.parametrize("seed", range(12))
def test_full_table_search_finds_the_reference_best_path(seed):
    rng = np.random.default_rng(seed)
    lp, lines = random_case(rng, frames=int(rng.integers(12, 40)), n_lines=int(rng.integers(1, 4)))
    penalty, skip = [(4.0, 8.0), (1.0, 0.5), (10.0, math.inf)][seed % 3]
    ref_score, ref_path = reference(lp, lines, penalty, skip)
    path = viterbi(lp, lines, BLANK, BAR, garbage_penalty=penalty, skip_cost=skip, beam=None)
    assert path.score == pytest.approx(ref_score, abs=1e-4)
    assert names_of(build_graph(lines, BLANK), path.states) == ref_path


@pytest.mark.parametrize("seed", range(4))
def test_banded_search_with_partial_traceback_keeps_the_path(seed):
    """A beam too wide to prune anything, survivors traced back every 3 frames: the full table's path, exactly. A
    narrow beam traced back every 5 frames: the path of the same beam without partial traceback (committing a
    prefix the survivors share changes nothing)."""
    rng = np.random.default_rng(100 + seed)
    lp, lines = random_case(rng, frames=300, n_lines=8, sharp=4.0)
    full = viterbi(lp, lines, BLANK, BAR, beam=None)
    wide = viterbi(lp, lines, BLANK, BAR, beam=1e9, commit_every=3)
    assert wide.exact and wide.score == pytest.approx(full.score, abs=1e-6)
    np.testing.assert_array_equal(wide.states, full.states)
    once = viterbi(lp, lines, BLANK, BAR, beam=15.0, commit_every=10 ** 6, full_table_cells=0)
    often = viterbi(lp, lines, BLANK, BAR, beam=15.0, commit_every=5, full_table_cells=0)
    assert often.exact and often.score == once.score
    np.testing.assert_array_equal(often.states, once.states)


def test_small_inputs_are_searched_exactly_by_default():
    rng = np.random.default_rng(7)
    lp, lines = random_case(rng, frames=300, n_lines=8, sharp=4.0)  # a narrow beam loses this path
    full = viterbi(lp, lines, BLANK, BAR, beam=None)
    assert viterbi(lp, lines, BLANK, BAR, beam=15.0).score == full.score
    assert viterbi(lp, lines, BLANK, BAR, beam=15.0, full_table_cells=0).score < full.score


def spoken(frames, token_frames, V=6, sure=-0.01, other=-8.0):
    """Hand-built log-probabilities: blank everywhere except ``token_frames`` {frame: token}."""
    lp = np.full((frames, V), other)
    lp[:, BLANK] = sure
    for t, token in token_frames.items():
        lp[t, :] = other
        lp[t, token] = sure
    return lp


def test_a_line_that_is_not_spoken_is_skipped_and_its_neighbours_keep_their_frames():
    # spoken: line A (2 3) at frames 5-6, line C (4 5) at frames 20-21; line B (3 4 5 2) is not in the audio
    lp = spoken(30, {5: 2, 6: 3, 20: 4, 21: 5})
    lines = [[2, 3], [3, 4, 5, 2], [4, 5]]
    graph = build_graph(lines, BLANK)
    path = viterbi(lp, lines, BLANK, BAR)
    seen = {int(graph.lines[s]) for s in path.states if graph.lines[s] >= 0}
    assert seen == {0, 2}
    names = names_of(graph, path.states)
    assert names[5] == ("L", 0, 0) and names[6] == ("L", 0, 1)
    assert names[20] == ("L", 2, 0) and names[21] == ("L", 2, 1)
    # forced (no skipping), the unspoken line takes frames somewhere and the path scores far lower
    forced = viterbi(lp, lines, BLANK, BAR, skip_cost=math.inf)
    assert forced.score < path.score - 8.0


def test_speech_not_in_the_text_goes_to_garbage_not_into_a_line():
    # line A (2 3) at 3-4, then speech the text does not have (5 4 5 4 at 8-11), then line B (4 2) at 16-17
    lp = spoken(24, {3: 2, 4: 3, 8: 5, 9: 4, 10: 5, 11: 4, 16: 4, 17: 2})
    path = viterbi(lp, [[2, 3], [4, 2]], BLANK, BAR)
    graph = build_graph([[2, 3], [4, 2]], BLANK)
    names = names_of(graph, path.states)
    assert all(n[0] == "G" for n in names[7:13])
    assert names[16] == ("L", 1, 0) and names[17] == ("L", 1, 1)


def test_too_few_frames_for_the_mandatory_lines_is_an_error():
    lp = spoken(3, {})
    with pytest.raises(ValueError, match="no path"):
        viterbi(lp, [[2, 3, 4, 5]], BLANK, BAR, skip_cost=math.inf, beam=None)
