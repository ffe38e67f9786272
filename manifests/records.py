"""The records every part of the project shares, light enough for the corpus builders (standard library only):
the manifest error, the utterance record, and :data:`PathLike` (a path as ``str`` or ``os.PathLike``; every module
of ``manifests`` and ``sew_fairseq`` imports it from here, the lowest module of the lowest layer).

:class:`ManifestError` is raised for input that cannot be used: by the corpus builders (``--strict``, a file they
cannot read), by the plugin's manifest check before training, and by ``sew-infer`` for a bad manifest line. Either
``ManifestError(message)`` (a message written out), or ``ManifestError(path, line_no, reason, detail, ...)``, which
names the file, the 1-based line, the audio file, the reason (a key of :data:`HINTS` or another word) and the fix.

:class:`Utterance` is one utterance of a manifest: the builders write them (``manifests.common.write_split``) and
the plugin reads them back (``sew_fairseq.evaluate.splits.read_split``).
"""
import os
import sys
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]

#: Bad audio, the one list: reason -> how to fix the manifest line that names the file. The reasons of
#: :class:`manifests.audio.AudioError` (``AUDIO_REASONS``: a file that gives no samples, or not ones that can be used),
#: of ``probe_audio`` and the manifest check (``wrong_rate``, ``wrong_channels``: the header against the expected
#: format) and of the corpus builders' reports (``manifests.common.REASONS`` starts with them). ``{rate}``: the
#: expected sample rate.
AUDIO_HINTS: Dict[str, str] = {
    "missing": "check the root line and the relative path, or remove the line",
    "empty": "the file is 0 bytes (interrupted copy or download?); restore it or remove the line",
    "unreadable": "the file is not audio that libsndfile can read (corrupt or unsupported format); "
                  "re-encode it as 16-bit PCM WAV or FLAC, or remove the line",
    "no_frames": "the file holds no audio samples; remove the line",
    "truncated": "the file ends before the samples its header announces, or cannot be decoded to the end "
                 "(interrupted copy or download?); restore or re-encode it, or remove the line",
    "bad_channel": "ask for a channel the file has (numbered from 0), or for none to average the channels",
    "wrong_rate": "resample the file (fairseq never resamples and fails at load time), e.g. "
                  "`sox in.wav -r {rate} out.wav` or soxr.resample(x, in_rate, {rate}), "
                  "then update the sample count",
    "wrong_channels": "downmix to one channel, e.g. `sox in.wav -c 1 out.wav` (fairseq would average "
                      "the channels on every load)",
    "too_short": "the audio is shorter than the model's receptive field (400 samples, 25 ms at 16 kHz); "
                 "remove the line",
}
AUDIO_REASONS = tuple(AUDIO_HINTS)

#: reason -> how to fix it: a manifest's own problems, then every bad-audio reason (:data:`AUDIO_HINTS`)
HINTS: Dict[str, str] = {
    "manifest_not_found": "check the data directory and split name (fairseq reads <data>/<split>.tsv)",
    "missing_root": "the first line of a fairseq manifest must be the audio root directory, then "
                    "'relpath<TAB>num_samples' lines; regenerate it, e.g. with fairseq's "
                    "examples/wav2vec/wav2vec_manifest.py",
    "root_not_found": "fix the first line (audio root directory); a relative root is resolved "
                      "against the current working directory, as fairseq does",
    "malformed_line": "each line after the root must be 'relpath<TAB>num_samples' (one TAB, not "
                      "spaces); fix or remove the line",
    "bad_count": "the second field must be the number of samples as a positive integer, e.g. "
                 "'a.wav<TAB>16000'; recompute it with soundfile.info(path).frames",
    "count_mismatch": "regenerate the manifest from the audio (fairseq's "
                      "examples/wav2vec/wav2vec_manifest.py) or correct the count; fairseq uses it "
                      "for batching and cropping",
    **AUDIO_HINTS,
}


class ManifestError(ValueError):
    """Input that cannot be used; see the module docstring for the two ways to make one.

    Attributes (None for a written-out message): ``tsv_path``, ``line_no`` (None for the whole file),
    ``audio_path``, ``reason``, ``detail``, ``hint``, ``more`` (further bad lines in the manifest).
    """

    def __init__(self, tsv_path: PathLike, line_no: Optional[int] = None, reason: Optional[str] = None,
                 detail: Optional[str] = None, audio_path: Optional[str] = None, hint: Optional[str] = None,
                 more: int = 0) -> None:
        self.line_no, self.reason, self.detail, self.audio_path, self.more = line_no, reason, detail, audio_path, more
        if reason is None and detail is None:  # ManifestError(message)
            self.tsv_path, self.hint = None, hint or ""
            super().__init__(str(tsv_path))
            return
        self.tsv_path = str(tsv_path)
        self.hint = hint if hint is not None else HINTS.get(reason or "", "")
        where = f"{self.tsv_path}:{line_no}" if line_no is not None else self.tsv_path
        if audio_path:
            where += f": {audio_path}"
        msg = f"{where}: {detail} [{reason}]"
        if self.hint:
            msg += f". Fix: {self.hint}"
        if more:
            msg += (f". {more} more bad line(s) in this manifest; check_manifest(mode='skip') or "
                    "task.manifest_check=skip drops bad lines instead")
        super().__init__(msg)


@dataclass(frozen=True)
class Utterance:
    """One utterance of a manifest: ``id`` (its audio path relative to the manifest root, without the extension,
    for utterances read back, the zip member's for a packed one; the builder's own id when written), ``audio``
    (the audio file's path), ``num_samples`` (at 16 kHz), ``words`` (the normalised transcript, upper case, single
    spaces; None when read without a label file), ``labels`` (``(extension, line)`` of further label files, see
    ``manifests.common.write_split``), and where it was read from: ``manifest`` and its 1-based ``line``."""

    id: str
    audio: str
    num_samples: int
    words: Optional[str] = None
    labels: Tuple[Tuple[str, str], ...] = ()
    manifest: Optional[str] = None
    line: Optional[int] = None


def cli_error(prog: str, message: object, status: int = 1) -> int:
    """Print ``<prog>: error: <message>`` on stderr, as argparse words a usage error, and return ``status`` (the exit
    status). Every console script prints its errors with this one (``sew_fairseq.cli.options`` re-exports it); it
    lives here, in the lowest module, so that every module with a command can import it."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return status
