"""fairseq's own wav2vec 2.0 and HuBERT checkpoints as backbones (``sew_fairseq/models/hubert.py``).

The checkpoints are made by fairseq itself once per session (tests/fairseq_made.py: fairseq's recipes, tasks, models
and criteria, 2 updates each): ``sew_ctc`` and ``sew_ctc_early_exit`` fine-tune from the pretrained ones, fairseq's
fine-tuned ``hubert_ctc`` / ``wav2vec_ctc`` load for inference (``load_ctc_model``, ``sew-infer``) and convert to
transformers. Early exit on them is tested in tests/test_early_exit.py.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

RECIPES = REPO / "recipes" / "finetuning"


def finetune(run, recipe: str, data: Path, out: Path, extra) -> Path:
    """Our fine-tuning recipe for 2 updates on the CPU through fairseq-hydra-train; its checkpoint_last.pt."""
    run([str(Path(sys.executable).parent / "fairseq-hydra-train"), "--config-dir", str(RECIPES), "--config-name",
         recipe,
         f"common.user_dir={REPO / 'sew_fairseq'}", f"task.data={data}", "common.cpu=true", "common.log_format=simple",
         "common.log_interval=1", "dataset.train_subset=train", "dataset.valid_subset=valid", "dataset.num_workers=0",
         "dataset.max_tokens=64000", "optimization.max_update=2", "optimization.update_freq=[1]",
         "distributed_training.distributed_world_size=1", "dataset.validate_interval=100",
         f"checkpoint.save_dir={out}/ckpt", f"hydra.run.dir={out}/hydra", *extra])
    return out / "ckpt" / "checkpoint_last.pt"


def log_probs(model, source: torch.Tensor) -> torch.Tensor:
    """[B, T, V] as sew_fairseq.evaluate.splits computes them."""
    with torch.no_grad():
        return model.get_normalized_probs(model(source=source, padding_mask=None), log_probs=True).transpose(0, 1)


def wave(corpus: Path, index: int = 0) -> torch.Tensor:
    import soundfile as sf

    rel = (corpus / "train.tsv").read_text().splitlines()[1 + index].split("\t")[0]
    return torch.from_numpy(sf.read(corpus / "audio" / rel, dtype="float32")[0])[None]


def test_fairseq_checkpoints_load_through_the_allow_list(fairseq_made):
    """What fairseq's HuBERT checkpoints hold beyond weights loads under the restricted unpickler."""
    from fairseq.data import Dictionary

    from sew_fairseq.checkpoints.safe_load import safe_load

    hubert = safe_load(fairseq_made.hubert)
    dictionaries = hubert["task_state"]["dictionaries"]  # HubertPretrainingTask's state: one Dictionary per label set
    assert len(dictionaries) == 1 and isinstance(dictionaries[0], Dictionary) and len(dictionaries[0]) == 4 + 8
    assert hubert["cfg"]["model"]["_name"] == "hubert" and hubert["cfg"]["model"]["encoder_layers"] == 12
    assert hubert["model"]["label_embs_concat"].shape == (12, 16)
    ctc = safe_load(fairseq_made.hubert_ctc)
    assert isinstance(ctc["task_state"]["target_dictionary"], Dictionary)
    # fairseq's hubert_pretraining task does not copy the pretrained config back (audio_finetuning does)
    assert ctc["cfg"]["model"]["_name"] == "hubert_ctc" and ctc["cfg"]["model"]["w2v_args"] is None
    assert safe_load(fairseq_made.wav2vec_ctc)["cfg"]["model"]["w2v_args"]["model"]["_name"] == "wav2vec2"


@pytest.mark.parametrize("backbone", ["hubert", "wav2vec2"])
def test_sew_ctc_fine_tunes_from_fairseq_pretrained_checkpoints(backbone, fairseq_made, tmp_path, run):
    from fairseq import checkpoint_utils

    from sew_fairseq.checkpoints.safe_load import safe_load
    from sew_fairseq.models.hubert import HubertBackbone

    pretrained = getattr(fairseq_made, backbone)
    checkpoint = finetune(run, "10h", fairseq_made.corpus, tmp_path, [
        f"model.w2v_path={pretrained}", "model.freeze_finetune_updates=0", "++model.mask_length=4",
        "model.mask_channel_length=8"])
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    model = models[0].eval()
    assert cfg.model._name == "sew_ctc" and cfg.model.w2v_args.model._name == backbone
    inner = model.w2v_encoder.w2v_model
    assert isinstance(inner, HubertBackbone) == (backbone == "hubert")
    # the frozen feature extractor (feature_grad_mult 0) still holds fairseq's pretrained weights
    key = "feature_extractor.conv_layers.0.0.weight"
    assert torch.equal(inner.state_dict()[key], safe_load(pretrained)["model"][key])
    with torch.no_grad():
        emissions = model(source=torch.randn(1, 16000), padding_mask=None)["encoder_out"]  # [T, B, V]
    assert emissions.shape == (49, 1, len(task.target_dictionary))


@pytest.mark.parametrize("backbone", ["hubert", "wav2vec2"])
def test_early_exit_joint_training_from_fairseq_pretrained_checkpoints(backbone, fairseq_made, tmp_path, run):
    checkpoint = finetune(run, "early_exit_joint", fairseq_made.corpus, tmp_path, [
        f"model.w2v_path={getattr(fairseq_made, backbone)}", "++model.mask_length=4", "model.mask_channel_length=8"])
    from sew_fairseq.checkpoints.ctc import load_ctc_model

    model, _, cfg = load_ctc_model(str(checkpoint), str(fairseq_made.corpus))
    assert model.exit_layers == [5, 8, 11] and cfg.model.w2v_args.model._name == backbone  # 5/12, 8/12, 11/12


def test_fairseq_hubert_ctc_loads_as_sew_ctc_with_fairseqs_own_output(fairseq_made):
    """load_ctc_model reads hubert_ctc as sew_ctc: the log-probabilities of fairseq's own HubertCtc, bit for bit."""
    from fairseq import checkpoint_utils

    from manifests.records import Utterance
    from sew_fairseq.evaluate.splits import compute_emissions
    from sew_fairseq.checkpoints.ctc import load_ctc_model
    from sew_fairseq.models.hubert import HubertBackbone

    ours, dictionary, cfg = load_ctc_model(str(fairseq_made.hubert_ctc), str(fairseq_made.corpus))
    assert type(ours).__name__ == "SEWCtc" and isinstance(ours.w2v_encoder.w2v_model, HubertBackbone)
    assert cfg.task._name == "audio_finetuning" and cfg.model.w2v_args.model._name == "hubert"
    # fairseq's own model (it loads while the pretraining label directory exists, as here)
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(fairseq_made.hubert_ctc)])
    theirs = models[0].eval()
    assert type(theirs).__name__ == "HubertCtc" and dictionary.symbols == task.target_dictionary.symbols
    for i in (0, 1):
        source = wave(fairseq_made.corpus, i)
        assert torch.equal(log_probs(ours, source), log_probs(theirs, source))
    # a padded batch: the frames fairseq's HubertModel keeps (a frame is padding when all the samples of its chunk of
    # L / T samples are; the shorter utterance keeps one frame more than alone here), with fairseq's emissions on them;
    # compute_emissions cuts each utterance there (HubertCtc returns its padding as "encoder_padding_mask", which
    # Wav2VecCtc's consumers do not read)
    lengths = [wave(fairseq_made.corpus, i).shape[1] for i in (0, 1)]
    source = torch.zeros(2, max(lengths))
    padding = torch.ones(2, max(lengths), dtype=torch.bool)
    for i, n in enumerate(lengths):
        source[i, :n], padding[i, :n] = wave(fairseq_made.corpus, i)[0], False
    with torch.no_grad():
        a, b = ours(source=source, padding_mask=padding), theirs(source=source, padding_mask=padding)
        valid = ~a["padding_mask"]
        assert torch.equal(a["padding_mask"], b["encoder_padding_mask"])
        assert torch.equal(ours.get_normalized_probs(a, log_probs=True).transpose(0, 1)[valid],
                           theirs.get_normalized_probs(b, log_probs=True).transpose(0, 1)[valid])
    lines = (fairseq_made.corpus / "train.tsv").read_text().splitlines()
    utts = [Utterance(f"u{i}", str(fairseq_made.corpus / "audio" / lines[1 + i].split("\t")[0]), lengths[i], None)
            for i in (0, 1)]
    emissions, _ = compute_emissions(ours, utts, progress=False)
    assert [e.log_probs.shape[0] for e in emissions] == valid.sum(1).tolist()


def test_hubert_ctc_without_its_pretrained_checkpoint_names_the_fix(fairseq_made, tmp_path):
    from sew_fairseq.checkpoints.safe_load import safe_load
    from sew_fairseq.checkpoints.ctc import load_ctc_model

    state = safe_load(fairseq_made.hubert_ctc)
    state["cfg"]["model"]["w2v_path"] = str(tmp_path / "moved" / "hubert.pt")
    torch.save(state, tmp_path / "ctc.pt")
    with pytest.raises(ValueError, match=r"w2v_args is empty.*put the pretrained HuBERT checkpoint"):
        load_ctc_model(str(tmp_path / "ctc.pt"))


@pytest.mark.parametrize("name", ["hubert_ctc", "wav2vec_ctc"])
def test_sew_infer_decodes_fairseq_ctc_checkpoints(name, fairseq_made, tmp_path, run):
    proc = subprocess.run([str(Path(sys.executable).parent / "sew-infer"), str(getattr(fairseq_made, name)), "--data",
                           str(fairseq_made.corpus), "--split", "train", "--results-dir", str(tmp_path), "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n = len((fairseq_made.corpus / "train.wrd").read_text().splitlines())
    assert json.loads((tmp_path / "results.json").read_text())["utterances"] == n
    assert len((tmp_path / "hyp.trn").read_text().splitlines()) == n


@pytest.mark.parametrize("name,hf_class", [("hubert_ctc", "HubertForCTC"), ("wav2vec_ctc", "Wav2Vec2ForCTC")])
def test_fairseq_ctc_checkpoints_convert_to_transformers(name, hf_class, fairseq_made, tmp_path):
    transformers = pytest.importorskip("transformers")
    from sew_fairseq.checkpoints.hf import to_hf
    from sew_fairseq.checkpoints.ctc import load_ctc_model

    to_hf(str(getattr(fairseq_made, name)), str(tmp_path / "hf"))
    hf = transformers.AutoModelForCTC.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == hf_class
    ours, _, _ = load_ctc_model(str(getattr(fairseq_made, name)))
    source = wave(fairseq_made.corpus)
    with torch.no_grad():
        reference = torch.log_softmax(hf(source).logits, dim=-1)
    assert (log_probs(ours, source) - reference).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name,hf_class", [("hubert", "HubertModel"), ("wav2vec2", "Wav2Vec2Model")])
def test_fairseq_pretrained_checkpoints_convert_to_transformers(name, hf_class, fairseq_made, tmp_path):
    """Pretrained checkpoints too (their heads, and HuBERT's label embeddings, are left out)."""
    transformers = pytest.importorskip("transformers")
    from fairseq import checkpoint_utils

    from sew_fairseq.checkpoints.hf import to_hf

    to_hf(str(getattr(fairseq_made, name)), str(tmp_path / "hf"))
    hf = transformers.AutoModel.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == hf_class
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(getattr(fairseq_made, name))])
    source = wave(fairseq_made.corpus)
    with torch.no_grad():
        ours = models[0].eval().extract_features(source, None)
        ours = ours["x"] if isinstance(ours, dict) else ours[0]  # fairseq's HubertModel: (features, padding_mask)
        assert (ours - hf(source).last_hidden_state).abs().max().item() <= 1e-4
