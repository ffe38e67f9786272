"""`make demo`'s recipe end to end on the embedded corpus, with enough updates to learn:

pretraining's validation loss falls; CTC fine-tuning brings the held-out CER far below the same model's with an
untrained output layer; KenLM decoding beats greedy decoding on the held-out utterances.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    # `make demo`'s defaults, 400 pretraining and 600 fine-tuning updates: about 4.5 minutes on 2 CPU cores. Shorter
    # runs are not robust: with 150 and 400 updates the greedy CER was 39 % here and 56 % on the CI machine (its
    # CPU rounds differently, so training takes another path); with the defaults it was 15-23 % for seeds 1-3
    proc = subprocess.run(
        ["bash", str(REPO / "recipes" / "demo.sh"), "--work", str(work), "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return work, proc.stdout


def test_demo_pretraining_loss_falls(demo):
    work, out = demo
    assert (work / "corpus" / "train.tsv").exists()
    assert (work / "pretrain_continuous" / "ckpt" / "checkpoint_last.pt").exists()
    # stage 2's table: the first logged training loss against the last validation loss (continuous targets start
    # above chance level, log2(51) = 5.67 bits, and fall below it within 50 updates)
    table = out[out.index("stage 2:"):out.index("stage 3:")]
    train = [float(m.group(1)) for m in re.finditer(r"^train\s+\d+\s+([\d.]+)", table, re.M)]
    valid = [float(m.group(1)) for m in re.finditer(r"^valid\s+\d+\s+([\d.]+)", table, re.M)]
    assert train and valid and valid[-1] < min(train[0], 5.67), table


def test_demo_finetuning_and_decoding(demo):
    work, out = demo
    assert (work / "lm" / "lexicon.txt").exists() and (work / "lm" / "lm.arpa").exists()
    assert re.search(r"\[valid\].*\"valid_wer\"", out)  # LM WER during fine-tuning (ctc_lm_wer)
    table = {m.group(1): (float(m.group(2)), float(m.group(3)))
             for m in re.finditer(r"^(viterbi|kenlm)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)}
    assert set(table) == {"viterbi", "kenlm"}, out[-2000:]
    (viterbi_wer, viterbi_cer), (kenlm_wer, _) = table["viterbi"], table["kenlm"]
    assert kenlm_wer < viterbi_wer  # the LM and lexicon fix spelling errors of held-out utterances
    for decoder in ("viterbi", "kenlm"):
        assert json.loads((work / "finetune_continuous" / f"decode-valid-{decoder}" / "results.json").read_text())

    # the same fine-tuned encoder with its output layer re-initialised: what fine-tuning started from
    import torch

    from sew_fairseq.decoding import ViterbiDecoder
    from manifests.error_rates import cer
    from sew_fairseq.evaluate.splits import compute_emissions, read_split
    from sew_fairseq.checkpoints.ctc import load_ctc_model

    model, dictionary, _ = load_ctc_model(str(work / "finetune_continuous" / "ckpt" / "checkpoint_best.pt"),
                                          str(work / "corpus"))
    torch.manual_seed(0)
    model.w2v_encoder.proj.reset_parameters()
    utterances = read_split(str(work / "corpus"), "valid")
    emissions, _ = compute_emissions(model, utterances, progress=False)
    decoder = ViterbiDecoder(dictionary)
    hyps = [" ".join(decoder.decode(e.log_probs.unsqueeze(0))[0][0].words) for e in emissions]
    untrained_cer = 100 * cer([u.words for u in utterances], hyps).rate
    # an untrained letter layer spells noise (CER near or above 100 %); 600 updates of CTC bring the greedy CER
    # under half of it (measured: 15-23 % after 600 updates, see README)
    assert viterbi_cer < 0.5 * untrained_cer, (viterbi_cer, untrained_cer)


def test_demo_transcribe_equals_sew_infer_and_times_words(demo, tmp_path, capsys):
    """sew-transcribe greedy gives sew-infer's greedy transcript (stage 5's hyp.trn) on every held-out utterance, and
    on held-out speech joined by 1 s silences (known utterance spans) every word starts and ends inside the span of
    an utterance, about that utterance's number of words start in it, also when the recording is cut into 4 s
    chunks."""
    import numpy as np

    from sew_fairseq.cli.transcribe import main
    from manifests.trn import read_trn
    from sew_fairseq.evaluate.splits import load_audio, read_split
    from sew_fairseq.transcribe import Transcriber

    work, _ = demo
    ckpt = work / "finetune_continuous" / "ckpt" / "checkpoint_best.pt"
    utterances = read_split(str(work / "corpus"), "valid")
    listing = tmp_path / "valid.list"
    listing.write_text("".join(u.audio + "\n" for u in utterances))
    decoded = work / "finetune_continuous" / "decode-valid-viterbi"
    assert main([str(ckpt), f"@{listing}", "--output-dir", str(tmp_path / "out"), "--quiet",
                 "--references", str(decoded / "ref.trn")]) == 0
    capsys.readouterr()
    infer = dict(read_trn(decoded / "hyp.trn"))
    ours = {u.id: (tmp_path / "out" / f"{u.id}.txt").read_text().strip() for u in utterances}
    assert ours == infer and len(ours) == 40
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    infer_result = json.loads((decoded / "results.json").read_text())
    assert summary["scored"] == 40 and summary["wer"] == pytest.approx(infer_result["wer"])

    for chunk_seconds, count in ((20.0, 3), (4.0, 10)):
        tr = Transcriber.from_checkpoint(str(ckpt), chunk_seconds=chunk_seconds, overlap_seconds=1.0)
        gap = np.zeros(16000, np.float32)
        pieces, spans, t = [gap], [], 1.0
        for u in utterances[:count]:
            wave = load_audio(u, 16000)
            spans.append((t, t + len(wave) / 16000))
            pieces += [wave, gap]
            t += len(wave) / 16000 + 1.0
        result = tr.transcribe(np.concatenate(pieces), 16000)
        assert result.chunks == (1 if chunk_seconds == 20 else 14)

        def in_speech(t):  # inside an utterance's span, give or take 0.1 s (5 frames)
            return any(a - 0.1 <= t <= b + 0.1 for a, b in spans)

        # every word starts and ends in speech, never in a silence (a wrong time base or chunk offset puts many words
        # there); a word may still span a gap where the model ran two words together (seen: EIGHT FIND -> IGTFIND)
        stray = [w for w in result.words if not (w.start < w.end and in_speech(w.start) and in_speech(w.end))]
        assert not stray, (chunk_seconds, stray)
        counts = [sum(a - 0.1 <= w.start <= b + 0.1 for w in result.words) for a, b in spans]  # words starting there
        expected = [len(u.words.split()) for u in utterances[:count]]
        assert all(abs(a - b) <= 2 for a, b in zip(counts, expected)), (counts, expected)


def test_demo_aligns_held_out_speech_and_leaves_out_the_unspoken_line(demo):
    """Stage 6: 2 minutes of held-out utterances joined by random pauses, their text plus one line that is not
    spoken. Measured on four demo models trained on different days (docs/aligning.md): segments within 0.25 s at
    both ends 64-100 % (64 % on a model that misspells most held-out digits, as ctc-segmentation on its emissions),
    the manifest's padded cuts 64-100 %, every unspoken line found and no spoken one. Every machine trains another
    demo model, hence the loose bounds on the boundaries."""
    work, out = demo
    rows = json.loads((work / "align" / "results.json").read_text())
    ours = next(r for r in rows if r["system"] == "sew-align")
    cuts = next(r for r in rows if r["system"].startswith("sew-align cuts"))
    assert ours["unspoken_recall"] == 100 and ours["unspoken_precision"] == 100, ours["skipped_lines"]
    assert ours["within_0.25"] >= 50 and cuts["within_0.25"] >= 50, (ours, cuts)
    assert re.search(r"left out line \d+ \(not_spoken, score -[\d.]+; not spoken\)", out), out[-2000:]
