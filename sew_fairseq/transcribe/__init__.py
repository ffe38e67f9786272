"""``sew-transcribe``: real recordings (any format, rate, channels and length) to words with times.

* :mod:`.transcriber`: :class:`Transcriber`, one recording (or wave) at a time: read, chunk, run the engine, stitch,
  decode, word times;
* :mod:`.chunking`: cutting a long recording into overlapping chunks and stitching their log-probabilities;
* :mod:`.files`: the many-file job (inputs, outputs, skipping, scoring, ``summary.json``).

    from sew_fairseq.transcribe import Transcriber
    t = Transcriber.from_checkpoint("ckpt/checkpoint_best.pt").transcribe("talk.mp3")
"""
from .calibration import read_calibration
from .files import Shard, score_transcripts, transcribe_files
from .inputs import InputError, InputFile, resolve_inputs
from .transcriber import (DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS, Transcriber, Transcript,
                          Word)

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_CHUNK_SECONDS", "DEFAULT_OVERLAP_SECONDS", "InputError", "InputFile",
           "Shard", "Transcriber", "Transcript", "Word", "read_calibration", "resolve_inputs", "score_transcripts",
           "transcribe_files"]
