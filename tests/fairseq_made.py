"""Small wav2vec 2.0 and HuBERT checkpoints built and saved by fairseq itself (the session fixture ``fairseq_made``).

fairseq's own recipes as installed with it (``examples/hubert/config/pretrain/hubert_base_librispeech.yaml``,
``examples/hubert/config/finetune/base_10h.yaml``, ``examples/wav2vec/config/pretraining/
wav2vec2_base_librispeech.yaml``, ``examples/wav2vec/config/finetuning/base_10h.yaml``), its tasks
(``hubert_pretraining`` on generated k-means labels, ``audio_pretraining``, ``audio_finetuning``), models (``hubert``,
``wav2vec2``, ``hubert_ctc``, ``wav2vec_ctc``) and criteria, through ``fairseq-hydra-train``, 2 updates each on the
synthetic demo corpus, with a tiny model: 12 layers of width 64 (so that HuBERT-EE's exits after layers 5, 8 and 11
apply as they are) on a 32-channel copy of the wav2vec 2.0 extractor. ``common.user_dir`` loads this plugin only for
its fixes to fairseq on current software (``sew_fairseq/compat/``; without them fairseq's ``hubert_ctc`` does not
build at all).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLUSTERS = 8  # k-means classes of the generated HuBERT labels
LABEL_RATE = 50  # labels per second: one per extractor frame (320 samples at 16 kHz)

TINY_MODEL = [
    "++model.encoder_layers=12", "++model.encoder_embed_dim=64", "++model.encoder_ffn_embed_dim=128",
    "++model.encoder_attention_heads=2", "++model.conv_feature_layers='[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2'",
    "++model.conv_pos=16", "++model.conv_pos_groups=4", "++model.final_dim=16",
]
ON_CPU = [
    f"common.user_dir={REPO / 'sew_fairseq'}", "common.cpu=true", "common.fp16=false", "common.log_format=simple",
    "common.log_interval=1", "common.seed=1", "distributed_training.distributed_world_size=1",
    "++distributed_training.nprocs_per_node=1", "distributed_training.ddp_backend=legacy_ddp",
    "dataset.num_workers=0", "dataset.max_tokens=64000", "optimization.max_update=2",
]
FINETUNING = ["model.freeze_finetune_updates=0", "++model.mask_length=4", "model.mask_channel_length=8",
              "dataset.validate_after_updates=0", "dataset.valid_subset=valid", "++optimization.update_freq=[1]"]


class FairseqMade(NamedTuple):
    corpus: Path  # the demo corpus: train/valid manifests, .ltr/.wrd labels, dict.ltr.txt
    km_dir: Path  # the generated HuBERT labels: {train,valid}.km, dict.km.txt
    hubert: Path  # fairseq `hubert` pretrained (hubert_pretraining)
    wav2vec2: Path  # fairseq `wav2vec2` pretrained (audio_pretraining)
    hubert_ctc: Path  # fairseq `hubert_ctc` fine-tuned from `hubert` (hubert_pretraining, fine_tuning: true)
    wav2vec_ctc: Path  # fairseq `wav2vec_ctc` fine-tuned from `wav2vec2` (audio_finetuning)


def fairseq_examples() -> Path:
    import fairseq

    path = Path(fairseq.__file__).resolve().parent / "examples"
    if not (path / "hubert" / "config").is_dir():
        raise FileNotFoundError(f"{path}: fairseq's example configs are not installed with this fairseq")
    return path


def write_km_labels(corpus: Path, out: Path, seed: int = 0) -> Path:
    """Random frame labels (``<split>.km``, one line per utterance, LABEL_RATE labels per second) and dict.km.txt."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split in ("train", "valid"):
        lines = (corpus / f"{split}.tsv").read_text().splitlines()[1:]
        labels = [" ".join(str(k) for k in rng.integers(0, CLUSTERS, int(line.split("\t")[1]) * LABEL_RATE // 16000))
                  for line in lines]
        (out / f"{split}.km").write_text("\n".join(labels) + "\n")
    (out / "dict.km.txt").write_text("".join(f"{k} 1\n" for k in range(CLUSTERS)))
    return out


def fairseq_train(config_dir: Path, config_name: str, out: Path, overrides: List[str]) -> Path:
    """``fairseq-hydra-train`` of fairseq's recipe ``config_name`` on the CPU; its ``checkpoint_last.pt``."""
    cmd = [str(Path(sys.executable).parent / "fairseq-hydra-train"), "--config-dir", str(config_dir),
           "--config-name", config_name, *ON_CPU, f"checkpoint.save_dir={out}/ckpt", f"hydra.run.dir={out}/hydra",
           *overrides]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return out / "ckpt" / "checkpoint_last.pt"


def make_fairseq_checkpoints(root: Path) -> FairseqMade:
    from manifests.demo import prepare_demo

    corpus = Path(prepare_demo(root / "corpus", num_utterances=10, seed=0, progress=False,
                                   num_voices=1).train_tsv).parent
    km = write_km_labels(corpus, root / "km")
    examples = fairseq_examples()
    crop = ["task.max_sample_size=32000", "task.min_sample_size=8000", "lr_scheduler.warmup_updates=1"]
    hubert = fairseq_train(examples / "hubert" / "config" / "pretrain", "hubert_base_librispeech", root / "hubert", [
        f"task.data={corpus}", f"task.label_dir={km}", "task.labels=[km]", f"model.label_rate={LABEL_RATE}",
        *crop, *TINY_MODEL])
    wav2vec2 = fairseq_train(examples / "wav2vec" / "config" / "pretraining", "wav2vec2_base_librispeech",
                             root / "wav2vec2", [f"task.data={corpus}", *crop, *TINY_MODEL, "++model.latent_vars=16",
                                                 "++model.num_negatives=10", "++model.mask_length=4"])
    hubert_ctc = fairseq_train(examples / "hubert" / "config" / "finetune", "base_10h", root / "hubert_ctc", [
        f"task.data={corpus}", f"task.label_dir={corpus}", f"model.w2v_path={hubert}", *FINETUNING])
    wav2vec_ctc = fairseq_train(examples / "wav2vec" / "config" / "finetuning", "base_10h", root / "wav2vec_ctc", [
        f"task.data={corpus}", f"model.w2v_path={wav2vec2}", *FINETUNING])
    return FairseqMade(corpus, km, hubert, wav2vec2, hubert_ctc, wav2vec_ctc)
