"""Early exit (``sew_ctc_early_exit``, ``ctc_early_exit``, ``sew-infer --early-exit``, ``sew-bench tradeoff``).

Small random backbones of each family check the exactness and the layer count of the layer-by-layer pass; a tiny
SEW-D pretrained for 2 updates is then trained jointly with its branches through ``fairseq-hydra-train`` on the
synthetic demo corpus, trained two-stage, decoded with early exit and swept by ``sew-bench tradeoff``. HuBERT-EE on
HuBERT itself (``recipes/finetuning/early_exit_hubert.yaml``: exits after 5, 8, 11 of 12 layers): the same checks on
a random 12-layer fairseq HuBERT, then the recipe on a HuBERT fine-tuned by fairseq (``hubert_ctc``, the session
fixture of tests/fairseq_made.py) and on transformers' ``HubertForCTC`` converted with ``sew-convert from-hf``.
"""
import csv
import json
import math
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

SMALL = dict(encoder_layers=4, encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_attention_heads=2,
             mlp_hidden_size=32, final_dim=32, quantize_targets=False, encoder_layerdrop=0.0)
BACKBONES = ["sew_tiny", "sew_d_tiny", "w2v2_tiny"]
V = 12  # letters of the toy dictionary


def build_model(preset: str, **overrides):
    """(early-exit model with random weights on a 4-layer ``preset`` backbone, the same model without branches)."""
    from omegaconf import OmegaConf

    from sew_fairseq.models.sew_ctc import SEWCtc
    from sew_fairseq.models.sew_ctc_early_exit import SEWCtcEarlyExit, SEWCtcEarlyExitConfig
    from sew_fairseq.models.presets import preset_config

    small = dict(SMALL, **({"wfe_channels": 32, "conv_pos": 16, "conv_pos_groups": 4} if preset.startswith("w2v2")
                           else {"wfe_channels": 8}))
    backbone = OmegaConf.to_container(preset_config(preset, **small))
    cfg = OmegaConf.structured(SEWCtcEarlyExitConfig(w2v_path="unused", normalize=False, data="unused", **overrides))
    cfg.w2v_args = OmegaConf.create({"model": backbone, "task": {"_name": "audio_pretraining", "data": "unused",
                                                                "normalize": False}})
    model = SEWCtcEarlyExit.build_model(cfg, types.SimpleNamespace(target_dictionary=list(range(V))))
    return model.eval(), SEWCtc(cfg, model.w2v_encoder).eval()


def backbone_layers(model):
    encoder = model.w2v_encoder.w2v_model.encoder
    return encoder.encoder.layer if hasattr(encoder, "encoder") else encoder.layers


def count_layer_calls(model) -> list:
    """A one-element list that counts the backbone layers called (forward hooks)."""
    calls = [0]
    for layer in backbone_layers(model):
        layer.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def padded_batch(samples: int = 16000):
    torch.manual_seed(1)
    source = torch.randn(2, samples)
    padding = torch.zeros(2, samples, dtype=torch.bool)
    padding[1, samples - 5000:] = True  # the second utterance is shorter
    return source, padding


def test_default_exit_layers_are_at_5_8_11_twelfths_of_the_depth():
    from sew_fairseq.models.sew_ctc_early_exit import default_exit_layers

    assert default_exit_layers(12) == [5, 8, 11]
    assert default_exit_layers(24) == [10, 16, 22]
    assert default_exit_layers(4) == [1, 2, 3]
    assert default_exit_layers(2) == [1]
    model, _ = build_model("sew_d_tiny")
    assert model.exit_layers == [1, 2, 3] and len(model.exit_branches) == 3
    with pytest.raises(ValueError, match="between 1 and 3"):
        build_model("sew_d_tiny", exit_layers=[2, 4])


def test_exit_criteria_values():
    from sew_fairseq.modules.early_exit import ExitRule, exit_confidence, exit_entropy

    uniform = torch.full((1, 3, V), -math.log(V))
    one_hot = torch.full((1, 3, V), -1e4)
    one_hot[..., 0] = 0.0
    # mean over frames and classes of -p log p: uniform = log(V) / V, certain = 0; confidence 1 / V and 1
    assert exit_entropy(uniform).item() == pytest.approx(math.log(V) / V)
    assert exit_entropy(one_hot).item() == 0.0 and exit_confidence(one_hot).item() == 1.0
    assert exit_confidence(uniform).item() == pytest.approx(1 / V)
    # padded frames do not count: an utterance certain on its 2 real frames and uniform on padding
    mixed = one_hot.clone()
    mixed[0, 2] = uniform[0, 2]
    padding = torch.tensor([[False, False, True]])
    assert exit_entropy(mixed, padding).item() == 0.0 and exit_confidence(mixed, padding).item() == 1.0
    assert ExitRule("entropy", 0.01).passes(one_hot).tolist() == [True]
    assert ExitRule("confidence", 0.5).passes(uniform).tolist() == [False]
    with pytest.raises(ValueError, match="entropy, confidence"):
        ExitRule("margin", 0.1).check()


@pytest.mark.parametrize("preset", BACKBONES)
def test_thresholds_that_never_fire_give_the_model_without_branches_exactly(preset):
    from sew_fairseq.modules.early_exit import ExitRule

    model, plain = build_model(preset)
    calls = count_layer_calls(model)
    source, padding = padded_batch()
    with torch.inference_mode():
        expected = plain(source=source, padding_mask=padding)
        calls[0] = 0
        for rule in (ExitRule("entropy", 0.0), ExitRule("confidence", 1.0)):  # entropy >= 0, confidence <= 1
            out = model.forward_early_exit(source, padding, rule)
            assert torch.equal(out.net_output["encoder_out"], expected["encoder_out"])
            assert out.exit_layer.tolist() == [4, 4] and out.layers_run == 4
        assert calls[0] == 8  # 4 layers per pass
        full = model(source=source, padding_mask=padding, return_exits=True)  # the training pass, in eval mode
    assert torch.equal(full["encoder_out"], expected["encoder_out"]) and sorted(full["exit_outputs"]) == [1, 2, 3]


@pytest.mark.parametrize("preset", BACKBONES)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_exit_at_layer_k_computes_k_layers(preset, k):
    from sew_fairseq.modules.early_exit import ExitRule

    model, _ = build_model(preset)
    # branch k predicts blank with certainty; the random branches before it are far from a confidence of 0.999
    branch = model.exit_branches[model.exit_layers.index(k)]
    with torch.no_grad():
        branch.proj.weight.zero_()
        branch.proj.bias.zero_()
        branch.proj.bias[0] = 50.0
    calls = count_layer_calls(model)
    source, padding = padded_batch()
    with torch.inference_mode():
        full = model(source=source, padding_mask=padding, return_exits=True)
        calls[0] = 0
        out = model.forward_early_exit(source, padding, ExitRule("confidence", 0.999))
    assert calls[0] == k and out.layers_run == k  # the layers after the exit were never run
    assert out.exit_layer.tolist() == [k, k]
    with torch.inference_mode():  # the emissions are branch k's
        log_probs = model.get_normalized_probs(out.net_output, log_probs=True)
        branch_out = {"encoder_out": full["exit_outputs"][k], "padding_mask": full["padding_mask"]}
        assert torch.equal(log_probs, model.get_normalized_probs(branch_out, log_probs=True))
    with torch.inference_mode():  # a threshold every branch passes: the first branch decides
        calls[0] = 0
        first = model.forward_early_exit(source, padding, ExitRule("entropy", 1.0))
    assert first.exit_layer.tolist() == [1, 1] and calls[0] == 1


def test_two_stage_freeze_trains_only_the_branches(run):
    model, _ = build_model("sew_d_tiny", freeze_backbone=True, no_pretrained_weights=True)
    model.train()
    assert model.exit_branches.training and not model.w2v_encoder.training  # backbone as at inference
    # a length no inference-mode test used: SEW-D caches its relative-position index per length (lru_cache), and
    # an index first made under torch.inference_mode cannot be used with autograd
    source, padding = padded_batch(17600)
    out = model(source=source, padding_mask=padding, return_exits=True)
    sum(v.logsumexp(-1).sum() for v in out["exit_outputs"].values()).backward()
    assert all(p.grad is None for p in model.w2v_encoder.parameters())
    assert all(p.grad is not None for p in model.exit_branches.parameters())
    # without the freeze, a mid-training step of the joint model reaches the backbone through the branches
    model, _ = build_model("sew_d_tiny")
    model.train()
    out = model(source=source, padding_mask=padding, return_exits=True)
    out["exit_outputs"][1].logsumexp(-1).sum().backward()
    first_layer = backbone_layers(model)[0]
    assert all(p.grad is not None for p in first_layer.parameters())


# ---------------------------------------------------------------- training and commands, through fairseq's trainer

PRETRAIN = [  # the tiny SEW-D of tests/test_training.py with 4 layers, so that it has room for 3 exits
    "model.encoder_layers=4", "model.encoder_embed_dim=64", "model.encoder_ffn_embed_dim=128",
    "model.encoder_attention_heads=1", "model.wfe_channels=8", "model.mlp_hidden_size=32", "model.final_dim=32",
    "model.latent_vars=16", "model.num_negatives=10", "model.mask_length=4", "model.encoder_layerdrop=0.0",
    "dataset.max_tokens=48000", "optimization.update_freq=[1]", "lr_scheduler.warmup_updates=2",
    "task.max_sample_size=32000", "task.min_sample_size=8000", "dataset.num_workers=0", "common.log_format=simple",
    "common.cpu=true", "common.seed=3", "optimization.max_update=2",
]


def finetune_command(recipe: str, data: Path, out: Path, extra) -> list:
    return [str(Path(sys.executable).parent / "fairseq-hydra-train"), "--config-dir",
            str(REPO / "recipes" / "finetuning"),
            "--config-name", recipe, f"common.user_dir={REPO / 'sew_fairseq'}", f"task.data={data}", "common.cpu=true",
            "common.log_format=json", "dataset.train_subset=train", "dataset.valid_subset=valid",
            "dataset.num_workers=0", "dataset.max_tokens=64000", "optimization.update_freq=[1]",
            "distributed_training.distributed_world_size=1", "dataset.validate_interval=100",
            f"checkpoint.save_dir={out}/ckpt", f"hydra.run.dir={out}/hydra"] + extra


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from manifests.demo import prepare_demo

    corpus = prepare_demo(tmp_path_factory.mktemp("ee") / "corpus", num_utterances=24, seed=0, progress=False,
                              num_voices=1)
    return Path(corpus.train_tsv).parent


@pytest.fixture(scope="module")
def joint(corpus, tmp_path_factory, run):
    """(checkpoint, training log): a 4-layer SEW-D pretrained 2 updates, then 40 updates of joint training."""
    tmp = tmp_path_factory.mktemp("ee_runs")
    run([sys.executable, "-m", "sew_fairseq.cli.train", "--config-dir", str(REPO / "recipes" / "pretraining"),
         "--config-name", "sew_d_tiny", f"task.data={corpus}", f"checkpoint.save_dir={tmp}/pretrain/ckpt",
         f"hydra.run.dir={tmp}/pretrain/hydra"] + ["++" + o for o in PRETRAIN])
    log = run(finetune_command("early_exit_joint", corpus, tmp / "joint", [
        f"model.w2v_path={tmp}/pretrain/ckpt/checkpoint_last.pt", "common.log_interval=5", "optimization.max_update=40",
        "optimization.lr=[0.002]", "model.mask_prob=0.1", "++model.mask_length=4", "model.mask_channel_prob=0",
        "model.layerdrop=0.0", "checkpoint.save_interval_updates=40"]))
    return tmp / "joint" / "ckpt" / "checkpoint_last.pt", log


def logged(log: str, tag: str):
    return [json.loads(m.group(1)) for m in re.finditer(r"\[" + tag + r"\]\[INFO\] - (\{.*\})", log)]


def test_joint_training_decreases_every_branch_loss(joint):
    checkpoint, log = joint
    train = logged(log, "train_inner")
    assert len(train) == 8, log[-3000:]
    keys = ["loss_final", "loss_exit1", "loss_exit2", "loss_exit3"]
    for row in train:  # the optimised loss is the final CTC plus lambda (1) times each branch's
        assert float(row["loss"]) == pytest.approx(sum(float(row[k]) for k in keys), rel=1e-3, abs=0.01)
    for key in keys:
        first = sum(float(r[key]) for r in train[:2]) / 2
        last = sum(float(r[key]) for r in train[-2:]) / 2
        assert last < 0.6 * first, (key, [r[key] for r in train])
    valid = logged(log, "valid")[-1]
    for k in (1, 2, 3):  # greedy error rates of each branch at validation
        assert 0 <= float(valid[f"valid_uer_exit{k}"]) and 0 <= float(valid[f"valid_wer_exit{k}"])
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["cfg"]["model"]["_name"] == "sew_ctc_early_exit"
    assert any(k.startswith("exit_branches.2.upsample.0.") for k in state["model"])  # SEW-D: branches upsample


def test_two_stage_trains_only_the_branches(joint, corpus, tmp_path, run):
    checkpoint, _ = joint
    run(finetune_command("early_exit_two_stage", corpus, tmp_path, [
        f"model.finetuned_path={checkpoint}", "common.log_interval=1", "optimization.max_update=3",
        "checkpoint.save_interval_updates=3"]))
    before = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    after = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", map_location="cpu", weights_only=False)["model"]
    backbone = [k for k in after if k.startswith("w2v_encoder.")]
    assert backbone and all(torch.equal(after[k], before[k]) for k in backbone)
    assert not torch.equal(after["exit_branches.0.proj.weight"], before["exit_branches.0.proj.weight"])
    from sew_fairseq.checkpoints.ctc import load_ctc_model  # the stage-2 checkpoint loads for inference

    model, _, cfg = load_ctc_model(str(tmp_path / "ckpt" / "checkpoint_last.pt"), str(corpus))
    assert model.exit_layers == [1, 2, 3] and cfg.model.freeze_backbone


def sew(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / args[0]), *args[1:], "--quiet"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)


def test_sew_infer_early_exit_reports_histogram_wer_and_rtf(joint, corpus, tmp_path):
    checkpoint, _ = joint
    common = [str(checkpoint), "--data", str(corpus), "--split", "valid"]
    proc = sew("sew-infer", *common, "--results-dir", str(tmp_path / "plain"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    n = plain["utterances"]
    # never fires: the final layer for every utterance, the plain model's hypotheses
    proc = sew("sew-infer", *common, "--early-exit", "entropy", "--exit-threshold", "0", "--results-dir",
               str(tmp_path / "never"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    never = json.loads((tmp_path / "never" / "results.json").read_text())
    assert never["early_exit"]["exit_layer_histogram"] == {"4": n} and never["wer"] == plain["wer"]
    assert (tmp_path / "never" / "hyp.trn").read_text() == (tmp_path / "plain" / "hyp.trn").read_text()
    # always fires: the first branch (after layer 1) for every utterance
    proc = sew("sew-infer", *common, "--early-exit", "confidence", "--exit-threshold", "0", "--results-dir",
               str(tmp_path / "first"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = json.loads((tmp_path / "first" / "results.json").read_text())
    ee = first["early_exit"]
    assert ee["exit_layer_histogram"] == {"1": n} and ee["mean_layers"] == 1 and ee["exit_layers"] == [1, 2, 3]
    assert first["rtf"] > 0 and 0 <= first["wer"] and "utterances per exit layer {'1': " in proc.stdout
    rows = (tmp_path / "first" / "utterances.tsv").read_text().splitlines()
    assert rows[0].endswith("\texit_layer") and len(rows) == n + 1 and all(r.endswith("\t1") for r in rows[1:])
    proc = sew("sew-infer", *common, "--exit-threshold", "0.1")
    assert proc.returncode == 2 and "needs --early-exit" in proc.stderr


def test_sew_bench_tradeoff_writes_csv_and_png(joint, corpus, tmp_path):
    checkpoint, _ = joint
    proc = sew("sew-bench", "tradeoff", str(checkpoint), "--data", str(corpus), "--split", "valid", "--repeats", "1",
               "--entropy-thresholds", "0", "10", "--confidence-thresholds", "0.5", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "tradeoff.csv").open()))
    assert [(r["point"], r["criterion"], r["threshold"]) for r in rows] == [
        ("no exit", "", ""), ("exit", "entropy", "0"), ("exit", "entropy", "10"), ("exit", "confidence", "0.5")]
    n = len((corpus / "valid.wrd").read_text().splitlines())
    assert rows[1]["wer"] == rows[0]["wer"] and rows[1]["exit_layer_histogram"] == f"4:{n}"  # never fires
    assert rows[2]["exit_layer_histogram"] == f"1:{n}" and float(rows[2]["mean_layers"]) == 1.0  # always fires
    assert all(float(r["forward_seconds"]) > 0 for r in rows)
    assert (tmp_path / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sew_d, 4 layers, D=64" in proc.stdout


def test_sew_transcribe_early_exit(joint, corpus, tmp_path):
    checkpoint, _ = joint
    audio = sorted((corpus / "audio").iterdir())[:3]
    outs = {}
    for name, extra in (("plain", []), ("never", ["--early-exit", "entropy", "--exit-threshold", "0"]),
                        ("first", ["--early-exit", "confidence", "--exit-threshold", "0"])):
        proc = sew("sew-transcribe", str(checkpoint), *map(str, audio), "--output-dir", str(tmp_path / name),
                   "--formats", "json", *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[name] = [json.loads((tmp_path / name / f"{a.stem}.json").read_text()) for a in audio]
    assert [o["text"] for o in outs["never"]] == [o["text"] for o in outs["plain"]]
    assert all(o["exit_layers"] == [4] for o in outs["never"]) and "exit_layers" not in outs["plain"][0]
    assert all(o["exit_layers"] == [1] for o in outs["first"])


# ---------------------------------------------------------------- HuBERT-EE on HuBERT
# (recipes/finetuning/early_exit_hubert)

HUBERT_RECIPE = REPO / "recipes" / "finetuning" / "early_exit_hubert.yaml"
TINY_HUBERT = dict(_name="hubert", encoder_layers=12, encoder_embed_dim=64, encoder_ffn_embed_dim=128,
                   encoder_attention_heads=2, conv_feature_layers="[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",
                   conv_pos=16, conv_pos_groups=4, label_rate=50.0, encoder_layerdrop=0.0)


def test_hubert_ee_recipe_is_the_papers_setting():
    from omegaconf import OmegaConf

    from sew_fairseq.models.sew_ctc_early_exit import default_exit_layers

    cfg = OmegaConf.load(HUBERT_RECIPE)
    assert cfg.model._name == "sew_ctc_early_exit" and cfg.criterion._name == "ctc_early_exit"
    assert list(cfg.model.exit_layers) == [5, 8, 11] == default_exit_layers(12)  # HuBERT-EE: after 5, 8, 11 of 12
    assert cfg.model.freeze_backbone and OmegaConf.is_missing(cfg.model, "finetuned_path")
    assert cfg.model.exit_loss_weight == 1.0  # lambda = 1
    # the documented large override: the same fractions of 24 layers
    assert "'model.exit_layers=[10,16,22]' task.normalize=true" in HUBERT_RECIPE.read_text()
    assert default_exit_layers(24) == [10, 16, 22]


def build_hubert_model(**overrides):
    """(HuBERT-EE model on a random 12-layer fairseq HuBERT with the recipe's exits, the same model without
    branches)."""
    from omegaconf import OmegaConf

    from sew_fairseq.models.hubert import HubertBackbone
    from sew_fairseq.models.sew_ctc import SEWCtc
    from sew_fairseq.models.sew_ctc_early_exit import SEWCtcEarlyExit, SEWCtcEarlyExitConfig

    exits = list(OmegaConf.load(HUBERT_RECIPE).model.exit_layers)
    cfg = OmegaConf.structured(SEWCtcEarlyExitConfig(w2v_path="unused", normalize=False, data="unused",
                                                     exit_layers=exits, **overrides))
    cfg.w2v_args = OmegaConf.create({"model": TINY_HUBERT, "task": {
        "_name": "hubert_pretraining", "data": "unused", "labels": ["km"], "label_rate": 50.0, "normalize": False}})
    model = SEWCtcEarlyExit.build_model(cfg, types.SimpleNamespace(target_dictionary=list(range(V))))
    assert isinstance(model.w2v_encoder.w2v_model, HubertBackbone)
    return model.eval(), SEWCtc(cfg, model.w2v_encoder).eval()


def test_hubert_ee_thresholds_that_never_fire_give_the_model_without_branches_exactly():
    from sew_fairseq.modules.early_exit import ExitRule

    model, plain = build_hubert_model()
    calls = count_layer_calls(model)
    source, padding = padded_batch()
    with torch.inference_mode():
        expected = plain(source=source, padding_mask=padding)
        calls[0] = 0
        for rule in (ExitRule("entropy", 0.0), ExitRule("confidence", 1.0)):
            out = model.forward_early_exit(source, padding, rule)
            assert torch.equal(out.net_output["encoder_out"], expected["encoder_out"])
            assert out.exit_layer.tolist() == [12, 12] and out.layers_run == 12
        assert calls[0] == 24  # 12 layers per pass
        full = model(source=source, padding_mask=padding, return_exits=True)
    assert torch.equal(full["encoder_out"], expected["encoder_out"]) and sorted(full["exit_outputs"]) == [5, 8, 11]


@pytest.mark.parametrize("k", [5, 8, 11])
def test_hubert_ee_exit_after_layer_k_computes_k_layers(k, run):
    from sew_fairseq.modules.early_exit import ExitRule

    model, _ = build_hubert_model()
    branch = model.exit_branches[model.exit_layers.index(k)]
    with torch.no_grad():  # branch k predicts blank with certainty
        branch.proj.weight.zero_()
        branch.proj.bias.zero_()
        branch.proj.bias[0] = 50.0
    calls = count_layer_calls(model)
    source, padding = padded_batch()
    with torch.inference_mode():
        full = model(source=source, padding_mask=padding, return_exits=True)
        calls[0] = 0
        out = model.forward_early_exit(source, padding, ExitRule("confidence", 0.999))
        branch_out = {"encoder_out": full["exit_outputs"][k], "padding_mask": full["padding_mask"]}
        assert torch.equal(model.get_normalized_probs(out.net_output, log_probs=True),
                           model.get_normalized_probs(branch_out, log_probs=True))
    assert calls[0] == k and out.layers_run == k and out.exit_layer.tolist() == [k, k]


def hubert_two_stage(run, finetuned: Path, corpus: Path, out: Path):
    """(checkpoint, log) of the HuBERT-EE recipe for 3 updates from a fine-tuned HuBERT."""
    log = run(finetune_command("early_exit_hubert", corpus, out, [
        f"model.finetuned_path={finetuned}", "common.log_interval=1", "optimization.max_update=3",
        "checkpoint.save_interval_updates=3"]))
    return out / "ckpt" / "checkpoint_last.pt", log


def trained_parameters(log: str) -> int:
    """The count fairseq's trainer logs as trained ("num. model params: N (num. trained: M)")."""
    return int(re.search(r"num\. trained: ([\d,]+)", log).group(1).replace(",", ""))


def test_hubert_ee_two_stage_on_fairseqs_hubert_ctc(fairseq_made, tmp_path, run):
    """The recipe on a HuBERT fine-tuned by fairseq itself (hubert_ctc); early exit counts the layers it ran."""
    from sew_fairseq.checkpoints.safe_load import safe_load

    checkpoint, log = hubert_two_stage(run, fairseq_made.hubert_ctc, fairseq_made.corpus, tmp_path)
    before = safe_load(fairseq_made.hubert_ctc)["model"]
    after = safe_load(checkpoint)["model"]
    backbone = [k for k in after if k.startswith("w2v_encoder.")]
    assert sorted(backbone) == sorted(k for k in before if not k.endswith(".label_embs_concat"))
    assert all(torch.equal(after[k], before[k]) for k in backbone)  # frozen: stage 1's weights
    branches = sum(v.numel() for k, v in after.items() if k.startswith("exit_branches."))
    assert trained_parameters(log) == branches  # only the branches had gradients
    assert all(f'"loss_exit{k}"' in log for k in (5, 8, 11))  # json logs
    common = [str(checkpoint), "--data", str(fairseq_made.corpus), "--split", "valid"]
    n = len((fairseq_made.corpus / "valid.wrd").read_text().splitlines())
    proc = sew("sew-infer", *common, "--results-dir", str(tmp_path / "plain"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rule, threshold, histogram in (("entropy", "0", {"12": n}), ("confidence", "0", {"5": n})):
        proc = sew("sew-infer", *common, "--early-exit", rule, "--exit-threshold", threshold, "--results-dir",
                   str(tmp_path / rule))
        assert proc.returncode == 0, proc.stderr[-3000:]
        ee = json.loads((tmp_path / rule / "results.json").read_text())["early_exit"]
        assert ee["exit_layer_histogram"] == histogram and ee["exit_layers"] == [5, 8, 11]
    # never exiting gives the plain model's transcripts
    assert (tmp_path / "entropy" / "hyp.trn").read_text() == (tmp_path / "plain" / "hyp.trn").read_text()


def test_two_stage_on_fairseqs_wav2vec_ctc(fairseq_made, tmp_path, run):
    """Stage 2 from a wav2vec 2.0 fine-tuned by fairseq itself (wav2vec_ctc): default exits 5, 8, 11 of 12."""
    from sew_fairseq.checkpoints.safe_load import safe_load

    log = run(finetune_command("early_exit_two_stage", fairseq_made.corpus, tmp_path, [
        f"model.finetuned_path={fairseq_made.wav2vec_ctc}", "common.log_interval=1", "optimization.max_update=2"]))
    before = safe_load(fairseq_made.wav2vec_ctc)["model"]
    after = safe_load(tmp_path / "ckpt" / "checkpoint_last.pt")["model"]
    assert sorted(k for k in after if k.startswith("w2v_encoder.")) == sorted(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert trained_parameters(log) == sum(v.numel() for k, v in after.items() if k.startswith("exit_branches."))
    assert all(f'"loss_exit{k}"' in log for k in (5, 8, 11))


def test_hubert_ee_two_stage_on_transformers_hubert_for_ctc(fairseq_made, tmp_path, run):
    """The recipe on transformers' HubertForCTC (large style: pre-LN, 12 layers) after sew-convert from-hf."""
    pytest.importorskip("transformers")
    from fairseq.data import Dictionary

    from convert_helpers import write_hf_w2v2_dir
    from sew_fairseq.checkpoints.hf import from_hf

    letters = fairseq_made.corpus / "dict.ltr.txt"
    write_hf_w2v2_dir(tmp_path / "hf", "hubert", "large", ctc=True, num_hidden_layers=12,
                      vocab_size=len(Dictionary.load(str(letters))))
    from_hf(str(tmp_path / "hf"), str(tmp_path / "stage1.pt"), str(letters))
    checkpoint, log = hubert_two_stage(run, tmp_path / "stage1.pt", fairseq_made.corpus, tmp_path / "ee")
    assert all(f'"loss_exit{k}"' in log for k in (5, 8, 11))
    proc = sew("sew-infer", str(checkpoint), "--data", str(fairseq_made.corpus), "--split", "valid", "--early-exit",
               "confidence", "--exit-threshold", "0", "--results-dir", str(tmp_path / "first"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    n = len((fairseq_made.corpus / "valid.wrd").read_text().splitlines())
    first = json.loads((tmp_path / "first" / "results.json").read_text())
    assert first["early_exit"]["exit_layer_histogram"] == {"5": n}
