"""Word timestamps and confidences from a CTC frame path.

A decoder's :class:`~.ctc_decoder.Hypothesis` carries ``path``, the dictionary index chosen at each of the T
frames (greedy: the argmax; beam search: flashlight's best path). A word is the run of letter frames between two
word boundaries (``|``) of that path; blanks inside it belong to no letter and are not counted. For each word:

* ``start_frame`` = its first letter frame, ``end_frame`` = one past its last letter frame (frames are
  ``frame_seconds`` apart: 20 ms for every wav2vec 2.0 / SEW front end at 16 kHz, total stride 320), so in
  seconds ``start = start_frame * frame_seconds`` and ``end = end_frame * frame_seconds``, as transformers' CTC
  pipeline computes word offsets;
* ``confidence`` = the mean posterior probability, ``exp(log_probs[t, path[t]])``, over the word's letter frames:
  in [0, 1], near 1 for a word the model is sure of.

Shapes: ``log_probs`` [T, V] log-probabilities (log-softmax of the emissions), ``path`` [T].
"""
from __future__ import annotations

import logging
from typing import List, NamedTuple, Optional, Sequence

import torch

logger = logging.getLogger(__name__)


class WordTiming(NamedTuple):
    """One word: frames ``[start_frame, end_frame)`` and the mean posterior of its letter frames."""

    word: str
    start_frame: int
    end_frame: int
    confidence: float


def letter_groups(path: Sequence[int], hidden: Sequence[int], boundary: Optional[int]) -> List[List[int]]:
    """The frame indices of each word's letters along ``path``: ``hidden`` symbols (blank, specials) belong to no
    word, ``boundary`` (``|``) ends one. Without a boundary (token-level output, e.g. phones) each run of one symbol
    is a word of its own, as the decoder's hypothesis counts them."""
    hidden_set = set(hidden)
    groups: List[List[int]] = [[]]
    previous = None
    for t, symbol in enumerate(path):
        if boundary is None and symbol != previous and groups[-1]:
            groups.append([])  # a new token starts (a blank between two equal symbols makes two tokens)
        previous = symbol
        if symbol == boundary or symbol < 0:
            if groups[-1]:
                groups.append([])
        elif symbol not in hidden_set:
            groups[-1].append(t)
    if not groups[-1]:
        groups.pop()
    return groups


def word_timings(words: Sequence[str], path: Sequence[int], log_probs: torch.Tensor, hidden: Sequence[int],
                 boundary: Optional[int]) -> List[WordTiming]:
    """:class:`WordTiming` of each of ``words`` (a hypothesis' words, in order) along its frame ``path``.

    ``words`` and the path's letter groups correspond one to one for every decoder here (the lexicon decoder's
    spellings end with ``|``); should they ever differ in number, the words are paired with the groups in order
    and the extra ones are dropped (logged)."""
    if len(path) != log_probs.shape[0]:
        raise ValueError(f"the frame path has {len(path)} frames, the log-probabilities {log_probs.shape[0]}")
    groups = letter_groups(path, hidden, boundary)
    if len(groups) != len(words):
        logger.warning("%d words but %d letter groups on the frame path: timestamps paired in order",
                       len(words), len(groups))
    if not groups:
        return []
    frames = torch.tensor([t for g in groups for t in g])
    symbols = torch.tensor([path[t] for t in frames.tolist()])
    posteriors = log_probs[frames, symbols].float().exp().tolist()
    out, i = [], 0
    for word, group in zip(words, groups):
        conf = sum(posteriors[i:i + len(group)]) / len(group)
        i += len(group)
        out.append(WordTiming(word, group[0], group[-1] + 1, min(1.0, conf)))
    return out
