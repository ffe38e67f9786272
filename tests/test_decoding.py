"""sew_fairseq.decoding: real flashlight-text + KenLM decoding on hand-built CTC emissions, ARPA
estimation (normalisation checked through KenLM itself), lexicons, WER/CER and trn files. No mocks."""
from __future__ import annotations

import ast
import math
import random
from pathlib import Path
from typing import Optional, Sequence

import pytest
import torch
from fairseq.data.dictionary import Dictionary

from sew_fairseq.decoding import (Hypothesis, KenLMLexiconDecoder, KenLMLexiconFreeDecoder, ViterbiDecoder,
                                  WordTiming, build_decoder, is_phone_dictionary, word_boundary_of)
from manifests.trn import UtteranceResult, read_trn, sanitize_utt_id, write_trn, write_utterance_tsv
from manifests.lexicon import (build_lexicon, check_lm_vocabulary, read_lexicon, to_letters, words_from_wrd_files,
                               write_lexicon)
from manifests.error_rates import cer, char_errors, per, phone_errors, score_texts, wer, word_errors
from manifests.arpa import estimate_arpa, read_arpa, write_arpa
from manifests.trn import format_trn_line

LETTERS = list("ETAONIHSRDLUMWCFGYPBVKXJQZ")
BLANK = "<s>"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("decoding")


@pytest.fixture(scope="module")
def dict_path(tmp) -> Path:
    """A LibriSpeech-like dict.ltr.txt: ``|``, 26 letters and the apostrophe (``symbol count`` lines)."""
    path = tmp / "dict.ltr.txt"
    path.write_text("".join(f"{s} {1000 - i}\n" for i, s in enumerate(["|"] + LETTERS + ["'"])))
    return path


@pytest.fixture(scope="module")
def dictionary(dict_path) -> Dictionary:
    d = Dictionary.load(str(dict_path))
    assert d.symbols[:5] == ["<s>", "<pad>", "</s>", "<unk>", "|"] and len(d) == 32
    return d


def hand_emissions(d: Dictionary, frames: Sequence, p: float = 0.9) -> torch.Tensor:
    """Log-probs [T, V]: each frame is a symbol (gets ``p``) or ``(best, second)`` (0.5 / 0.3); the rest
    of the mass is spread evenly."""
    rows = []
    for f in frames:
        mass = {f: p} if isinstance(f, str) else {f[0]: 0.5, f[1]: 0.3}
        row = torch.full((len(d),), (1.0 - sum(mass.values())) / (len(d) - len(mass)))
        for sym, q in mass.items():
            row[d.index(sym)] = q
        rows.append(row.log())
    return torch.stack(rows)


# H H _ E L L _ L O O | | W O R _ L D _   (repeats collapse; the blank separates the two Ls)
HELLO_WORLD = ["H", "H", BLANK, "E", "L", "L", BLANK, "L", "O", "O", "|", "|",
               "W", "O", "R", BLANK, "L", "D", BLANK]


def test_viterbi_spells_hello_world(dictionary):
    x = hand_emissions(dictionary, HELLO_WORLD)
    [[hyp]] = ViterbiDecoder(dictionary).decode(x[None])
    assert hyp.words == ["HELLO", "WORLD"] and hyp.text == "HELLO WORLD"
    assert hyp.tokens == "H E L L O | W O R L D"
    assert hyp.score == pytest.approx(len(HELLO_WORLD) * math.log(0.9), rel=1e-5)
    # logits give the same path as log-probs (decoders apply log_softmax)
    [[h2]] = ViterbiDecoder(dictionary).decode(3.0 + x[None])
    assert h2.words == hyp.words and h2.score == pytest.approx(hyp.score, rel=1e-5)


def test_word_timings_from_the_greedy_path(dictionary):
    x = hand_emissions(dictionary, HELLO_WORLD)
    dec = ViterbiDecoder(dictionary)
    [[hyp]] = dec.decode(x[None])
    assert len(hyp.path) == len(HELLO_WORLD)
    # HELLO: letters at frames 0-1, 3, 4-5, 7, 8-9 (blanks 2 and 6 inside it); WORLD: 12-14, 16-17; '|' at 10-11
    assert dec.word_timings(hyp, x) == [WordTiming("HELLO", 0, 10, pytest.approx(0.9)),
                                        WordTiming("WORLD", 12, 18, pytest.approx(0.9))]


def test_word_timings_from_the_beam_path(dictionary, hello_lm):
    lexicon, lm = hello_lm
    # WORLD's O heard as A (0.5) over O (0.3) on frames 13-14: greedy reads WARLD, the LM keeps WORLD
    frames = HELLO_WORLD[:12] + ["W", ("A", "O"), ("A", "O")] + HELLO_WORLD[14:]
    x = hand_emissions(dictionary, frames)
    greedy = ViterbiDecoder(dictionary)
    [[g]] = greedy.decode(x[None])
    beam = KenLMLexiconDecoder(dictionary, lexicon, lm)
    [[b]] = beam.decode(x[None])
    assert g.words == ["HELLO", "WARLD"] and b.words == ["HELLO", "WORLD"] and len(b.path) == len(frames)
    # the same frames, but the confidence is that of the letters each decoder chose: A at 0.5 or O at 0.3
    # (W R L D at 0.9 on frames 12, 15, 17, 18)
    assert greedy.word_timings(g, x)[1] == WordTiming("WARLD", 12, 19, pytest.approx((4 * 0.9 + 2 * 0.5) / 6))
    assert beam.word_timings(b, x) == [WordTiming("HELLO", 0, 10, pytest.approx(0.9)),
                                       WordTiming("WORLD", 12, 19, pytest.approx((4 * 0.9 + 2 * 0.3) / 6))]


@pytest.fixture(scope="module")
def phone_dictionary(tmp) -> Dictionary:
    """A TIMIT-like dict.phn.txt (39-phone symbols, no word boundary)."""
    path = tmp / "dict.phn.txt"
    path.write_text("sil 30\niy 9\nsh 8\nhh 7\nae 6\nd 5\n")
    return Dictionary.load(str(path))


def test_viterbi_token_level_for_phones(phone_dictionary, hello_lm):
    # sil sil _ sh iy iy _ iy sil hh ae d d: repeats collapse, the blank keeps the second iy
    frames = ["sil", "sil", BLANK, "sh", "iy", "iy", BLANK, "iy", "sil", "hh", "ae", "d", "d"]
    x = hand_emissions(phone_dictionary, frames)
    [[hyp]] = ViterbiDecoder(phone_dictionary, word_boundary=None).decode(x[None])
    assert hyp.words == ["sil", "sh", "iy", "iy", "sil", "hh", "ae", "d"]
    assert hyp.tokens == "sil sh iy iy sil hh ae d" and hyp.text == hyp.tokens
    assert hyp.score == pytest.approx(len(frames) * math.log(0.9), rel=1e-5)
    [[same]] = build_decoder("viterbi", phone_dictionary, word_boundary=None).decode(x[None])
    assert same == hyp
    # each phone's frames: sil 0-1, sh 3, iy 4-5, iy 7, sil 8, hh 9, ae 10, d 11-12
    spans = [(w.word, w.start_frame, w.end_frame) for w in ViterbiDecoder(phone_dictionary,
                                                                          word_boundary=None).word_timings(hyp, x)]
    assert spans == [("sil", 0, 2), ("sh", 3, 4), ("iy", 4, 6), ("iy", 7, 8), ("sil", 8, 9), ("hh", 9, 10),
                     ("ae", 10, 11), ("d", 11, 13)]
    with pytest.raises(ValueError, match=r"word boundary '\|' is not in .*word_boundary=None .*--labels phn"):
        ViterbiDecoder(phone_dictionary)
    lexicon, lm = hello_lm
    with pytest.raises(ValueError, match="needs a word boundary symbol"):
        KenLMLexiconDecoder(phone_dictionary, lexicon, lm, word_boundary=None)
    with pytest.raises(ValueError, match="needs a word boundary symbol"):
        KenLMLexiconFreeDecoder(phone_dictionary, lm, word_boundary=None)


def test_one_rule_says_what_a_phone_model_is(dictionary, phone_dictionary):
    """A dictionary without ``|`` is a phone model: decoded token by token, scored in PER, and sew-infer's default
    --labels phn; sew-infer refuses labels that disagree with the checkpoint's dictionary."""
    from types import SimpleNamespace

    from sew_fairseq.cli.infer import build_parser, resolve_labels
    from sew_fairseq.cli.options import decoder_from_arguments

    assert word_boundary_of(dictionary) == "|" and not is_phone_dictionary(dictionary)
    assert word_boundary_of(phone_dictionary) is None and is_phone_dictionary(phone_dictionary)
    phn, ltr = (SimpleNamespace(task=SimpleNamespace(labels=labels)) for labels in ("phn", "ltr"))
    args = build_parser().parse_args(["ckpt.pt", "--data", "d", "--split", "test"])
    assert resolve_labels(args, phn, phone_dictionary) is None and args.labels == "phn"
    assert decoder_from_arguments(args, phone_dictionary).silence is None  # token by token
    args = build_parser().parse_args(["ckpt.pt", "--data", "d", "--split", "test"])
    assert resolve_labels(args, ltr, dictionary) is None and args.labels == "wrd"
    assert decoder_from_arguments(args, dictionary).silence == dictionary.index("|")
    args = build_parser().parse_args(["ckpt.pt", "--data", "d", "--split", "test", "--labels", "wrd"])
    assert "fine-tuned on phones (task.labels=phn): score it with --labels phn" in resolve_labels(
        args, phn, phone_dictionary)
    args = build_parser().parse_args(["ckpt.pt", "--data", "d", "--split", "test", "--labels", "phn"])
    assert resolve_labels(args, ltr, dictionary) == ("--labels phn needs a checkpoint fine-tuned on phones "
                                                     "(task.labels=phn); ckpt.pt has task.labels=ltr")


@pytest.fixture(scope="module")
def hello_lm(tmp, dictionary):
    lexicon = build_lexicon(["HELLO", "WORLD", "WARLD", "HELL", "WORD"])
    sentences = ["HELLO WORLD", "HELLO WORLD", "HELL WORD", "HELLO WORD", "WARLD"]
    write_arpa(tmp / "hello.arpa", sentences, order=2)
    return lexicon, tmp / "hello.arpa"


def test_kenlm_lexicon_decoder_exact_words(dictionary, hello_lm):
    lexicon, lm = hello_lm
    clean = hand_emissions(dictionary, HELLO_WORLD)
    # "WORLD" whose O sounds more like A: greedy reads WARLD; the LM knows "HELLO WORLD"
    noisy = hand_emissions(dictionary, HELLO_WORLD[:12] + ["W", ("A", "O"), ("A", "O")] + HELLO_WORLD[14:])
    # the noisy one is cut after its last letter: no final '|' or blank (end_with_boundary completes
    # WORLD; without it flashlight returned HELLO WORD here, the only word that fits before a last '|')
    batch = torch.nn.utils.rnn.pad_sequence([clean, noisy[:-1]], batch_first=True)  # [2, T, V]
    lengths = torch.tensor([len(clean), len(noisy) - 1])
    assert [h[0].words for h in ViterbiDecoder(dictionary).decode(batch, lengths)] == \
        [["HELLO", "WORLD"], ["HELLO", "WARLD"]]
    dec = KenLMLexiconDecoder(dictionary, lexicon, lm, nbest=3)
    out = dec.decode(batch, lengths)
    assert [h[0].words for h in out] == [["HELLO", "WORLD"], ["HELLO", "WORLD"]]
    assert out[0][0].tokens == "H E L L O | W O R L D"
    no_end = KenLMLexiconDecoder(dictionary, lexicon, lm, end_with_boundary=False)
    assert [h[0].words for h in no_end.decode(batch, lengths)] == [["HELLO", "WORLD"], ["HELLO", "WORD"]]
    nbest = out[1]
    assert len(nbest) == 3 and len({tuple(h.words) for h in nbest}) == 3
    assert all(a.score >= b.score for a, b in zip(nbest, nbest[1:]))
    # the same decoder from files and the factory
    write_lexicon(lm.parent / "hello.lex", lexicon)
    dec2 = build_decoder("kenlm", str(lm.parent / "dict.ltr.txt"), lexicon=lm.parent / "hello.lex", lm=lm)
    assert dec2.decode(batch, lengths)[1][0].words == ["HELLO", "WORLD"]
    # an empty utterance decodes to nothing
    assert dec.decode(batch, torch.tensor([0, 5]))[0] == [Hypothesis([], "", 0.0)]


# --- noisy held-out emissions: LM decoding against greedy ------------------------------------------

DET = ["THE", "A"]
NOUN = ["CAT", "DOG", "BIRD", "FISH", "HORSE", "MOUSE"]
VERB = ["SEES", "CHASES", "LIKES", "FEEDS", "FOLLOWS"]
# lexicon words one letter away from in-domain words: acoustically confusable, absent from the LM text
NEIGHBOURS = {"CAT": ["BAT", "HAT", "COT"], "DOG": ["LOG", "FOG", "DIG"], "BIRD": ["BARD", "BIND"],
              "FISH": ["DISH", "WISH"], "HORSE": ["HOUSE", "NORSE"], "MOUSE": ["MOOSE", "LOUSE"],
              "SEES": ["SEAS", "SEEN"], "LIKES": ["BIKES", "LINES"], "FEEDS": ["NEEDS", "SEEDS"],
              "THE": ["SHE", "TIE"]}


def noisy_emissions(d: Dictionary, text: str, rng: random.Random, p_letter: float = 0.2,
                    p_swap: float = 0.3) -> torch.Tensor:
    """Log-probs [T, V] for ``text``: 2 frames per letter then a blank, ``|`` between words, logits
    N(0, 1) + 5 on the heard symbol. A letter is misheard with probability ``p_letter`` (a random letter
    gets +5, the true one +4), and a word with probability ``p_swap`` sounds like a lexicon neighbour
    (its differing letter favoured the same way)."""
    g = torch.Generator().manual_seed(rng.randrange(1 << 30))

    def frame(best: str, second: Optional[str] = None) -> torch.Tensor:
        x = torch.randn(len(d), generator=g)
        x[d.index(best)] += 5.0
        if second is not None:
            x[d.index(second)] += 4.0
        return x

    rows = []
    for i, word in enumerate(text.split()):
        if i:
            rows.append(frame("|"))
        heard = rng.choice(NEIGHBOURS[word]) if word in NEIGHBOURS and rng.random() < p_swap else word
        for c, h in zip(word, heard):
            if h != c:
                pair = (h, c)
            elif rng.random() < p_letter:
                pair = (rng.choice([x for x in LETTERS if x != c]), c)
            else:
                pair = (c, None)
            rows += [frame(*pair), frame(*pair), frame(BLANK)]
    return torch.log_softmax(torch.stack(rows), dim=-1)


@pytest.fixture(scope="module")
def grammar_task(tmp, dictionary):
    """400 sentences of DET NOUN VERB DET NOUN: 200 train the LMs, 20 held-out ones are decoded."""
    rng = random.Random(0)
    sentences = sorted({f"{a} {b} {c} {e} {f}" for a in DET for b in NOUN for c in VERB for e in DET for f in NOUN})
    rng.shuffle(sentences)
    train, test = sentences[:200], sentences[200:220]
    lexicon = build_lexicon([w for s in train for w in s.split()] + [n for v in NEIGHBOURS.values() for n in v])
    write_arpa(tmp / "grammar.arpa", train, order=3, vocabulary=lexicon)
    write_arpa(tmp / "grammar_letters.arpa", [to_letters(s) for s in train], order=5, vocabulary=LETTERS + ["|", "'"])
    ems = [noisy_emissions(dictionary, s, rng) for s in test]
    batch = torch.nn.utils.rnn.pad_sequence(ems, batch_first=True)  # [20, T, V]
    lengths = torch.tensor([len(e) for e in ems])
    return lexicon, test, batch, lengths


def _wer(decoder, task) -> float:
    _, refs, batch, lengths = task
    hyps = [nbest[0].text for nbest in decoder.decode(batch, lengths)]
    return wer(refs, hyps).rate


def test_kenlm_beats_viterbi_on_noisy_heldout(tmp, dictionary, grammar_task):
    # Measured here (torch 2.13 CPU, seed 0, 20 held-out sentences, 100 words / 436 characters):
    # viterbi WER 61% (CER 21%), lexicon only (lm_weight 0, word_score 0) 18% (the neighbour swaps
    # stay), lexicon + 3-gram KenLM (lm_weight 2, word_score -1, beam 50) 0%.
    lexicon = grammar_task[0]
    greedy = _wer(ViterbiDecoder(dictionary), grammar_task)
    lexicon_only = _wer(KenLMLexiconDecoder(dictionary, lexicon, tmp / "grammar.arpa", lm_weight=0.0,
                                            word_score=0.0), grammar_task)
    with_lm = _wer(KenLMLexiconDecoder(dictionary, lexicon, tmp / "grammar.arpa"), grammar_task)
    assert greedy > 0.3, "the noise must make greedy decoding fail often"
    assert with_lm < lexicon_only < greedy
    assert with_lm <= 0.05


def test_lexicon_free_decoder_with_letter_lm(tmp, dictionary, grammar_task):
    # Measured here: 5-gram letter LM (.ltr lines of the 200 training sentences), lm_weight 2:
    # WER 0% (lm_weight 1: 1%, CER 0.5%) against viterbi's 61% (CER 21%) on the same emissions.
    dec = build_decoder("kenlm-lexfree", dictionary, lm=tmp / "grammar_letters.arpa", lm_weight=2.0, nbest=2)
    [[best, second]] = dec.decode(hand_emissions(dictionary, ["T", "H", "E", "|", "C", "A", "T"])[None])
    assert best.words == ["THE", "CAT"] and best.tokens == "T H E | C A T"
    assert best.score >= second.score and best.tokens != second.tokens
    assert _wer(dec, grammar_task) < 0.5 * _wer(ViterbiDecoder(dictionary), grammar_task)
    assert _wer(dec, grammar_task) <= 0.05


# --- error cases ------------------------------------------------------------------------------------

def test_missing_files_are_named(tmp, dictionary, hello_lm):
    lexicon, lm = hello_lm
    with pytest.raises(ValueError, match="LM file not found: .*nope.arpa"):
        KenLMLexiconDecoder(dictionary, lexicon, tmp / "nope.arpa")
    with pytest.raises(ValueError, match="lexicon file not found: .*nope.lex"):
        KenLMLexiconDecoder(dictionary, tmp / "nope.lex", lm)
    with pytest.raises(ValueError, match="LM file not found: .*nope.bin"):
        build_decoder("kenlm-lexfree", dictionary, lm=tmp / "nope.bin")
    with pytest.raises(ValueError, match="letter dictionary not found: .*nope.txt"):
        build_decoder("viterbi", str(tmp / "nope.txt"))
    garbage = tmp / "garbage.arpa"
    garbage.write_text("this is not a language model\n")
    with pytest.raises(ValueError, match="cannot load the LM .*garbage.arpa"):
        KenLMLexiconFreeDecoder(dictionary, garbage)
    with pytest.raises(ValueError, match="unknown decoder kind 'beam'"):
        build_decoder("beam", dictionary)
    with pytest.raises(ValueError, match="needs lexicon="):
        build_decoder("kenlm", dictionary, lm=lm)


def test_lexicon_letter_not_in_dictionary(tmp, dictionary, hello_lm):
    _, lm = hello_lm
    path = tmp / "bad.lex"
    path.write_text("HELLO\tH E L L O |\nNAÏVE\tN A Ï V E |\n")
    with pytest.raises(ValueError, match=r"bad.lex:2: word 'NAÏVE' is spelled with 'Ï'"):
        KenLMLexiconDecoder(dictionary, path, lm)
    with pytest.raises(ValueError, match=r"lexicon entry 2: word 'hello' is spelled with 'h'"):
        KenLMLexiconDecoder(dictionary, {"WORLD": list("WORLD|"), "hello": list("hello|")}, lm)


def test_lm_vocabulary_report(tmp, dictionary, hello_lm):
    _, lm = hello_lm
    lexicon = build_lexicon(["HELLO", "WORLD", "GOODBYE", "MOON", "hello"])
    report = check_lm_vocabulary(lm, lexicon)
    assert not report.ok and report.missing == ["GOODBYE", "MOON", "hello"]
    assert report.lexicon_words == 5 and report.lm_words == 8  # 5 words + <s> </s> <unk>
    assert "3 of 5 lexicon words" in report.summary() and "'GOODBYE'" in report.summary()
    lexicon.pop("hello")
    with pytest.warns(UserWarning, match="2 of 4 lexicon words are not in the vocabulary"):
        KenLMLexiconDecoder(dictionary, lexicon, lm)
    with pytest.raises(ValueError, match="2 of 4 lexicon words .* e.g. 'GOODBYE', 'MOON'"):
        KenLMLexiconDecoder(dictionary, lexicon, lm, strict=True)
    with pytest.raises(ValueError, match="not in the vocabulary of the token-level LM"):
        KenLMLexiconFreeDecoder(dictionary, lm, strict=True)  # a word LM where a letter LM is needed


def test_emission_shape_errors(dictionary):
    dec = ViterbiDecoder(dictionary)
    with pytest.raises(ValueError, match="V=30 classes but the letter dictionary has 32 symbols"):
        dec.decode(torch.zeros(1, 5, 30))
    with pytest.raises(ValueError, match=r"\[B, T, V\] tensor, found \[5, 32\]"):
        dec.decode(torch.zeros(5, 32))
    with pytest.raises(ValueError, match=r"lengths must be 2 frame counts in \[0, 5\], found \[5, 6\]"):
        dec.decode(torch.zeros(2, 5, 32), torch.tensor([5, 6]))


# --- ARPA estimation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("order", [2, 3])
def test_arpa_normalises_in_kenlm(tmp, order):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary as FlDict

    rng = random.Random(order)
    lines = [" ".join(rng.choice(["a", "b", "c", "d", "e"]) for _ in range(rng.randint(1, 7))) for _ in range(60)]
    model = write_arpa(tmp / f"norm{order}.arpa", lines, order=order, vocabulary=["zzz"])
    assert model.max_normalisation_error() < 1e-9
    assert set(model.vocabulary) == {"<s>", "</s>", "<unk>", "a", "b", "c", "d", "e", "zzz"}
    reread = read_arpa(tmp / f"norm{order}.arpa")
    assert reread.max_normalisation_error() < 1e-5  # 7 decimals in the file

    vocab = model.vocabulary
    words = FlDict(vocab)
    lm = KenLM(str(tmp / f"norm{order}.arpa"), words)
    # every context of the model (through KenLM's own back-off), plus unseen ones
    contexts = [g for n in range(order - 1) for g in model.ngrams[n] if g[-1] != "</s>"]
    contexts += [("zzz",), ("e", "zzz")]
    for ctx in contexts:
        state = lm.start(False)  # <s> context; (s,) contexts are reached from here, others after it
        for w in (ctx[1:] if ctx[0] == "<s>" else ctx):
            state, _ = lm.score(state, words.get_index(w))
        probs = [10.0 ** lm.score(state, words.get_index(w))[1] for w in vocab if w not in ("<s>", "</s>")]
        total = sum(probs) + 10.0 ** lm.finish(state)[1]
        assert total == pytest.approx(1.0, abs=1e-5), ctx
        for w in ("a", "</s>", "zzz"):  # KenLM and the reference back-off agree
            ours = model.logprob(w, ("<s>",) + tuple(ctx) if ctx[0] != "<s>" else ctx)
            theirs = lm.finish(state)[1] if w == "</s>" else lm.score(state, words.get_index(w))[1]
            assert theirs == pytest.approx(ours, abs=1e-5), (ctx, w)


def test_arpa_hand_computed_bigram():
    # "a b" twice: bigram counts <s>a:2 ab:2 b</s>:2 -> D2 = 0.5 (no singletons), gamma(<s>) = 0.5*1/2
    model = estimate_arpa(["a b", "a b"], order=2)
    # unigrams: c(a)=c(b)=c(</s>)=2, N=6, D1=0.5, V={a,b,</s>,<unk>} -> floor = 0.5*3/6/4 = 1/16
    assert 10 ** model.logprob("<unk>") == pytest.approx(1 / 16)
    assert 10 ** model.logprob("a") == pytest.approx(1.5 / 6 + 1 / 16)
    # P(b|a) = (2-0.5)/2 + 0.25 * P(b)
    assert 10 ** model.logprob("b", ("a",)) == pytest.approx(0.75 + 0.25 * (1.5 / 6 + 1 / 16))
    assert 10 ** model.logprob("a", ("b",)) == pytest.approx(0.25 * (1.5 / 6 + 1 / 16))
    assert model.ngrams[0][("<s>",)][0] == -99.0
    with pytest.raises(ValueError, match="order must be between 2 and 6"):
        estimate_arpa(["a"], order=1)


# --- lexicon -----------------------------------------------------------------------------------------

def test_lexicon_round_trip(tmp):
    lex = build_lexicon(["HELLO", "WORLD", "HELLO", "it's"])
    assert lex == {"HELLO": list("HELLO|"), "WORLD": list("WORLD|"), "it's": ["i", "t", "'", "s", "|"]}
    write_lexicon(tmp / "rt.lex", lex)
    assert (tmp / "rt.lex").read_text().splitlines()[0] == "HELLO\tH E L L O |"
    assert read_lexicon(tmp / "rt.lex") == {w: [s] for w, s in lex.items()}
    assert to_letters("HELLO  WORLD") == "H E L L O | W O R L D |"
    (tmp / "a.wrd").write_text("HELLO WORLD\nGOODBYE WORLD\n")
    (tmp / "b.wrd").write_text("HELLO MOON\n")
    assert words_from_wrd_files([tmp / "a.wrd", tmp / "b.wrd"]) == ["HELLO", "WORLD", "GOODBYE", "MOON"]
    (tmp / "nospell.lex").write_text("HELLO H E L L O |\n\nWORLD\n")
    with pytest.raises(ValueError, match="nospell.lex:3: word 'WORLD' has no spelling"):
        read_lexicon(tmp / "nospell.lex")


# --- metrics -----------------------------------------------------------------------------------------

def test_wer_cer_hand_computed():
    # ref 6 words; hyp: "sat"->"sit" (S), "the" deleted (D), "today" inserted (I) -> 3 errors
    e = word_errors("the cat sat on the mat", "the cat sit on mat today")
    assert (e.errors, e.ref_len, e.rate) == (3, 6, 0.5)
    # "kitten" -> "sitting": k->s, e->i, +g = 3 over 6 characters
    c = char_errors("kitten", "sitting")
    assert (c.errors, c.ref_len) == (3, 6)
    # spaces count as characters unless ignored: "a b" vs "ab" = 1 deletion over 3, or 0 over 2
    assert tuple(char_errors("a b", "ab")[:2]) == (1, 3)
    assert tuple(char_errors("a b", "ab", ignore_spaces=True)[:2]) == (0, 2)
    corpus = wer(["a b c d", "e"], ["a x c d", ""])  # (1 + 1) / (4 + 1), not the mean of 0.25 and 1
    assert corpus.errors == 2 and corpus.ref_len == 5 and corpus.rate == pytest.approx(0.4)
    assert cer(["abc"], ["abd"]).rate == pytest.approx(1 / 3)
    assert word_errors("", "").rate == 0.0 and word_errors("", "x").rate == math.inf
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        wer(["a", "b"], ["a"])


def test_per_hand_computed():
    # sil is not scored: ref "sh iy hh ae d" (5), hyp "sh iy hh eh d" -> 1 substitution
    assert tuple(phone_errors("sil sh iy sil hh ae d sil", "sh iy hh eh d sil")) == (1, 5, 0.2)
    # scoring every symbol (Kaldi's TIMIT scoring): 8 reference phones, 2 sil deleted + 1 substitution
    assert tuple(phone_errors("sil sh iy sil hh ae d sil", "sh iy hh eh d sil", ignore=())[:2]) == (3, 8)
    corpus = per(["sil aa b", "k sil"], ["aa", "k t"])  # (1 deletion + 1 insertion) / (2 + 1)
    assert (corpus.errors, corpus.ref_len) == (2, 3) and corpus.rate == pytest.approx(2 / 3)
    assert per(["sil"], ["sil sil"]).rate == 0.0  # nothing left to score, nothing wrong
    with pytest.raises(ValueError, match="1 references but 2 hypotheses"):
        per(["a"], ["a", "b"])


def test_score_texts_is_what_sew_infer_and_sew_transcribe_report():
    words = score_texts(["the cat sat", "on the mat"], ["the cat sit", "on mat"])
    assert words == {"wer": pytest.approx(100 * 2 / 6), "cer": pytest.approx(100 * 5 / 21), "word_errors": 2,
                     "words": 6}
    phones = score_texts(["sil sh iy sil hh ae d sil"], ["sh iy hh eh d sil"], phones=True)
    assert phones == {"per": pytest.approx(20.0), "phone_errors": 1, "phones": 5, "per_ignores": ["sil"],
                      "per_with_sil": pytest.approx(100 * 3 / 8)}


# --- trn / tsv ---------------------------------------------------------------------------------------

def test_trn_format_and_round_trip(tmp):
    assert format_trn_line("utt-001", "HELLO   WORLD") == "HELLO WORLD (utt-001)"
    assert format_trn_line("spk 1 (a)", "") == "(spk_1_a)"
    assert sanitize_utt_id("1089-134686-0000") == "1089-134686-0000"
    entries = [("u1", "hello world"), ("u 2", "SAY (LOUD) THINGS"), ("u3", "")]
    write_trn(tmp / "hyp.trn", entries)
    assert (tmp / "hyp.trn").read_text() == "hello world (u1)\nSAY (LOUD) THINGS (u_2)\n(u3)\n"
    assert read_trn(tmp / "hyp.trn") == [("u1", "hello world"), ("u_2", "SAY (LOUD) THINGS"), ("u3", "")]
    with pytest.raises(ValueError, match="both become 'u_1'"):
        write_trn(tmp / "dup.trn", [("u 1", "a"), ("u(1)", "b")])
    (tmp / "bad.trn").write_text("ok (u1)\nno id here\n")
    with pytest.raises(ValueError, match=r"bad.trn:2: expected 'TEXT \(utt_id\)'"):
        read_trn(tmp / "bad.trn")


def test_utterance_tsv(tmp):
    rows = [UtteranceResult("u1", "the cat sat", "the cat sit"), UtteranceResult("u2", "a\tb", "a b", exit_layer=8)]
    write_utterance_tsv(tmp / "utt.tsv", rows)
    assert (tmp / "utt.tsv").read_text().splitlines() == [
        "id\tref\thyp\tword_errors\tref_words\texit_layer",
        "u1\tthe cat sat\tthe cat sit\t1\t3\t",
        "u2\ta b\ta b\t0\t2\t8",
    ]
    write_utterance_tsv(tmp / "utt2.tsv", rows[:1])
    assert (tmp / "utt2.tsv").read_text().splitlines()[0] == "id\tref\thyp\tword_errors\tref_words"
    write_utterance_tsv(tmp / "phn.tsv", [UtteranceResult("u1", "sil sh iy sil", "sh ih")], unit="phone",
                        ignore=("sil",))
    assert (tmp / "phn.tsv").read_text().splitlines() == ["id\tref\thyp\tphone_errors\tref_phones",
                                                          "u1\tsil sh iy sil\tsh ih\t1\t2"]


def test_decoding_imports_no_training_code():
    """Layout rule: decoding imports torch/editdistance/flashlight/fairseq's Dictionary, never models."""
    allowed_roots = {"torch", "editdistance", "flashlight", "__future__", "typing", "os", "re", "math",
                     "logging", "warnings", "collections", "dataclasses", "json",
                     "manifests"}  # the light layer: lexicon, ARPA LMs
    pkg = Path(__file__).resolve().parents[1] / "sew_fairseq" / "decoding"
    for path in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." if node.level else "") + (node.module or "")]
            else:
                continue
            for name in names:
                ok = name.startswith(".") or name.split(".")[0] in allowed_roots or name == "fairseq.data.dictionary"
                assert ok, f"{path.name} imports {name}"
