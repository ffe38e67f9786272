"""CTC fine-tuning (``sew_ctc``) of a pretrained checkpoint with fairseq's audio_finetuning task and ctc criterion."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

RECIPES = REPO / "recipes" / "finetuning"
SPLITS = ["10m", "1h", "10h", "100h", "960h"]


@pytest.fixture(scope="module")
def letters_corpus(tmp_path_factory) -> Path:
    from manifests.demo import prepare_demo

    corpus = prepare_demo(tmp_path_factory.mktemp("ft") / "corpus", num_utterances=24, seed=0,
                              progress=False, num_voices=1)
    return Path(corpus.train_tsv).parent


def test_finetuning_recipes_follow_the_release(run, pretrain_command):
    from omegaconf import OmegaConf

    for split in SPLITS:
        for name in (split, f"{split}_stable"):
            cfg = OmegaConf.load(RECIPES / f"{name}.yaml")
            assert cfg.model._name == "sew_ctc" and cfg.task._name == "audio_finetuning_checked"
            assert cfg.task.labels == "ltr"
            assert cfg.lr_scheduler._name == "tri_stage" and list(cfg.lr_scheduler.phase_ratio) == [0.1, 0.4, 0.5]
            assert cfg.lr_scheduler.final_lr_scale == 0.05 and cfg.model.feature_grad_mult == 0.0
            assert cfg.checkpoint.best_checkpoint_metric == "wer"
    # the release's fine-tuning scripts: 100h lr 3e-5, 80k updates, mask_channel_prob 0.5, layerdrop 0.1;
    # 10h 5e-5, 20k, freeze 10k; 1h/10m 5e-5, 13k, mask_channel_prob 0.25, freeze 10k
    expected = {"100h": (3e-5, 80000, 0.5, 0.1, 0), "10h": (5e-5, 20000, 0.5, 0.05, 10000),
                "1h": (5e-5, 13000, 0.25, 0.1, 10000), "10m": (5e-5, 13000, 0.25, 0.1, 10000)}
    for split, (lr, updates, channel_prob, layerdrop, freeze) in expected.items():
        cfg = OmegaConf.load(RECIPES / f"{split}.yaml")
        assert (cfg.optimization.lr[0], cfg.optimization.max_update, cfg.model.mask_channel_prob,
                cfg.model.layerdrop, cfg.model.freeze_finetune_updates) == (lr, updates, channel_prob, layerdrop,
                                                                            freeze)
        stable = OmegaConf.load(RECIPES / f"{split}_stable.yaml")
        assert stable.model.freeze_finetune_updates == 0 and stable.model.activation_dropout == 0.0


@pytest.fixture(scope="module")
def finetuned(letters_corpus, tmp_path_factory, run, pretrain_command):
    """(fine-tuned checkpoint, fairseq-hydra-train log): a tiny SEW-D pretrained 2 updates, fine-tuned 4."""
    tmp = tmp_path_factory.mktemp("runs")
    pretrain = tmp / "pretrain"
    run(pretrain_command(letters_corpus, pretrain, ["optimization.max_update=2"]))
    out = tmp / "finetune"
    log = run([str(Path(sys.executable).parent / "fairseq-hydra-train"), "--config-dir", str(RECIPES),
               "--config-name", "10h", f"common.user_dir={REPO / 'sew_fairseq'}", f"task.data={letters_corpus}",
               f"model.w2v_path={pretrain / 'ckpt' / 'checkpoint_last.pt'}", "common.cpu=true",
               "common.log_format=simple", "common.log_interval=1", "dataset.train_subset=train",
               "dataset.valid_subset=valid", "dataset.num_workers=0", "dataset.max_tokens=64000",
               "dataset.validate_after_updates=0", "dataset.validate_interval=1", "optimization.max_update=4",
               "optimization.update_freq=[1]", "distributed_training.distributed_world_size=1",
               "model.freeze_finetune_updates=2", "model.mask_channel_length=8", "++model.mask_length=4",
               f"checkpoint.save_dir={out}/ckpt", f"hydra.run.dir={out}/hydra", "checkpoint.save_interval_updates=4"])
    return out / "ckpt" / "checkpoint_last.pt", log


def test_finetune_pretrained_sew_d_with_ctc(finetuned):
    checkpoint, log = finetuned
    valid = re.search(r"\[valid\]\[INFO\] - .*", log).group(0)
    assert re.search(r"\| wer [\d.]+", valid) and re.search(r"\| uer [\d.]+", valid), valid

    from fairseq import checkpoint_utils

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    model = models[0].eval()
    assert cfg.model._name == "sew_ctc"
    with torch.no_grad():
        emissions = model(source=torch.randn(1, 16000), padding_mask=None)["encoder_out"]  # [T, B, V]
    assert emissions.shape == (49, 1, len(task.target_dictionary))


@pytest.mark.parametrize("recipe", ["sew_tiny", "w2v2_tiny"])
def test_finetune_other_backbones(recipe, letters_corpus, tmp_path, run, pretrain_command):
    """sew_ctc wraps every pretraining family of the plugin (sew_d is covered by the fixture above)."""
    pretrain = tmp_path / "pretrain"
    cmd = pretrain_command(letters_corpus, pretrain, ["optimization.max_update=1"])
    cmd[cmd.index("sew_d_tiny")] = recipe
    run(cmd)
    out = tmp_path / "finetune"
    run([str(Path(sys.executable).parent / "fairseq-hydra-train"), "--config-dir", str(RECIPES),
         "--config-name", "100h", f"common.user_dir={REPO / 'sew_fairseq'}", f"task.data={letters_corpus}",
         f"model.w2v_path={pretrain / 'ckpt' / 'checkpoint_last.pt'}", "common.cpu=true",
         "dataset.train_subset=train", "dataset.valid_subset=valid", "dataset.num_workers=0",
         "dataset.max_tokens=64000", "optimization.max_update=4", "optimization.update_freq=[1]",
         "distributed_training.distributed_world_size=1", "model.mask_channel_length=8", "++model.mask_length=4",
         f"checkpoint.save_dir={out}/ckpt", f"hydra.run.dir={out}/hydra"])
    from fairseq import checkpoint_utils

    models, cfg, _ = checkpoint_utils.load_model_ensemble_and_task([str(out / "ckpt" / "checkpoint_last.pt")])
    assert cfg.model.w2v_args.model._name == {"sew_tiny": "sew", "w2v2_tiny": "w2v2_mlp"}[recipe]


def sew_infer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "sew-infer"), *args, "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)


def test_sew_infer_viterbi_writes_sclite_trn(finetuned, letters_corpus, tmp_path):
    checkpoint, _ = finetuned
    proc = sew_infer(str(checkpoint), "--data", str(letters_corpus), "--split", "valid", "--results-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"valid: \d+ utterances, [\d.]+ s  WER [\d.]+  CER [\d.]+  RTF [\d.]+", proc.stdout)
    refs = (letters_corpus / "valid.wrd").read_text().splitlines()
    ids = [line.split("\t")[0].rsplit(".",
                                      1)[0] for line in (letters_corpus / "valid.tsv").read_text().splitlines()[1:]]
    ref_trn = (tmp_path / "ref.trn").read_text().splitlines()
    # sclite trn: "TEXT (utterance-id)", one line per utterance, in manifest order
    assert ref_trn == [f"{ref} ({i})" for ref, i in zip(refs, ids)]
    hyp_trn = (tmp_path / "hyp.trn").read_text().splitlines()
    # an untrained model spells anything, including fairseq's letter-level <unk>
    assert len(hyp_trn) == len(refs) and all(re.fullmatch(r"[A-Z'<>nuk ]*\((demo_\d+)\)", h) for h in hyp_trn)
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["utterances"] == len(refs) and summary["rtf"] > 0 and 0 <= summary["cer"]


def test_sew_infer_kenlm_and_tune(finetuned, letters_corpus, tmp_path):
    from manifests.lexicon import build_lexicon, words_from_wrd_files, write_lexicon
    from manifests.arpa import write_arpa

    checkpoint, _ = finetuned
    words = words_from_wrd_files([letters_corpus / "train.wrd", letters_corpus / "valid.wrd"])
    write_lexicon(tmp_path / "lexicon.txt", build_lexicon(words))
    write_arpa(tmp_path / "lm.arpa", (letters_corpus / "train.wrd").read_text().splitlines(), order=3)
    common = [str(checkpoint), "--data", str(letters_corpus), "--split", "valid", "--decoder", "kenlm",
              "--lexicon", str(tmp_path / "lexicon.txt"), "--lm", str(tmp_path / "lm.arpa"), "--beam", "8"]
    proc = sew_infer(*common, "--results-dir", str(tmp_path / "kenlm"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    hyps = [re.fullmatch(r"(.*?)\s*\(\S+\)", h).group(1).split()
            for h in (tmp_path / "kenlm" / "hyp.trn").read_text().splitlines()]
    assert all(w in words for h in hyps for w in h)  # a lexicon decoder only outputs lexicon words
    assert json.loads((tmp_path / "kenlm" / "results.json").read_text())["oov_words"] == 0
    # a lexicon without the valid split's words: the references' OOV words are counted and reported
    write_lexicon(tmp_path / "train_lexicon.txt", build_lexicon(words_from_wrd_files([letters_corpus / "train.wrd"])))
    valid_words = set(words_from_wrd_files([letters_corpus / "valid.wrd"]))
    missing = valid_words - set(words_from_wrd_files([letters_corpus / "train.wrd"]))
    oov = [w for line in (letters_corpus / "valid.wrd").read_text().splitlines() for w in line.split() if w in missing]
    lexicon, train_lexicon = str(tmp_path / "lexicon.txt"), str(tmp_path / "train_lexicon.txt")
    proc = sew_infer(*[a if a != lexicon else train_lexicon for a in common],
                     "--results-dir", str(tmp_path / "oov"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "oov" / "results.json").read_text())["oov_words"] == len(oov)
    assert oov and "are not in" in proc.stderr  # this corpus's valid split has words train lacks (PAINT, CAR)
    proc = sew_infer(*common, "--tune", "--tune-lm-weights", "0", "2", "--tune-word-scores", "-1", "1",
                     "--results-dir", str(tmp_path / "tune"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert len(result["trials"]) == 4 and result["best"]["wer"] == min(t["wer"] for t in result["trials"])


def test_sew_infer_bad_input(finetuned, letters_corpus, tmp_path):
    checkpoint, _ = finetuned
    data = tmp_path / "data"
    data.mkdir()
    for name in ("valid.tsv", "dict.ltr.txt"):
        (data / name).write_text((letters_corpus / name).read_text())
    (data / "valid.wrd").write_text("ONLY ONE LINE\n")
    proc = sew_infer(str(checkpoint), "--data", str(data), "--split", "valid")
    assert proc.returncode == 1 and "valid.wrd" in proc.stderr and "label_count_mismatch" in proc.stderr
    proc = sew_infer(str(checkpoint), "--data", str(data), "--split", "valid", "--decoder", "kenlm")
    assert proc.returncode == 2 and "needs --lm" in proc.stderr


def test_ctc_lm_wer_criterion_reports_the_kenlm_decode(finetuned, letters_corpus, tmp_path):
    import editdistance
    from fairseq import checkpoint_utils
    from fairseq.criterions import build_criterion
    from omegaconf import OmegaConf

    from sew_fairseq.criterions.ctc_lm_wer import CtcLMWerConfig
    from sew_fairseq.decoding import build_decoder
    from manifests.lexicon import build_lexicon, words_from_wrd_files, write_lexicon
    from manifests.arpa import write_arpa

    words = words_from_wrd_files([letters_corpus / "train.wrd", letters_corpus / "valid.wrd"])
    write_lexicon(tmp_path / "lexicon.txt", build_lexicon(words))
    write_arpa(tmp_path / "lm.arpa", (letters_corpus / "train.wrd").read_text().splitlines(), order=3)
    checkpoint, _ = finetuned
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)],
                                                                    arg_overrides={"data": str(letters_corpus)})
    model = models[0].eval()
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    cfg = OmegaConf.structured(CtcLMWerConfig(sentence_avg=True, wer_kenlm_model=str(tmp_path / "lm.arpa"),
                                              wer_lexicon=str(tmp_path / "lexicon.txt"), wer_beam=8))
    cfg._name = "ctc_lm_wer"
    criterion = build_criterion(cfg, task).eval()
    with torch.no_grad():
        _, _, log = criterion(model, sample)
        out = model(**sample["net_input"])
        lprobs = model.get_normalized_probs(out, log_probs=True).transpose(0, 1)  # [B, T, V]
    # the criterion's word errors are those of the same KenLM decode done directly
    decoder = build_decoder("kenlm", task.target_dictionary, lexicon=tmp_path / "lexicon.txt", lm=tmp_path / "lm.arpa",
                            beam=8, beam_size_token=min(50, len(task.target_dictionary)), beam_threshold=25.0,
                            lm_weight=2.0, word_score=-1.0, sil_score=0.0, unk_score=float("-inf"))
    refs = [(letters_corpus / "valid.wrd").read_text().splitlines()[i].split() for i in sample["id"].tolist()]
    lengths = (~out["padding_mask"]).sum(-1) if out.get("padding_mask") is not None else [lprobs.size(1)] * len(refs)
    errors = sum(editdistance.eval(decoder.decode(lp[:n].unsqueeze(0))[0][0].words, ref)
                 for lp, n, ref in zip(lprobs, lengths, refs))
    assert log["w_errors"] == errors and log["w_total"] == sum(len(r) for r in refs)


def _checked_task(data: Path):
    from fairseq.tasks import setup_task
    from omegaconf import OmegaConf

    import sew_fairseq  # noqa: F401
    from sew_fairseq.tasks.audio_finetuning_checked import AudioFinetuningCheckedConfig

    cfg = OmegaConf.structured(AudioFinetuningCheckedConfig(data=str(data), labels="ltr", tpu=False))
    cfg._name = "audio_finetuning_checked"
    return setup_task(cfg)


@pytest.mark.parametrize("damage,reason,line", [
    (lambda lines: lines[:-1], "label_count_mismatch", None),
    (lambda lines: [lines[0].replace("E", "7", 1)] + lines[1:], "unknown_symbol", 1),
    (lambda lines: lines[:1] + [""] + lines[2:], "empty_label", 2),
])
def test_finetuning_task_checks_labels(letters_corpus, tmp_path, damage, reason, line):
    from manifests.check import ManifestError

    for name in ("valid.tsv", "dict.ltr.txt"):
        (tmp_path / name).write_text((letters_corpus / name).read_text())
    labels = (letters_corpus / "valid.ltr").read_text().splitlines()
    (tmp_path / "valid.ltr").write_text("\n".join(damage(labels)) + "\n")
    task = _checked_task(tmp_path)
    with pytest.raises(ManifestError) as error:
        task.load_dataset("valid")
    assert error.value.reason == reason and error.value.line_no == line
    assert "valid.ltr" in str(error.value) and "Fix:" in str(error.value)


def test_finetuning_task_loads_a_good_split(letters_corpus):
    task = _checked_task(letters_corpus)
    task.load_dataset("valid")
    assert len(task.dataset("valid")) == len((letters_corpus / "valid.ltr").read_text().splitlines())
