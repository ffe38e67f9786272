"""sew-align: the text rules, the Aligner's segments and words on hand-built emissions whose best path is known,
and the command (outputs, errors before any audio is read, bad audio, shards, the manifest)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sew_fairseq.align import Aligner, TextError
from sew_fairseq.align.text import normalize_lines
from sew_fairseq.cli.align import main

LETTERS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'") + ["|"]
LIBRI = Path("librispeech/LibriSpeech/test-clean/1089/134686/1089-134686-0001.flac")


def test_text_is_folded_to_the_model_letters():
    lines = normalize_lines(["Hello, world!", "", "  don\u2019t stop -- well-known / fine  ", "?!"], LETTERS)
    assert [(x.number, x.normalized) for x in lines] == [(1, "HELLO WORLD"), (3, "DON'T STOP WELL KNOWN FINE")]
    assert lines[0].text == "Hello, world!"
    with pytest.raises(TextError, match=r"talk\.txt:2: .*'4'.*'2'.*spell numbers out"):
        normalize_lines(["fine", "route 42 again"], LETTERS, "talk.txt")
    with pytest.raises(TextError, match=r"x:1: .*'\$'"):
        normalize_lines(["it costs $ 5"], LETTERS, "x")
    with pytest.raises(TextError, match=r"x:1: .*','"):  # kept punctuation must have a label
        normalize_lines(["yes, no"], LETTERS, "x", keep_punctuation=True)
    assert normalize_lines(["yes, no"], LETTERS + [","], keep_punctuation=True)[0].words == ["YES,", "NO"]


@pytest.fixture(scope="module")
def aligner(ctc_checkpoint):
    return Aligner.from_checkpoint(str(ctc_checkpoint))


def emissions_of(aligner, frames, spoken):
    """Log-probabilities [frames, V]: blank everywhere but at ``spoken`` {frame: symbol} (sure of each)."""
    d = aligner.dictionary
    lp = np.full((frames, len(d)), -12.0, np.float32)
    lp[:, d.bos()] = -1e-4
    for t, symbol in spoken.items():
        lp[t] = -12.0
        lp[t, d.index(symbol)] = -1e-4
    return lp


def spell(frames, text):
    """{frame: letter}: the letters of ``text`` from frame ``frames`` on, a blank between two letters, '|' after
    each word (as a model emits them)."""
    out, t = {}, frames
    for word in text.split():
        for c in word:
            out[t] = c
            t += 2  # a blank between letters
        out[t] = "|"
        t += 1
    return out


def test_segments_words_and_skipped_lines_on_known_emissions(aligner):
    aligner = Aligner(aligner.transcriber, min_score=None)
    fs = aligner.frame_seconds
    spoken = {**spell(10, "GOOD MORNING"), **spell(60, "SEE YOU"), **spell(120, "BYE")}
    lp = emissions_of(aligner, 150, spoken)
    lines = aligner.lines(["good morning", "this line was never said", "see you", "", "bye"])
    segs = aligner.align_emissions(lp, lines)
    assert [s.line for s in segs] == [1, 2, 3, 5]
    good, never, see, bye = segs
    assert never.skipped == "not_spoken" and never.start is None and never.words == []
    assert never.score is not None and never.score < -5  # forced into the pause between its neighbours: poor
    assert good.kept and good.start == pytest.approx(10 * fs) and good.end == pytest.approx(34 * fs)  # the final |
    assert [(w.word, round(w.start / fs), round(w.end / fs)) for w in good.words] == [("GOOD", 10, 17),
                                                                                        ("MORNING", 19, 32)]
    assert see.start == pytest.approx(60 * fs) and bye.start == pytest.approx(120 * fs)
    assert all(s.score > -0.01 for s in (good, see, bye))  # every frame of their paths sure
    d = good.to_dict()
    assert set(d) == {"line", "text", "start", "end", "score", "words"} and d["text"] == "good morning"
    assert set(never.to_dict()) == {"line", "text", "score", "skipped"}
    # a line that is said badly: kept by the search, dropped by --min-score, its neighbours unmoved
    lp[60:75, :] = np.log(1.0 / lp.shape[1])  # "SEE YOU" now sounds like nothing in particular
    segs2 = Aligner(aligner.transcriber, min_score=-1.0).align_emissions(lp, lines)
    assert segs2[2].skipped in ("low_score", "not_spoken")
    assert (segs2[0].start, segs2[0].end, segs2[3].start) == (good.start, good.end, bye.start)


def test_every_line_forced_when_skipping_is_off(aligner):
    lp = emissions_of(aligner, 80, spell(10, "YES"))
    lines = aligner.lines(["yes", "no"])
    assert Aligner(aligner.transcriber, min_score=None).align_emissions(lp, lines)[1].skipped == "not_spoken"
    forced = Aligner(aligner.transcriber, min_score=None, skip_cost=math.inf).align_emissions(lp, lines)
    assert forced[0].start == pytest.approx(10 * aligner.frame_seconds)
    assert forced[1].kept and forced[1].start >= forced[0].end and forced[1].score < -5


@pytest.fixture
def pair(tmp_path, fixtures_dir):
    d = tmp_path / "in"
    d.mkdir()
    (d / "talk.flac").write_bytes((fixtures_dir / LIBRI).read_bytes())
    (d / "talk.txt").write_text("Nor is Mister Quilter's manner\n\nless interesting than his matter.\n")
    return d


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_every_output_and_reuses_them(ctc_checkpoint, pair, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run_cli([ctc_checkpoint, pair / "talk.flac", pair / "talk.txt", "-o", out, "--quiet",
                               "--skip-cost", "inf", "--min-score=-inf"], capsys)
    assert code == 0 and "1 recording(s)" in stdout
    result = json.loads((out / "talk.json").read_text())
    assert result["duration"] == pytest.approx(3.275, abs=1e-3)
    assert [s["line"] for s in result["segments"]] == [1, 3]  # every line placed (skipping off)
    for s in result["segments"]:
        assert 0 <= s["start"] < s["end"] <= result["duration"]
        assert [w["word"] for w in s["words"]] == [w.upper().strip(".") for w in s["text"].split()]
        assert all(s["start"] <= w["start"] < w["end"] <= s["end"] for w in s["words"])
    assert result["segments"][0]["end"] <= result["segments"][1]["start"]
    for fmt in ("ctm", "TextGrid", "srt"):
        assert (out / f"talk.{fmt}").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == 1 and summary["segments"] == 2 and summary["kept"] == 2
    code, stdout, _ = run_cli([ctc_checkpoint, pair, "-o", out, "--quiet"], capsys)  # a folder; already done
    assert code == 0 and "1 already done" in stdout


def test_cli_text_errors_come_before_any_audio(ctc_checkpoint, pair, tmp_path, capsys):
    (pair / "talk.txt").write_text("one line\nroom 101 is here\n")
    code, _, err = run_cli([ctc_checkpoint, tmp_path / "missing.flac", pair / "talk.txt", "-o", tmp_path / "o"],
                           capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "talk.txt:2:" in lines[0] and "'1'" in lines[0] and "'0'" in lines[0]


def test_cli_bad_audio_stops_or_is_skipped(ctc_checkpoint, pair, tmp_path, capsys):
    (pair / "broken.flac").write_bytes((pair / "talk.flac").read_bytes()[:300])
    (pair / "broken.txt").write_text("a line\n")
    out = tmp_path / "out"
    code, _, err = run_cli([ctc_checkpoint, pair, "-o", out, "--quiet"], capsys)
    assert code == 1 and "broken.flac" in err and "Traceback" not in err
    code, _, err = run_cli([ctc_checkpoint, pair, "-o", out, "--quiet", "--skip-bad"], capsys)
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0 and [Path(b["audio"]).name for b in summary["bad_files"]] == ["broken.flac"]
    assert (out / "talk.json").exists()


def test_cli_shards_and_manifest(ctc_checkpoint, pair, tmp_path, capsys):
    wave, rate = sf.read(pair / "talk.flac")
    for name in ("b", "c"):
        sf.write(pair / f"{name}.flac", wave, rate)
        (pair / f"{name}.txt").write_text("nor is mister quilter's manner\n")
    out, m = tmp_path / "out", tmp_path / "m"
    seen = []
    for k in range(2):
        code, _, _ = run_cli([ctc_checkpoint, pair, "-o", out, "--quiet", "--shard", f"{k}/2", "--skip-cost", "inf",
                              "--min-score=-inf"], capsys)
        summary = json.loads((out / f"summary.shard-{k}-of-2.json").read_text())
        assert code == 0 and summary["shard"] == f"{k}/2"
        seen.append(summary["files"])
    assert seen == [2, 1]
    code, stdout, _ = run_cli([ctc_checkpoint, pair, "-o", out, "--quiet", "--manifest-dir", m, "--split", "x"],
                              capsys)
    assert code == 0 and "3 already done" in stdout
    rows = (m / "x.tsv").read_text().splitlines()
    kept = sum(len([s for s in json.loads((out / f"{n}.json").read_text())["segments"] if "skipped" not in s])
               for n in ("b", "c", "talk"))
    assert len(rows) - 1 == kept == 4
    for row in rows[1:]:
        info = sf.info(str(Path(rows[0]) / row.split("\t")[0]))
        assert info.samplerate == 16000 and info.channels == 1 and info.frames == int(row.split("\t")[1])
    assert (m / "x.wrd").read_text().splitlines()[0] == "NOR IS MISTER QUILTER'S MANNER"
    assert (m / "dict.ltr.txt").exists()


def test_boundaries_agree_with_ctc_segmentation_on_clean_emissions(aligner):
    """On emissions where every line is spoken cleanly, ctc-segmentation (where installed), given the lines spelled as
    ours, puts each line's first and last character where our search puts them."""
    cs = pytest.importorskip("ctc_segmentation")
    texts = ["good morning", "see you", "bye now"]
    starts = (10, 60, 120)
    spoken = {}
    for t, text in zip(starts, texts):
        frames = spell(t, text.upper())
        del frames[max(frames)]  # no '|' after the last word: the text ctc-segmentation gets has none there
        spoken.update(frames)
    lp = emissions_of(aligner, 160, spoken)
    aligner = Aligner(aligner.transcriber, min_score=None)
    ours = aligner.align_emissions(lp, aligner.lines(texts))
    labels = [s if len(s) == 1 else chr(0xE000 + i) for i, s in enumerate(aligner.dictionary.symbols)]
    config = cs.CtcSegmentationParameters(char_list=labels, blank=0, index_duration=aligner.frame_seconds)
    utts = ["|".join(t.upper().split()) for t in texts]  # spelled as our search spells them
    matrix, begins = cs.prepare_text(config, utts)
    timings, _, _ = cs.ctc_segmentation(config, lp, matrix)
    fs = aligner.frame_seconds
    for i, seg in enumerate(ours):
        first, last = timings[begins[i] + 1], timings[begins[i + 1] - 1]
        assert seg.start == pytest.approx(first, abs=fs + 1e-9)
        assert seg.words[-1].end == pytest.approx(last + fs, abs=fs + 1e-9)  # the last letter, one frame long
