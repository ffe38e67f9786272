"""CTC fine-tuning (``sew_ctc``) of a pretrained checkpoint with fairseq's audio_finetuning task and ctc criterion."""
import re
import sys
from pathlib import Path

import pytest
import torch

from test_training import REPO, run, train_command  # noqa: I100  (tests/ is on sys.path under pytest)

RECIPES = REPO / "recipes" / "finetuning"
SPLITS = ["10m", "1h", "10h", "100h", "960h"]


@pytest.fixture(scope="module")
def letters_corpus(tmp_path_factory) -> Path:
    from sew_fairseq.demo_data import make_demo_corpus

    corpus = make_demo_corpus(tmp_path_factory.mktemp("ft") / "corpus", num_utterances=24, seed=0,
                              progress=False, num_voices=1)
    return Path(corpus.train_tsv).parent


def test_finetuning_recipes_follow_the_release():
    from omegaconf import OmegaConf

    for split in SPLITS:
        for name in (split, f"{split}_stable"):
            cfg = OmegaConf.load(RECIPES / f"{name}.yaml")
            assert cfg.model._name == "sew_ctc" and cfg.task._name == "audio_finetuning" and cfg.task.labels == "ltr"
            assert cfg.lr_scheduler._name == "tri_stage" and list(cfg.lr_scheduler.phase_ratio) == [0.1, 0.4, 0.5]
            assert cfg.lr_scheduler.final_lr_scale == 0.05 and cfg.model.feature_grad_mult == 0.0
            assert cfg.checkpoint.best_checkpoint_metric == "wer"
    # FACTS.md §2 (release): 100h lr 3e-5, 80k updates, mask_channel_prob 0.5, layerdrop 0.1;
    # 10h 5e-5, 20k, freeze 10k; 1h/10m 5e-5, 13k, mask_channel_prob 0.25, freeze 10k
    expected = {"100h": (3e-5, 80000, 0.5, 0.1, 0), "10h": (5e-5, 20000, 0.5, 0.05, 10000),
                "1h": (5e-5, 13000, 0.25, 0.1, 10000), "10m": (5e-5, 13000, 0.25, 0.1, 10000)}
    for split, (lr, updates, channel_prob, layerdrop, freeze) in expected.items():
        cfg = OmegaConf.load(RECIPES / f"{split}.yaml")
        assert (cfg.optimization.lr[0], cfg.optimization.max_update, cfg.model.mask_channel_prob,
                cfg.model.layerdrop, cfg.model.freeze_finetune_updates) == (lr, updates, channel_prob, layerdrop, freeze)
        stable = OmegaConf.load(RECIPES / f"{split}_stable.yaml")
        assert stable.model.freeze_finetune_updates == 0 and stable.model.activation_dropout == 0.0


def test_finetune_pretrained_sew_d_with_ctc(letters_corpus, tmp_path):
    pretrain = tmp_path / "pretrain"
    run(train_command(letters_corpus, pretrain, ["optimization.max_update=2"]))
    w2v = pretrain / "ckpt" / "checkpoint_last.pt"
    out = tmp_path / "finetune"
    log = run([str(Path(sys.executable).parent / "fairseq-hydra-train"), "--config-dir", str(RECIPES),
               "--config-name", "10h", f"common.user_dir={REPO / 'sew_fairseq'}", f"task.data={letters_corpus}",
               f"model.w2v_path={w2v}", "common.cpu=true", "common.log_format=simple", "common.log_interval=1",
               "dataset.train_subset=train", "dataset.valid_subset=valid", "dataset.num_workers=0",
               "dataset.max_tokens=64000", "dataset.validate_after_updates=0", "dataset.validate_interval=1",
               "optimization.max_update=4", "optimization.update_freq=[1]", "distributed_training.distributed_world_size=1",
               "model.freeze_finetune_updates=2", "model.mask_channel_length=8", "++model.mask_length=4",
               f"checkpoint.save_dir={out}/ckpt", f"hydra.run.dir={out}/hydra", "checkpoint.save_interval_updates=4"])
    valid = re.search(r"\[valid\]\[INFO\] - .*", log).group(0)
    assert re.search(r"\| wer [\d.]+", valid) and re.search(r"\| uer [\d.]+", valid), valid

    from fairseq import checkpoint_utils

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(out / "ckpt" / "checkpoint_last.pt")])
    model = models[0].eval()
    assert cfg.model._name == "sew_ctc"
    with torch.no_grad():
        emissions = model(source=torch.randn(1, 16000), padding_mask=None)["encoder_out"]  # [T, B, V]
    assert emissions.shape == (49, 1, len(task.target_dictionary))
