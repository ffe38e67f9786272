"""Emissions of a fine-tuned CTC checkpoint over a fairseq manifest split (used by ``sew-infer``).

A split is ``<data>/<split>.tsv`` (first line the audio root, then ``relpath<TAB>num_samples``) with its labels
``<split>.wrd`` (one transcript per line, same order) and the letter dictionary ``<data>/dict.ltr.txt``.
Shapes: B utterances, L samples, T frames, V letters (blank ``<s>``).
"""
import logging
import os
import time
from pathlib import Path
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch

from .manifest_check import ManifestError, parse_manifest_line

logger = logging.getLogger(__name__)


class Utterance(NamedTuple):
    id: str  # the audio path relative to the manifest root, without extension
    path: str
    num_samples: int
    words: Optional[str]  # reference transcript, None without a .wrd file


class Emission(NamedTuple):
    utterance: Utterance
    log_probs: torch.Tensor  # [T, V] float32 on the CPU
    exit_layer: Optional[int] = None  # early exit: the backbone layers this utterance used (all = no early exit)


def read_split(data: str, split: str, labels: str = "wrd") -> List[Utterance]:
    """The utterances of ``<data>/<split>.tsv`` with the references of ``<data>/<split>.<labels>`` if present."""
    tsv = Path(data) / f"{split}.tsv"
    try:
        lines = tsv.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ManifestError(str(tsv), None, "unreadable", f"cannot read the manifest: {e.strerror}",
                            hint="pass --data DIR and --split NAME of an existing <NAME>.tsv") from None
    if not lines:
        raise ManifestError(str(tsv), 1, "empty_manifest", "the manifest is empty", hint="its first line is the audio root")
    root = lines[0].strip()
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        entry, problem = parse_manifest_line(line)
        if problem is not None:
            raise ManifestError(str(tsv), number, *problem)
        entries.append((number, *entry))
    references: List[Optional[str]] = [None] * len(entries)
    label_file = tsv.with_suffix(f".{labels}")
    if label_file.exists():
        refs = label_file.read_text(encoding="utf-8").splitlines()
        if len(refs) != len(entries):
            raise ManifestError(str(label_file), None, "label_count_mismatch",
                                f"{len(refs)} transcripts for the {len(entries)} utterances of {tsv}",
                                hint="the .tsv and its label files must list the same utterances in the same order")
        references = [" ".join(r.split()) for r in refs]
    else:
        logger.warning("no %s: decoding without references (no WER)", label_file)
    utterances = []
    for (number, rel, samples), words in zip(entries, references):
        utterances.append(Utterance(os.path.splitext(rel)[0], os.path.join(root, rel), samples, words))
    return utterances


def load_ctc_model(checkpoint: str, data: Optional[str] = None, device: str = "cpu"):
    """(model in eval mode on ``device``, letter dictionary, cfg) of a fine-tuned fairseq CTC checkpoint.

    Any fine-tuned CTC model of this plugin (``sew_ctc``, ``sew_ctc_early_exit``) or of fairseq (``wav2vec_ctc``;
    ``hubert_ctc``, read as ``sew_ctc`` by :func:`sew_fairseq.models.backbones.as_sew_ctc`)."""
    from fairseq import checkpoint_utils

    import sew_fairseq  # noqa: F401  registers the models and patches fairseq's checkpoint loading
    from .models.backbones import as_sew_ctc

    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    overrides = {"data": data} if data else {}
    state = as_sew_ctc(checkpoint_utils.load_checkpoint_to_cpu(checkpoint, overrides), checkpoint)
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides=overrides,
                                                                     state=state)
    model = models[0].eval().to(device)
    return model, task.target_dictionary, cfg


def _batches(utterances: Sequence[Utterance], max_samples: int) -> Iterator[List[int]]:
    """Indices of length-sorted batches of at most ``max_samples`` padded samples (one utterance at least)."""
    order = sorted(range(len(utterances)), key=lambda i: utterances[i].num_samples)
    batch: List[int] = []
    for i in order:
        if batch and (len(batch) + 1) * utterances[i].num_samples > max_samples:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _load_audio(utt: Utterance, sample_rate: int) -> np.ndarray:
    wav, rate = sf.read(utt.path, dtype="float32")
    if rate != sample_rate:
        raise ValueError(f"{utt.path}: sample rate {rate} Hz, the model needs {sample_rate} Hz")
    if wav.ndim > 1:
        raise ValueError(f"{utt.path}: {wav.shape[1]} channels, the model needs mono audio")
    return wav


@torch.inference_mode()
def compute_emissions(model, utterances: Sequence[Utterance], max_samples: int = 1_600_000, device: str = "cpu",
                      sample_rate: int = 16000, normalize: bool = False, progress: bool = True,
                      exit_rule=None) -> Tuple[List[Emission], float]:
    """CTC log-probabilities of every utterance (in the order given) and the seconds the forward passes took.

    ``exit_rule`` (a :class:`sew_fairseq.modules.early_exit.ExitRule`): early exit with a ``sew_ctc_early_exit``
    model. Exit decisions are per utterance, so each utterance then runs alone (batch size 1, ``max_samples``
    ignored) and the layers after its exit are not computed; ``Emission.exit_layer`` says where it exited."""
    from tqdm import tqdm

    if exit_rule is not None:
        if not hasattr(model, "forward_early_exit"):
            raise ValueError(f"early exit needs a checkpoint with exit branches (model sew_ctc_early_exit, see "
                             f"recipes/finetuning/early_exit_*.yaml); this one is a {type(model).__name__}")
        exit_rule.check()
        max_samples = 1
    results: List[Optional[Emission]] = [None] * len(utterances)
    seconds = 0.0
    bar = tqdm(total=len(utterances), unit="utt", desc="emissions", disable=not progress)
    for batch in _batches(utterances, max_samples):
        waves = [_load_audio(utterances[i], sample_rate) for i in batch]
        source = torch.zeros(len(batch), max(len(w) for w in waves))
        padding = torch.ones(source.shape, dtype=torch.bool)
        for i, w in enumerate(waves):
            w = torch.from_numpy(w)
            if normalize:
                w = torch.nn.functional.layer_norm(w, w.shape)
            source[i, :len(w)] = w
            padding[i, :len(w)] = False
        start = time.perf_counter()
        exit_layers: List[Optional[int]] = [None] * len(batch)
        if exit_rule is None:
            out = model(source=source.to(device), padding_mask=padding.to(device))
        else:
            early = model.forward_early_exit(source.to(device), padding.to(device), exit_rule)
            out, exit_layers = early.net_output, early.exit_layer.tolist()
        log_probs = model.get_normalized_probs(out, log_probs=True).float().transpose(0, 1).cpu()  # [B, T, V]
        seconds += time.perf_counter() - start
        frame_padding = out.get("padding_mask")
        for row, index in enumerate(batch):
            frames = log_probs.size(1) if frame_padding is None else int((~frame_padding[row]).sum())
            results[index] = Emission(utterances[index], log_probs[row, :frames].contiguous(), exit_layers[row])
        bar.update(len(batch))
    bar.close()
    return results, seconds


def exit_summary(emissions: Sequence[Emission], num_layers: int) -> dict:
    """Early-exit statistics of emissions from ``compute_emissions(..., exit_rule=...)``: how many utterances
    exited after each layer count (``num_layers`` = ran to the end), the mean number of layers used, and the share
    of layer computations saved."""
    layers = [e.exit_layer for e in emissions if e.exit_layer is not None]
    histogram = {str(k): layers.count(k) for k in sorted(set(layers))}
    mean = sum(layers) / len(layers) if layers else float(num_layers)
    return {"num_layers": num_layers, "exit_layer_histogram": histogram, "mean_layers": mean,
            "layers_saved": 1 - mean / num_layers}
