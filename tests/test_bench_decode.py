"""``sew-bench decode``: our flashlight-text KenLM decoder against pyctcdecode on the same synthetic emissions.

Real decoders, real KenLM, no mocks; no assertion on speed (the benchmark reports ratios)."""
from __future__ import annotations

import json
import math
import random

import pytest

pytest.importorskip("pyctcdecode", reason="sew-bench decode needs pyctcdecode (requirements-test.txt)")
pytest.importorskip("kenlm", reason="sew-bench decode needs the kenlm module (requirements-test.txt)")

from sew_fairseq.bench.decode import format_result, pyctcdecode_labels, run_decode_bench  # noqa: E402
from sew_fairseq.bench.synthetic_emissions import (  # noqa: E402
    FRAMES_PER_SECOND,
    grammar_sentence,
    letter_dictionary,
    normalise_text,
    synthesise_emissions,
)
from sew_fairseq.cli.bench import main  # noqa: E402


def _rows(r):
    return r.ours + [r.pyctcdecode, r.viterbi]


@pytest.fixture(scope="module")
def noisy():
    return run_decode_bench(utterances=20, repeats=1, seed=1)


def test_noisy_run_decodes_everything(noisy):
    r = noisy
    assert r.utterances == 20 and len(r.references) == 20
    assert r.audio_seconds == pytest.approx(r.frames / FRAMES_PER_SECOND) and r.audio_seconds > 20
    assert [o.name for o in r.ours] == ["ours, beam_threshold 25", "ours, beam_threshold 10"]
    for row in _rows(r):
        assert len(row.hypotheses) == 20 and all(isinstance(h, str) for h in row.hypotheses), row.name
        assert sum(bool(h) for h in row.hypotheses) >= 18, row.name  # (nearly) every utterance has words
        assert math.isfinite(row.wer) and row.wer >= 0 and row.ref_words == sum(len(t.split()) for t in r.references)
        assert row.seconds > 0 and row.seconds_per_audio_second == pytest.approx(row.seconds / r.audio_seconds)
    # the noise is real (greedy fails often) and the LM recovers most of it (both decoders)
    assert r.viterbi.wer > 0.3
    assert r.ours[0].wer < 0.1 and r.pyctcdecode.wer < 0.2
    assert r.alpha == pytest.approx(2.0 / math.log(10)) and r.beta == -1.0
    assert r.ratio(r.ours[0]) > 0
    table = format_result(r)
    assert "pyctcdecode" in table and "ours, beam_threshold 25" in table and "ms / audio s" in table
    d = r.to_dict()
    assert "hypotheses" not in d["pyctcdecode"] and d["ours"][0]["ratio_pyctcdecode_over_ours"] > 0
    json.dumps(d)


@pytest.mark.parametrize("beam_size_token", [None, 3])
def test_clean_emissions_decode_exactly(beam_size_token):
    """Clean emissions: both decoders must read every reference (checks the label mapping end to end)."""
    r = run_decode_bench(utterances=20, repeats=1, noise=0.0, jitter=0.0, seed=2, beam_size_token=beam_size_token)
    for row in _rows(r):
        assert row.wer == 0.0 and row.word_errors == 0, (row.name, row.hypotheses)
        assert row.hypotheses == r.references, row.name


def test_pyctcdecode_label_mapping():
    d = letter_dictionary()
    assert len(d) == 32 and d.symbols[:5] == ["<s>", "<pad>", "</s>", "<unk>", "|"]
    labels, columns = pyctcdecode_labels(d)
    assert labels[0] == "" and columns[0] == d.bos()  # the CTC blank
    assert labels[1] == " " and columns[1] == d.index("|")  # the word boundary
    assert len(labels) == len(columns) == 29 and not set(columns) & {d.pad(), d.eos(), d.unk()}
    assert all(labels[k] == d.symbols[c] for k, c in enumerate(columns) if k >= 2)
    # the special columns hold (almost) no mass, so dropping them keeps the frames normalised
    x = synthesise_emissions(d, "THE CAT", random.Random(0))
    assert x.shape[1] == 32 and x[:, columns].double().exp().sum(-1).min() > 1 - 1e-5
    # clean emissions read greedily are the text
    clean = synthesise_emissions(d, "A DOG'S DAY", random.Random(0), noise=0.0, jitter=0.0)
    path = [labels[columns.index(i)] for i in clean.argmax(-1).tolist()]
    collapsed = [c for k, c in enumerate(path) if k == 0 or c != path[k - 1]]
    assert "".join(collapsed).strip() == "A DOG'S DAY"
    assert normalise_text("  Hello, world!  it's  ", [s for s in d.symbols if len(s) == 1]) == "HELLO WORLD IT'S"


def test_pyctcdecode_alpha_makes_lm_terms_equal(tmp_path):
    """alpha = lm_weight / ln 10 and beta = word_score give pyctcdecode's LM term = ours (lm_weight * log10 P
    + word_score per word), checked on whole sentences against KenLM's own sentence score."""
    import kenlm
    from pyctcdecode import build_ctcdecoder

    from manifests.arpa import write_arpa

    rng = random.Random(0)
    lines = [grammar_sentence(rng) for _ in range(200)]
    write_arpa(tmp_path / "lm.arpa", lines, order=3)
    labels, _ = pyctcdecode_labels(letter_dictionary())
    lm_weight, word_score = 1.7, -0.6
    dec = build_ctcdecoder(labels, kenlm_model_path=str(tmp_path / "lm.arpa"),
                           unigrams=sorted({w for s in lines for w in s.split()}),
                           alpha=lm_weight / math.log(10), beta=word_score)
    lm = dec._language_model  # pyctcdecode's LanguageModel (its public attribute has no getter)
    model = kenlm.Model(str(tmp_path / "lm.arpa"))
    for sentence in lines[:5]:
        words = sentence.split()
        state, total = lm.get_start_state(), 0.0
        for k, w in enumerate(words):
            score, state = lm.score(state, w, is_last_word=k == len(words) - 1)
            total += score
        assert total == pytest.approx(lm_weight * model.score(sentence, bos=True, eos=True) + word_score * len(words),
                                      abs=1e-4)
    dec.cleanup()


def test_cli_decode_text_json(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat.\nA dog, a cat!\n\nthe mat's cat sat\nthe dog sat on a mat\n")
    out = tmp_path / "decode.json"
    rc = main(["decode", "--text", str(text), "--utterances", "3", "--beam", "8", "--noise", "0", "--jitter", "0",
               "--repeats", "1", "--beam-threshold", "25", "--json", str(out), "--hypotheses"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "pyctcdecode" in printed.out and "ours, beam_threshold 25" in printed.out
    assert "Loading the LM" not in printed.err  # KenLM's progress bars are dropped
    d = json.loads(out.read_text())
    assert d["utterances"] == 3 and d["beam"] == 8 and len(d["ours"]) == 1
    assert d["references"] == ["THE CAT SAT ON THE MAT", "A DOG A CAT", "THE MAT'S CAT SAT"]
    assert d["ours"][0]["hypotheses"] == d["references"] == d["pyctcdecode"]["hypotheses"]
    assert d["ours"][0]["wer"] == 0.0 and d["pyctcdecode"]["wer"] == 0.0


def test_cli_decode_errors(tmp_path, capsys):
    assert main(["decode", "--utterances", "0"]) == 2
    assert main(["decode", "--lm", str(tmp_path / "nope.arpa")]) == 2
    assert "--lm file not found" in capsys.readouterr().err


def test_worker_processes_give_the_same_hypotheses(noisy):
    r = run_decode_bench(utterances=20, repeats=1, seed=1, threads=2, beam_thresholds=(25.0,))
    assert r.threads == 2
    assert r.ours[0].hypotheses == noisy.ours[0].hypotheses
    assert r.pyctcdecode.hypotheses == noisy.pyctcdecode.hypotheses
