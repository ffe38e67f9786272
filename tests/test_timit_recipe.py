"""recipes/timit.sh stages 0-2 on CPU on the TIMIT-layout tree of tests/timit_tree.py (real speech of LDC93S1):
manifests, phone CTC fine-tuning of a tiny random SEW-D (1 layer, D=64) with recipes/finetuning/timit.yaml and the
overrides below (300 updates at lr 2e-3 on the 5 training utterances: the CTC loss per phone falls about 8-fold; the
point is that every stage runs and prints a PER, not its value), greedy phone decoding of dev and test and the PER
table; then sew-infer's phone-specific errors. About 25-30 s on 2 CPU cores.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from timit_tree import EXPECTED, THIRTY_NINE, make_tree

REPO = Path(__file__).resolve().parents[1]
# the model of tests/test_training.py's TINY recipe (1 layer, D=64, WFE-C with 8 channels)
TINY_MODEL = dict(encoder_layers=1, encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_attention_heads=1,
                  wfe_channels=8, mlp_hidden_size=32, final_dim=32, latent_vars=16)
FINETUNE = ["common.log_format=simple", "common.log_interval=1", "common.seed=1", "dataset.num_workers=0",
            "dataset.max_tokens=64000", "dataset.validate_after_updates=0", "dataset.validate_interval=50",
            "checkpoint.save_interval=50", "optimization.max_update=300", "optimization.lr=[0.002]",
            "optimization.update_freq=[1]", "model.freeze_finetune_updates=0", "model.mask_channel_length=8",
            "++model.mask_length=4"]


def test_timit_yaml_is_the_10h_recipe_with_phone_labels():
    """recipes/finetuning/timit.yaml differs from 10h.yaml (the SEW release's base_10h) only where its header says."""
    from omegaconf import OmegaConf

    def flat(cfg, prefix=""):
        out = {}
        for k, v in cfg.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    def load(name):
        return flat(OmegaConf.to_container(OmegaConf.load(REPO / "recipes" / "finetuning" / f"{name}.yaml")))

    ten, timit = load("10h"), load("timit")
    changed = {k: (ten.get(k), timit.get(k)) for k in ten.keys() | timit.keys() if ten.get(k) != timit.get(k)}
    assert changed == {"task.labels": ("ltr", "phn"), "dataset.train_subset": ("train-10h", "train"),
                       "dataset.valid_subset": ("dev-other", "dev"), "criterion.post_process": (None, "none"),
                       "checkpoint.best_checkpoint_metric": ("wer", "uer")}


def tiny_pretrained(path: Path, data: Path) -> Path:
    """A randomly initialised tiny SEW-D pretraining checkpoint, as sew-train would save it (no update run)."""
    from sew_fairseq.checkpoints.plugin import atomic_save, checkpoint_dict, pretraining_cfg
    from sew_fairseq.models.presets import build_preset, preset_config

    model = build_preset("sew_d_tiny", **TINY_MODEL)
    cfg = preset_config("sew_d_tiny", **TINY_MODEL)
    atomic_save(checkpoint_dict(pretraining_cfg(cfg, False, str(data)), model.state_dict()), str(path))
    return path


def env():
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("timit_recipe")
    timit = make_tree(tmp / "corpus")
    pretrained = tiny_pretrained(tmp / "pretrained.pt", tmp / "corpus")
    work = tmp / "work"
    proc = subprocess.run(["bash", str(REPO / "recipes" / "timit.sh"), "--corpus-dir", str(timit), "--work-dir",
                           str(work), "--pretrained", str(pretrained), "--ngpu", "0", "--workers", "1",
                           "--finetune-args", " ".join(FINETUNE)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return work, proc.stdout


def trn(path: Path):
    return [re.fullmatch(r"(.*?)\s*\((\S+)\)", line).groups() for line in path.read_text().splitlines()]


def test_stages_0_to_2_print_a_per_table(recipe):
    work, out = recipe
    print(out[out.index("stage 2:"):])  # the PER table, for the record (pytest -s)
    for stage in ("stage 0: manifests", "stage 1: fine-tune", "stage 2: decode dev test"):
        assert stage in out
    rows = {m.group(1): (int(m.group(2)), float(m.group(3)), float(m.group(4)))
            for m in re.finditer(r"^(dev|test)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+$", out, re.M)}
    assert set(rows) == {"dev", "test"} and rows["dev"][0] == 2 and rows["test"][0] == 2, out[-2000:]
    log = (work / "finetune_timit" / "train.log").read_text()
    # validated on dev, scored in phone errors
    assert re.search(r"\[dev\]\[INFO\] - .*valid on .dev. subset .*\| uer [\d.]+", log), log[-2000:]
    assert "num_updates 300" in log
    nll = [float(x) for x in re.findall(r"\[train_inner\].* nll_loss=([\d.]+)", log)]
    assert len(nll) == 300 and nll[-1] < nll[0] / 2  # fine-tuning trained (CTC loss per phone)


def test_decoded_phones_and_their_per(recipe):
    from manifests.error_rates import per

    work, _ = recipe
    for split in ("dev", "test"):
        out = work / "finetune_timit" / f"decode-{split}"
        result = json.loads((out / "results.json").read_text())
        assert result["labels"] == "phn" and result["per_ignores"] == ["sil"] and "wer" not in result
        refs = trn(out / "ref.trn")
        assert [r for r, _ in refs] == [p for *_, p in EXPECTED[split]]  # references: the .phn lines
        hyps = trn(out / "hyp.trn")
        assert [i for _, i in hyps] == [i for _, i in refs]
        assert all(set(h.split()) <= set(THIRTY_NINE) | {"<unk>"} for h, _ in hyps)  # phones, no letters or '|'
        expected = per([r for r, _ in refs], [h for h, _ in hyps])
        assert result["per"] == pytest.approx(100 * expected.rate) and result["phones"] == expected.ref_len
        header = (out / "utterances.tsv").read_text().splitlines()[0]
        assert header == "id\tref\thyp\tphone_errors\tref_phones"


def test_sew_infer_refuses_words_or_lm_decoding_for_a_phone_model(recipe):
    work, _ = recipe
    ckpt = str(work / "finetune_timit" / "ckpt" / "checkpoint_best.pt")
    common = [ckpt, "--data", str(work / "data"), "--split", "test", "--quiet"]
    sew_infer = str(Path(sys.executable).parent / "sew-infer")
    proc = subprocess.run([sew_infer, *common, "--labels", "wrd"], capture_output=True, text=True, env=env())
    assert proc.returncode == 2 and "fine-tuned on phones (task.labels=phn)" in proc.stderr
    proc = subprocess.run([sew_infer, *common, "--labels", "phn", "--decoder", "kenlm", "--lm", "x", "--lexicon", "y"],
                          capture_output=True, text=True, env=env())
    assert proc.returncode == 2 and "--labels phn decodes phones greedily" in proc.stderr


def test_sew_transcribe_scores_phones_like_sew_infer(recipe, tmp_path):
    """sew-transcribe on the corpus folder (output stems = the manifest's ids) with the test split's ref.trn: the
    test utterances' phones and PER are sew-infer's."""
    work, _ = recipe
    ckpt = str(work / "finetune_timit" / "ckpt" / "checkpoint_best.pt")
    root = (work / "data" / "test.tsv").read_text().splitlines()[0]
    decoded = work / "finetune_timit" / "decode-test"
    proc = subprocess.run([str(Path(sys.executable).parent / "sew-transcribe"), ckpt, root, "--output-dir",
                           str(tmp_path), "--references", str(decoded / "ref.trn"), "--quiet"],
                          capture_output=True, text=True, env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    result = json.loads((decoded / "results.json").read_text())
    assert summary["scored"] == 2 and summary["per"] == pytest.approx(result["per"])
    assert summary["per_with_sil"] == pytest.approx(result["per_with_sil"]) and "PER" in proc.stdout
    for hyp, uid in trn(decoded / "hyp.trn"):
        assert (tmp_path / f"{uid}.txt").read_text().strip() == hyp
