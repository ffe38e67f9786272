"""Emissions of a fine-tuned CTC checkpoint over a fairseq manifest split (used by ``sew-infer``).

A split is ``<data>/<split>.tsv`` (first line the audio root, then ``relpath<TAB>num_samples``, or
``shard.zip:offset:length<TAB>num_samples`` as ``sew-manifest pack`` writes) with its labels
``<split>.wrd`` (one transcript per line, same order; or ``<split>.phn``, phone sequences, for a phone model) and
the dictionary the checkpoint was fine-tuned with (``<data>/dict.ltr.txt``, ``dict.phn.txt``).
Shapes: B utterances, L samples, T frames, V letters (blank ``<s>``).
"""
import logging
import os
import time
from pathlib import Path
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from manifests.audio import AudioError, audio_info, read_audio
from manifests.check import parse_manifest_line
from manifests.pack import entry_id
from manifests.records import ManifestError, Utterance

logger = logging.getLogger(__name__)


class Skipped(NamedTuple):
    """An utterance left out because its audio gives no samples (``sew-infer --skip-bad``)."""

    utterance: Utterance
    reason: str  # a bad-audio reason (manifests.records.AUDIO_HINTS)
    message: str  # the one-line error naming the manifest line and the file


class Emission(NamedTuple):
    utterance: Utterance
    log_probs: torch.Tensor  # [T, V] float32 on the CPU
    exit_layer: Optional[int] = None  # early exit: the backbone layers this utterance used (all = no early exit)


def read_split(data: str, split: str, labels: str = "wrd") -> List[Utterance]:
    """The utterances of ``<data>/<split>.tsv`` with the references of ``<data>/<split>.<labels>`` if present
    (``labels``: ``wrd`` words, ``phn`` phones)."""
    tsv = Path(data) / f"{split}.tsv"
    try:
        lines = tsv.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ManifestError(str(tsv), None, "unreadable", f"cannot read the manifest: {e.strerror}",
                            hint="pass --data DIR and --split NAME of an existing <NAME>.tsv") from None
    if not lines:
        raise ManifestError(str(tsv), 1, "empty_manifest", "the manifest is empty",
                            hint="its first line is the audio root")
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
        utterances.append(Utterance(entry_id(root, rel), os.path.join(root, rel), samples, words,
                                    manifest=str(tsv), line=number))
    return utterances



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


def load_audio(utt: Utterance, sample_rate: int) -> np.ndarray:
    """The samples [L] float32 of a manifest utterance, channels averaged as fairseq's loader does. Like fairseq
    (and training), never resamples. A file that gives no samples or has another rate raises :class:`ManifestError`
    naming the manifest line and the file."""
    try:
        info = audio_info(utt.audio)
        if info.sample_rate != sample_rate:
            raise AudioError(utt.audio, "wrong_rate", f"sample rate {info.sample_rate} Hz, the model needs "
                                                     f"{sample_rate} Hz (resample it, or use sew-transcribe)")
        return read_audio(utt.audio, sample_rate, info=info).samples
    except AudioError as e:
        raise ManifestError(utt.manifest or utt.audio, utt.line, e.reason, e.detail, audio_path=utt.audio,
                            hint="fix or remove the line; --skip-bad decodes the other utterances") from None


@torch.inference_mode()
def compute_emissions(model, utterances: Sequence[Utterance], max_samples: int = 1_600_000, device: str = "cpu",
                      sample_rate: int = 16000, normalize: bool = False, progress: bool = True,
                      exit_rule=None, skipped: Optional[List[Skipped]] = None) -> Tuple[List[Emission], float]:
    """CTC log-probabilities of every utterance (in the order given) and the seconds the forward passes took.

    ``model``: a fairseq CTC model (run by the torch fp32 engine with ``device``, ``normalize`` and ``exit_rule``),
    or an engine of :mod:`sew_fairseq.engines` (which carries its own device, normalisation and exit rule; the
    three arguments must then be left at their defaults).
    ``exit_rule`` (a :class:`sew_fairseq.modules.early_exit.ExitRule`): early exit with a ``sew_ctc_early_exit``
    model. Exit decisions are per utterance, so each utterance then runs alone (batch size 1, ``max_samples``
    ignored) and the layers after its exit are not computed; ``Emission.exit_layer`` says where it exited.
    An utterance whose audio gives no samples raises :class:`ManifestError` (naming the manifest line and the
    file), or, when a ``skipped`` list is given, is appended to it and left out of the result."""
    from tqdm import tqdm

    from ..engines.torch_engine import engine_for

    engine = engine_for(model, device, normalize, exit_rule, "compute_emissions")
    if engine.exit_rule is not None:
        max_samples = 1
    results: List[Optional[Emission]] = [None] * len(utterances)
    seconds = 0.0
    bar = tqdm(total=len(utterances), unit="utt", desc="emissions", disable=not progress)
    for batch in _batches(utterances, max_samples):
        loaded, waves = [], []
        for i in batch:
            try:
                waves.append(load_audio(utterances[i], sample_rate))
                loaded.append(i)
            except ManifestError as e:
                if skipped is None:
                    raise
                logger.warning("skipped: %s", e)
                skipped.append(Skipped(utterances[i], e.reason, str(e)))
        if waves:
            start = time.perf_counter()
            log_probs, exit_layers = engine.log_probs(waves)
            seconds += time.perf_counter() - start
            for index, lp, layer in zip(loaded, log_probs, exit_layers):
                results[index] = Emission(utterances[index], lp, layer)
        bar.update(len(batch))
    bar.close()
    return [r for r in results if r is not None], seconds


def exit_summary(emissions: Sequence[Emission], num_layers: int) -> dict:
    """Early-exit statistics of emissions from ``compute_emissions(..., exit_rule=...)``: how many utterances
    exited after each layer count (``num_layers`` = ran to the end), the mean number of layers used, and the share
    of layer computations saved."""
    layers = [e.exit_layer for e in emissions if e.exit_layer is not None]
    histogram = {str(k): layers.count(k) for k in sorted(set(layers))}
    mean = sum(layers) / len(layers) if layers else float(num_layers)
    return {"num_layers": num_layers, "exit_layer_histogram": histogram, "mean_layers": mean,
            "layers_saved": 1 - mean / num_layers}
