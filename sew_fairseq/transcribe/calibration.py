"""``--calibration DIR|@LIST|MANIFEST``: the audio that OpenVINO int8 is calibrated on, named as sew-transcribe's
inputs are (a folder searched recursively, an ``@LIST`` of paths, an audio file: :func:`.inputs.resolve_inputs`) or as
a fairseq manifest (``.tsv``: :func:`sew_fairseq.evaluate.splits.read_split`).

    calibration = read_calibration("corpus/train.tsv")    # a sew_fairseq.engines.Calibration (files not read yet)
    Transcriber.from_checkpoint(ckpt, backend="openvino", dtype="int8", calibration=calibration)
    Transcriber.from_checkpoint(ckpt, backend="openvino", dtype="int8", calibration="corpus/train.tsv")  # the same

Use speech like the audio to be transcribed (a few hundred utterances at most are used: NNCF's subset size, and
each recording's first :data:`sew_fairseq.engines.calibration.MAX_SECONDS` s). A path that does not exist, an empty
folder or list, and (when the model is quantised) audio that cannot be read are one-line errors naming the file.
"""
from __future__ import annotations

import logging
import os

from ..engines.calibration import Calibration, files_calibration
from .inputs import InputError, resolve_inputs


def read_calibration(spec: str) -> Calibration:
    """The calibration set named by ``spec`` (see the module docstring); raises :class:`.inputs.InputError` (a
    ValueError) for one that names nothing."""
    if isinstance(spec, Calibration):
        return spec
    path = spec[1:] if spec.startswith("@") else spec
    if not os.path.exists(path):
        raise InputError(f"calibration {spec}: no such file or folder")
    if spec.endswith(".tsv"):
        from ..evaluate.splits import read_split

        splits_logger = logging.getLogger("sew_fairseq.evaluate.splits")
        level = splits_logger.level
        splits_logger.setLevel(logging.ERROR)  # its "no .wrd: no WER" warning is about decoding
        try:
            utterances = read_split(os.path.dirname(os.path.abspath(spec)), os.path.basename(spec)[:-4])
        finally:
            splits_logger.setLevel(level)
        paths = [u.audio for u in utterances]
        what = f"{len(paths)} utterances of {spec}"
    else:
        paths = [f.path for f in resolve_inputs([spec])]
        what = f"{len(paths)} files of {spec}"
    if not paths:
        raise InputError(f"calibration {spec}: lists no audio")
    return files_calibration(paths, what)
