"""sew_fairseq/align/outputs.py: the JSON, CTM, TextGrid and SRT files of a hand-made alignment, read back (the
TextGrid by praatio, a third-party reader, and by a small parser of its own)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from sew_fairseq.align.outputs import FORMATS, textgrid_text, tier_intervals, write_alignment
from sew_fairseq.align.segments import AlignedWord, Alignment, Segment


def alignment() -> Alignment:
    """Four lines of a 12.5 s recording: two kept lines that touch (no gap between them), a skipped one, a quoted
    text, and a last word whose end (frames are 20 ms) passes the recording's end."""
    return Alignment("talks/talk 1.wav", 12.5, [
        Segment(1, "Hello, world!", "HELLO WORLD", 1.24, 2.5, -0.1,
                [AlignedWord("HELLO", 1.24, 1.8, -0.05), AlignedWord("WORLD", 2.0, 2.5, -0.2)]),
        Segment(2, 'He said "yes".', "HE SAID YES", 2.5, 4.0, -0.3,
                [AlignedWord("HE", 2.5, 2.7, -0.3), AlignedWord("SAID", 2.8, 3.3, -0.25),
                 AlignedWord("YES", 3.4, 4.0, math.log(0.5))]),
        Segment(3, "Not in the audio.", "NOT IN THE AUDIO", score=-4.5, skipped="not_spoken"),
        Segment(4, "The end", "THE END", 11.0, 12.52, -0.5,
                [AlignedWord("THE", 11.0, 11.3, -0.4), AlignedWord("END", 11.5, 12.52, -0.6)]),
    ], sample_rate=16000)


def parse_textgrid(text: str) -> dict:
    """A small reader of Praat's long text format: {tier name: [(xmin, xmax, text), ...], "_file": the file's own
    xmin, xmax and size}."""
    lines = [line.strip() for line in text.splitlines()]
    assert lines[:2] == ['File type = "ooTextFile"', 'Object class = "TextGrid"']
    field = re.compile(r'^(\w+) = (?:"((?:[^"]|"")*)"|(\S+))$')
    out: dict = {"_file": {}}
    tier, interval, items = None, None, False
    for line in lines[2:]:
        if line == "item []:":
            items = True
        elif line.startswith("intervals ["):
            interval = {}
        elif line.startswith("item ["):
            tier, interval = None, None
        elif m := field.match(line):
            key, quoted, number = m.groups()
            if key == "name":
                tier = out.setdefault(quoted.replace('""', '"'), [])
            elif interval is not None and key in ("xmin", "xmax"):
                interval[key] = float(number)
            elif interval is not None and key == "text":
                tier.append((interval["xmin"], interval["xmax"], quoted.replace('""', '"')))
            elif not items:
                out["_file"][key] = number
    return out


def test_tier_intervals_fill_gaps_clip_and_touch():
    spans = [(2.0, 3.0, "b"), (0.5, 2.0, "a"), (2.9, 3.5, "overlaps b"), (9.0, 11.0, "past the end")]
    assert tier_intervals(spans, 10.0) == [(0.0, 0.5, ""), (0.5, 2.0, "a"), (2.0, 3.0, "b"), (3.0, 3.5, "overlaps b"),
                                           (3.5, 9.0, ""), (9.0, 10.0, "past the end")]
    assert tier_intervals([], 4.0) == [(0.0, 4.0, "")]


def test_all_formats(tmp_path):
    a = alignment()
    written = write_alignment(a, tmp_path / "out" / "talk 1", FORMATS, recording="talks/talk 1")
    assert [Path(p).name for p in written] == ["talk 1.json", "talk 1.ctm", "talk 1.TextGrid", "talk 1.srt"]
    assert not list(tmp_path.rglob(".tmp-*"))

    data = json.loads((tmp_path / "out" / "talk 1.json").read_text(encoding="utf-8"))
    assert data["audio"] == "talks/talk 1.wav" and data["duration"] == 12.5
    assert [s["line"] for s in data["segments"]] == [1, 2, 3, 4]
    assert data["segments"][2] == {"line": 3, "text": "Not in the audio.", "score": -4.5, "skipped": "not_spoken"}
    assert data["segments"][1]["words"][2] == {"word": "YES", "start": 3.4, "end": 4.0, "score": -0.6931}
    assert set(data["segments"][0]) == {"line", "text", "start", "end", "score", "words"}

    # CTM: the words of the kept lines, NIST's six fields, id sanitised as for trn files, confidence = exp(score)
    ctm = [line.split(" ") for line in (tmp_path / "out" / "talk 1.ctm").read_text().splitlines()]
    assert [r[4] for r in ctm] == ["HELLO", "WORLD", "HE", "SAID", "YES", "THE", "END"]
    assert ctm[0] == ["talks/talk_1", "1", "1.240", "0.560", "HELLO", f"{math.exp(-0.05):.4f}"]
    assert ctm[4][5] == "0.5000" and all(len(r) == 6 for r in ctm)

    # SRT: one cue per kept line, its text as written
    srt = (tmp_path / "out" / "talk 1.srt").read_text(encoding="utf-8")
    assert srt == ("1\n00:00:01,240 --> 00:00:02,500\nHello, world!\n\n"
                   "2\n00:00:02,500 --> 00:00:04,000\nHe said \"yes\".\n\n"
                   "3\n00:00:11,000 --> 00:00:12,520\nThe end\n")


def check_tier(intervals, duration):
    assert intervals[0][0] == 0 and intervals[-1][1] == duration
    for (a0, a1, _), (b0, b1, _) in zip(intervals, intervals[1:]):
        assert a0 < a1 == b0 < b1  # contiguous, no overlap, none empty


def test_textgrid_read_back_by_praatio_and_by_hand(tmp_path):
    from praatio import textgrid

    a = alignment()
    (path,) = write_alignment(a, tmp_path / "talk", ["TextGrid"])
    segments = [(0, 1.24, ""), (1.24, 2.5, "Hello, world!"), (2.5, 4.0, 'He said "yes".'), (4.0, 11.0, ""),
                (11.0, 12.5, "The end")]
    words = [(0, 1.24, ""), (1.24, 1.8, "HELLO"), (1.8, 2.0, ""), (2.0, 2.5, "WORLD"), (2.5, 2.7, "HE"),
             (2.7, 2.8, ""), (2.8, 3.3, "SAID"), (3.3, 3.4, ""), (3.4, 4.0, "YES"), (4.0, 11.0, ""),
             (11.0, 11.3, "THE"), (11.3, 11.5, ""), (11.5, 12.5, "END")]

    tg = textgrid.openTextgrid(path, includeEmptyIntervals=True, reportingMode="error")
    assert tg.tierNames == ("segments", "words") and (tg.minTimestamp, tg.maxTimestamp) == (0, 12.5)
    for name, expected in (("segments", segments), ("words", words)):
        got = [(e.start, e.end, e.label) for e in tg.getTier(name).entries]
        assert got == expected, name
        check_tier(got, 12.5)

    parsed = parse_textgrid(Path(path).read_text(encoding="utf-8"))
    assert parsed["_file"] == {"xmin": "0", "xmax": "12.5", "size": "2"}
    assert parsed["segments"] == segments and parsed["words"] == words
    assert 'text = "He said ""yes""."' in Path(path).read_text(encoding="utf-8")


def test_nothing_kept_is_one_empty_interval_per_tier(tmp_path):
    a = Alignment(None, 3.0, [Segment(1, "x", "X", score=None, skipped="not_spoken")])
    parsed = parse_textgrid(textgrid_text(a))
    assert parsed["segments"] == parsed["words"] == [(0, 3.0, "")]
    write_alignment(a, tmp_path / "empty", ["ctm", "srt"])
    assert (tmp_path / "empty.ctm").read_text() == (tmp_path / "empty.srt").read_text() == ""
    with pytest.raises(ValueError, match="unknown alignment format.*'vtt'"):
        write_alignment(a, tmp_path / "x", ["json", "vtt"])
    assert not (tmp_path / "x.json").exists()
