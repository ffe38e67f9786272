"""``audio_finetuning_checked``: fairseq's ``audio_finetuning`` with the manifest and its labels checked first.

Before a split is loaded (``task.manifest_check=error``, the default):

* every manifest line is checked against its audio header, as ``audio_pretraining_checked`` does (missing,
  empty, corrupt, wrong-rate or stereo files, sample counts that disagree);
* the label file ``<split>.<labels>`` has one non-empty line per manifest line, and every symbol of it is in
  ``dict.<labels>.txt`` (fairseq would silently map an unknown symbol to ``<unk>`` and train on it).

The first problem stops the run with a :class:`~manifests.check.ManifestError` naming the file, the
line, what is wrong and how to fix it. ``task.manifest_check=off`` is plain ``audio_finetuning``. (Skipping bad
lines, as ``audio_pretraining_checked`` can, is not offered here: the label file would have to be filtered in
step, which fairseq's loader does not support from a filtered manifest copy.)
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from fairseq.data import Dictionary
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.audio_finetuning import AudioFinetuningConfig, AudioFinetuningTask

from manifests.records import ManifestError
from .audio_pretraining_checked import _cached_check, _cfg_get

logger = logging.getLogger(__name__)


@dataclass
class AudioFinetuningCheckedConfig(AudioFinetuningConfig):
    manifest_check: ChoiceEnum(["error", "off"]) = field(  # type: ignore[valid-type]
        default="error",
        metadata={"help": "check the manifest's audio headers and the label file (one non-empty line per "
                          "utterance, every symbol in the dictionary) before loading a split: 'error' stops at "
                          "the first problem with its file, line and a fix; 'off' does no check"})


def check_labels(label_path: str, num_utterances: int, dictionary: Dictionary) -> None:
    """Raise :class:`ManifestError` unless ``label_path`` has ``num_utterances`` non-empty lines of known symbols."""
    try:
        with open(label_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ManifestError(label_path, None, "missing_labels", f"cannot read the labels: {e.strerror}",
                            hint="write <split>.ltr next to <split>.tsv (letters separated by spaces, '|' between "
                                 "words)")
    if len(lines) != num_utterances:
        raise ManifestError(label_path, None, "label_count_mismatch",
                            f"{len(lines)} label lines for the {num_utterances} utterances of the manifest",
                            hint="the .tsv and its label files must list the same utterances in the same order")
    for number, line in enumerate(lines, start=1):
        symbols = line.split()
        if not symbols:
            raise ManifestError(label_path, number, "empty_label", "empty transcript",
                                hint="remove the utterance from the manifest and the label files, or transcribe it")
        unknown = sorted({s for s in symbols if dictionary.index(s) == dictionary.unk() and s != "<unk>"})
        if unknown:
            raise ManifestError(label_path, number, "unknown_symbol",
                                f"symbol(s) {' '.join(map(repr, unknown))} not in the dictionary",
                                hint="normalise the transcript (e.g. spell digits out) or add the symbol to the "
                                     "dictionary before fine-tuning")


@register_task("audio_finetuning_checked", dataclass=AudioFinetuningCheckedConfig)
class AudioFinetuningCheckedTask(AudioFinetuningTask):
    """``audio_finetuning`` with the manifest and label checks of this module."""

    def load_dataset(self, split: str, task_cfg: Any = None, **kwargs: Any) -> None:
        effective = task_cfg or self.cfg
        if str(_cfg_get(self.cfg, "manifest_check", "error")) != "off":
            data = str(self.cfg.data)
            tsv = os.path.join(data, f"{split}.tsv")
            sample_rate = int(_cfg_get(effective, "sample_rate", None) or self.cfg.sample_rate)
            report = _cached_check(tsv, sample_rate, "error")  # raises ManifestError on a bad line
            labels = _cfg_get(effective, "labels", None)
            if labels:
                check_labels(os.path.join(data, f"{split}.{labels}"), report.num_entries, self.target_dictionary)
            logger.info("manifest and label check: %s", report.summary())
        return super().load_dataset(split, task_cfg, **kwargs)
