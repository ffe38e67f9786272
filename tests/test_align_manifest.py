"""sew_fairseq/align/manifest.py: kept lines of hand-made alignments cut out of a 16 kHz and a 44.1 kHz stereo
recording into a fairseq manifest that the manifest check accepts; padding, splitting and rejections; streaming."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from manifests.check import check_manifest
from sew_fairseq.align import manifest as manifest_module
from sew_fairseq.align.manifest import cut_blocks, plan_cuts, split_at_pauses, write_manifest
from sew_fairseq.align.segments import AlignedWord, Alignment, Segment

SR = 16000


def words(*spec) -> list:
    return [AlignedWord(w, a, b, -0.1) for w, a, b in spec]


def kept(line, text, *spec) -> Segment:
    ws = words(*spec)
    return Segment(line, text.capitalize() + ".", text, ws[0].start, ws[-1].end, -0.1, ws)


def alignment_a(path) -> Alignment:
    """20 s at 16 kHz (two blocks of stream_audio: the last line crosses 16.384 s): a line at the start, a skipped
    line, one 0.1 s after the first (their cuts meet at the midpoint), a long line with a 1 s pause, one more."""
    return Alignment(str(path), 20.0, [
        kept(1, "HELLO WORLD", ("HELLO", 0.1, 1.4), ("WORLD", 1.6, 2.0)),
        Segment(2, "Never said.", "NEVER SAID", score=-5.0, skipped="not_spoken"),
        kept(3, "IT'S", ("IT'S", 2.1, 3.0)),
        kept(4, "ONE TWO THREE FOUR", ("ONE", 5.0, 6.0), ("TWO", 6.5, 7.0), ("THREE", 8.0, 8.5), ("FOUR", 8.6, 9.9)),
        kept(5, "FIVE", ("FIVE", 16.0, 17.0)),
    ], sample_rate=SR)


def alignment_b(path) -> Alignment:
    """6 s at 44.1 kHz stereo: a kept line, a 2.6 s word (too long for max_seconds 2.1), letters outside the
    dictionary, and a last line whose cut stops at the end."""
    return Alignment(str(path), 6.0, [
        kept(1, "GOOD DAY", ("GOOD", 0.5, 0.9), ("DAY", 1.0, 1.5)),
        kept(2, "LONG", ("LONG", 2.0, 4.6)),
        kept(3, "ÉTÉ", ("ÉTÉ", 4.7, 5.5)),
        kept(4, "BYE", ("BYE", 5.6, 5.95)),
    ], sample_rate=44100)


def dictionary():
    from fairseq.data import Dictionary

    d = Dictionary()
    for n, symbol in enumerate("| E T A O N I H S R D L U M W C F G Y P B V K ' X J Q Z".split()):
        d.add_symbol(symbol, n=1000 - 7 * n if n != 5 else 5)  # not in count order: the order must be kept
    return d


@pytest.fixture
def recordings(tmp_path):
    rng = np.random.default_rng(0)
    a = tmp_path / "in" / "a.wav"
    a.parent.mkdir()
    sf.write(a, rng.integers(-20000, 20000, 20 * SR).astype(np.int16), SR, subtype="PCM_16")
    t = np.arange(6 * 44100) / 44100
    left = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))
    b = tmp_path / "in" / "b.flac"
    sf.write(b, np.stack([left, 0.5 * left + 0.1 * np.sin(2 * np.pi * 1000 * t)], 1), 44100, subtype="PCM_16")
    return a, b


def spans(cuts):
    return [(c.id, round(c.start, 6), round(c.end, 6), c.words) for c in cuts]


def test_split_at_widest_pause_recursively():
    w = words(("A", 0.0, 1.0), ("B", 1.5, 2.0), ("C", 2.5, 4.0))
    # two pauses of 0.5 s: the one nearer the middle (2.0) splits
    assert [[x.word for x in p] for p in split_at_pauses(w, 3.0)] == [["A", "B"], ["C"]]
    w = words(("A", 0, 1), ("B", 1.2, 2), ("C", 3, 4), ("D", 4.1, 5), ("E", 5.3, 6), ("F", 6.05, 7))
    assert [[x.word for x in p] for p in split_at_pauses(w, 3.0)] == [["A", "B"], ["C", "D"], ["E", "F"]]
    assert [[x.word for x in p] for p in split_at_pauses(w, 1.5)] == [["A"], ["B"], ["C"], ["D"], ["E"], ["F"]]
    assert [[x.word for x in p] for p in split_at_pauses(w, 7.0)] == [["A", "B", "C", "D", "E", "F"]]
    long = words(("A", 0, 1), ("LONG", 1.5, 5.0))
    assert [[x.word for x in p] for p in split_at_pauses(long, 2.0)] == [["A"], ["LONG"]]  # too long: the caller's


def test_padding_stops_at_midpoints_and_ends(tmp_path):
    a = alignment_a(tmp_path / "a.wav")
    cuts, rejected = plan_cuts(a, "a")
    assert rejected == []
    assert spans(cuts) == [("a_0001", 0.0, 2.05, "HELLO WORLD"),  # not before 0; the midpoint to line 3
                           ("a_0003", 2.05, 3.15, "IT'S"),
                           ("a_0004", 4.85, 10.05, "ONE TWO THREE FOUR"),
                           ("a_0005", 15.85, 17.15, "FIVE")]
    cuts, _ = plan_cuts(a, "sub/a", pad_seconds=0.0)
    assert [(c.start, c.end) for c in cuts] == [(0.1, 2.0), (2.1, 3.0), (5.0, 9.9), (16.0, 17.0)]
    assert cuts[0].id == "a_0001"
    # max 2.1 s: line 4 split at its 1 s pause; each piece padded up to the midpoint of that pause, and its
    # padding cut back (evenly) to fit 2.1 s
    cuts, _ = plan_cuts(a, "a", max_seconds=2.1)
    assert spans(cuts)[2:4] == [("a_0004_1", 4.95, 7.05, "ONE TWO"), ("a_0004_2", 7.9, 10.0, "THREE FOUR")]
    assert all(c.end - c.start <= 2.1 + 1e-9 for c in cuts)


def test_rejections(tmp_path):
    b = alignment_b(tmp_path / "b.flac")
    cuts, rejected = plan_cuts(b, "b", max_seconds=2.1, letters=dictionary().symbols[4:])
    # the rejected lines still bound their neighbours' padding: line 1 ends at 1.65 (padding), line 4 starts at
    # the midpoint 5.55 to line 3 and ends at the recording's end
    assert spans(cuts) == [("b_0001", 0.35, 1.65, "GOOD DAY"), ("b_0004", 5.55, 6.0, "BYE")]
    assert [(r.line, r.reason) for r in rejected] == [(2, "too_long_word"), (3, "outside_dictionary")]
    assert "'LONG' lasts 2.60 s" in rejected[0].detail and "É" in rejected[1].detail
    short = Alignment("x.wav", 1.0, [kept(1, "A", ("A", 0.5, 0.52))])
    assert plan_cuts(short, "x", pad_seconds=0.0)[1][0].reason == "too_short"
    assert plan_cuts(short, "x")[0][0].id == "x_0001"  # 0.32 s with its padding
    no_words = Alignment("x.wav", 1.0, [Segment(1, "?", "", 0.1, 0.5, -1.0, [])])
    assert plan_cuts(no_words, "x")[1][0].reason == "no_words"


def test_cut_blocks_streams_with_bounded_memory(monkeypatch):
    consumed = []

    def blocks():
        for i in range(1000):
            consumed.append(i)
            yield np.arange(i * 10, (i + 1) * 10, dtype=np.float32)

    sizes = []
    concatenate = np.concatenate
    monkeypatch.setattr(manifest_module.np, "concatenate", lambda xs: sizes.append(sum(map(len, xs))) or
                        concatenate(xs))
    want = [(5, 25), (25, 27), (40, 95), (3000, 3030), (9995, 10100)]
    got = []
    for (start, end), x in zip(want, cut_blocks(blocks(), want)):
        got.append(len(consumed))  # each cut comes out as soon as its last sample has been read
        assert x.tolist() == list(range(start, min(end, 10000)))
    assert got == [3, 3, 10, 303, 1000]
    assert max(sizes) <= 55 + 10  # the longest cut and a block, not the stream
    consumed.clear()
    assert [len(x) for x in cut_blocks(blocks(), [(0, 15)])] == [15] and consumed == [0, 1]  # reads no further


def read_tsv(path: Path):
    lines = path.read_text().splitlines()
    return lines[0], [(rel, int(n)) for rel, n in (line.split("\t") for line in lines[1:])]


def test_write_manifest(recordings, tmp_path):
    a_path, b_path = recordings
    m = tmp_path / "M"
    d = dictionary()
    report = write_manifest([alignment_a(a_path), alignment_b(b_path)], m, "train", dictionary=d, max_seconds=2.1)
    root, rows = read_tsv(m / "train.tsv")
    assert root == str(m / "audio")
    cut_times = [("a/a_0001", 0.0, 2.05), ("a/a_0003", 2.05, 3.15), ("a/a_0004_1", 4.95, 7.05),
                 ("a/a_0004_2", 7.9, 10.0), ("a/a_0005", 15.85, 17.15), ("b/b_0001", 0.35, 1.65),
                 ("b/b_0004", 5.55, 6.0)]
    expected = [(f"{name}.flac", round(end * SR) - round(start * SR)) for name, start, end in cut_times]
    assert rows == expected and report.rows == 7
    assert report.seconds == pytest.approx(sum(n for _, n in expected) / SR)
    assert (m / "train.wrd").read_text().splitlines() == ["HELLO WORLD", "IT'S", "ONE TWO", "THREE FOUR", "FIVE",
                                                          "GOOD DAY", "BYE"]
    assert (m / "train.ltr").read_text().splitlines()[1] == "I T ' S |"
    assert [(r.audio, r.line, r.reason) for r in report.rejected] == [(str(b_path), 2, "too_long_word"),
                                                                      (str(b_path), 3, "outside_dictionary")]
    assert report.skipped == {"not_spoken": 1}
    saved = json.loads((m / "train.report.json").read_text())
    assert saved["kept"] == 7 and saved["counts"] == {"outside_dictionary": 1, "too_long_word": 1}
    assert saved["max_seconds"] == 2.1 and saved["pad_seconds"] == 0.15

    # the manifest check reads every header: 16 kHz, mono, the true sample counts
    assert check_manifest(m / "train.tsv", 16000, mode="error").num_kept == 7

    # the samples: those of the whole recording at 16 kHz, exactly for the 16 kHz one (16-bit in, 16-bit out)
    whole_a, _ = sf.read(a_path, dtype="int16")
    for (name, start, end), (rel, n) in zip(cut_times[:5], rows):
        cut, rate = sf.read(m / "audio" / rel, dtype="int16")
        assert rate == SR and cut.ndim == 1 and len(cut) == n
        assert np.array_equal(cut, whole_a[round(start * SR):round(end * SR)]), name
    stereo, _ = sf.read(b_path, dtype="float32")
    whole_b = soxr.resample(stereo.mean(axis=1), 44100, SR, quality="HQ")
    for (name, start, end), (rel, n) in zip(cut_times[5:], rows[5:]):
        cut, rate = sf.read(m / "audio" / rel, dtype="float32")
        assert rate == SR and cut.ndim == 1 and len(cut) == n
        assert np.allclose(cut, whole_b[round(start * SR):round(end * SR)], atol=2e-4), name

    # dict.ltr.txt: the model's dictionary in its own order (fairseq reads the same indices back)
    from fairseq.data import Dictionary

    lines = (m / "dict.ltr.txt").read_text().splitlines()
    assert lines == [f"{s} {n}" for s, n in zip(d.symbols[4:], d.count[4:])] and lines[5] == "N 5"
    assert Dictionary.load(str(m / "dict.ltr.txt")).symbols == d.symbols
    assert not list(m.rglob(".tmp-*"))


def test_write_manifest_refuses_bad_options(recordings, tmp_path):
    a_path, _ = recordings
    a = alignment_a(a_path)
    with pytest.raises(ValueError, match="both have the stem 'a'"):
        write_manifest([a, alignment_a(a_path)], tmp_path / "M")
    with pytest.raises(ValueError, match="max_seconds > 0"):
        write_manifest([a], tmp_path / "M", max_seconds=0)
    with pytest.raises(ValueError, match="wave given in memory"):
        write_manifest([Alignment(None, 1.0, [])], tmp_path / "M")
    report = write_manifest([a, alignment_a(a_path)], tmp_path / "M", "valid", stems=["x/one", "two"])
    root, rows = read_tsv(tmp_path / "M" / "valid.tsv")
    assert [rel for rel, _ in rows[:1] + rows[4:5]] == ["x/one/one_0001.flac", "two/two_0001.flac"]
    assert report.rows == 8 and not (tmp_path / "M" / "dict.ltr.txt").exists()
