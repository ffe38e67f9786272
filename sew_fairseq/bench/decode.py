"""KenLM beam-search speed: our flashlight-text lexicon decoder against pyctcdecode, on the same emissions.

Used by ``sew-bench decode`` (:mod:`sew_fairseq.cli.bench`). Nothing here is a pass/fail check: it
measures and reports.

**Emissions and texts**: synthetic, from :mod:`sew_fairseq.bench.synthetic_emissions` (no acoustic model is
run; its docstring says how they are made, and how the LM is estimated).

**Decoders, made as equal as the two libraries allow.**

* ours: :class:`~sew_fairseq.decoding.KenLMLexiconDecoder` (flashlight-text ``LexiconDecoder``, C++):
  ``beam``, ``lm_weight``, ``word_score``; all tokens per frame, ``<unk>`` never emitted,
  ``sil_score`` 0 (its defaults). One result row per ``beam_threshold``: 25 is its default (and
  fairseq's), 10 matches pyctcdecode's ``beam_prune_logp`` (-10).
* pyctcdecode: ``build_ctcdecoder(labels, kenlm_model_path=lm, unigrams=lexicon words,
  alpha=lm_weight / ln 10, beta=word_score, unk_score_offset=unk_offset)`` and
  ``decode(logits, beam_width=beam)`` (pure Python over the ``kenlm`` module). flashlight adds
  ``lm_weight * log10 P`` (KenLM's scores as they are), pyctcdecode ``alpha * ln P``: with
  ``alpha = lm_weight / ln 10`` the LM terms are identical. ``beta`` and ``word_score`` are both added
  once per word. Labels: ``<s>`` -> ``""`` (blank), ``|`` -> ``" "``, letters as they are; the
  ``<pad>``/``</s>``/``<unk>`` columns are dropped (they hold ~e^-35 of the mass, so pyctcdecode's
  re-normalisation changes nothing).

Remaining differences, inherent to the two designs: ours is *lexicon-constrained* (a path can only
spell lexicon words; the trie carries each word's unigram LM score, smeared to its prefixes as a
look-ahead), pyctcdecode is *lexicon-free*: any letter string can be a word; the unigram list only
penalises, by ``unk_score_offset`` (its default -10), a prefix that starts no known word, and an
unknown word (there scaled like an LM score). Pruning is each library's own: pyctcdecode skips letters
below log-prob ``token_min_logp`` (-5) unless a frame's argmax and drops beams ``beam_prune_logp`` (-10)
below the best; ``decode()`` prunes beams with the same recent history. Ours drops hypotheses
``beam_threshold`` below the best and keeps ``beam``. pyctcdecode's cost therefore grows with how
uncertain the emissions are, ours hardly does. Ours appends one certain ``|`` frame so that the last
word completes; pyctcdecode scores a final partial word at the end. Both score ``</s>``. The
emissions have no final ``|`` although fairseq-fine-tuned models emit one (``.ltr`` targets end with
``|``): pyctcdecode 0.5.0 scores a beam that ends with a space with an empty last word, i.e. ``<unk>``
plus ``unk_score_offset``, and then prefers beams that append a short word after the final space
(measured with a final ``|`` frame added: WER 0.92% -> 1.25%, "... THE FOREST A").

**Timing.** Decoders are built first (LM loading is not timed), each decodes the first utterance once
(warm-up), then all utterances one at a time (``[1, T, V]`` for ours, a ``[T, V']`` float32 numpy array
for pyctcdecode, the same log-probabilities), ``repeats`` times; the median pass is reported as
seconds of decoding per second of audio, with the ratio pyctcdecode / ours. torch runs with one
intra-op thread meanwhile (on utterance-sized tensors more threads only add overhead). ``threads`` > 1:
each decoder spreads the utterances over that many forked worker processes. Greedy (viterbi) decoding
is reported as the no-LM reference.
"""
from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from manifests.arpa import is_arpa, read_arpa_vocabulary, write_arpa
from manifests.error_rates import wer
from manifests.lexicon import build_lexicon, read_lexicon

from ..decoding import KenLMLexiconDecoder, ViterbiDecoder
from .synthetic_emissions import (FRAMES_PER_SECOND, NEIGHBOURS, PEAK, grammar_sentence, grammar_words,
                                  letter_dictionary, normalise_text, synthesise_emissions)

logger = logging.getLogger(__name__)

def pyctcdecode_labels(dictionary) -> Tuple[List[str], List[int]]:
    """pyctcdecode labels and the emission columns they read: blank ``<s>`` -> ``""``, ``|`` -> ``" "``,
    letters as they are; fairseq's ``<pad>``, ``</s>``, ``<unk>`` (and any other ``<...>``) dropped."""
    labels, columns = [], []
    for i, s in enumerate(dictionary.symbols):
        if i == dictionary.bos():
            labels.append("")
        elif s == "|":
            labels.append(" ")
        elif i in (dictionary.pad(), dictionary.eos(), dictionary.unk()) or (s.startswith("<") and s.endswith(">")):
            continue
        else:
            labels.append(s)
        columns.append(i)
    return labels, columns


# --- the benchmark ------------------------------------------------------------------------------------

@dataclass
class DecoderResult:
    name: str
    seconds: float  # decoding time over all utterances, median of the timed passes (warm-up excluded)
    seconds_per_audio_second: float
    wer: float
    word_errors: int
    ref_words: int
    setup_seconds: float = 0.0  # building the decoder (LM loading), not in ``seconds``
    passes: List[float] = field(default_factory=list)  # seconds of every timed pass
    hypotheses: List[str] = field(default_factory=list, repr=False)


@dataclass
class DecodeBenchResult:
    utterances: int
    audio_seconds: float
    frames: int
    beam: int
    lm_weight: float
    word_score: float
    alpha: float  # pyctcdecode's alpha = lm_weight / ln 10
    beta: float
    unk_offset: float
    noise: float
    jitter: float
    peak: float
    seed: int
    threads: int
    repeats: int
    lm: str
    lexicon_words: int
    ours: List[DecoderResult]  # one per beam threshold
    pyctcdecode: DecoderResult
    viterbi: DecoderResult
    references: List[str] = field(default_factory=list, repr=False)
    versions: Dict[str, str] = field(default_factory=dict)

    def ratio(self, ours: Optional[DecoderResult] = None) -> float:
        """pyctcdecode's time / ours (> 1: ours is faster); ``ours``: default the first row."""
        ours = ours or self.ours[0]
        return self.pyctcdecode.seconds / ours.seconds if ours.seconds > 0 else math.inf

    def to_dict(self, with_hypotheses: bool = False) -> dict:
        d = asdict(self)
        for row, o in zip(d["ours"], self.ours):
            row["ratio_pyctcdecode_over_ours"] = self.ratio(o)
        if not with_hypotheses:
            d.pop("references")
            for row in d["ours"] + [d["pyctcdecode"], d["viterbi"]]:
                row.pop("hypotheses")
        return d


_KENLM_NOISE = re.compile(r"^(Loading the LM will be faster if you build a binary file\.|Reading .*|"
                          r"-*5---10---15.*|\**)$")


@contextlib.contextmanager
def _quiet_kenlm():
    """Drop KenLM's C++ progress output ("Loading the LM...", "Reading FILE", progress bars) from file
    descriptor 2 during a block; anything else written there (warnings) is passed on afterwards."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not _KENLM_NOISE.match(line.strip())]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def _import_pyctcdecode():
    try:
        import kenlm  # noqa: F401  (pyctcdecode only logs a warning when it is missing)
        from pyctcdecode import build_ctcdecoder
    except ImportError as e:
        raise ImportError("sew-bench decode needs pyctcdecode and the kenlm Python module: "
                          "pip install pyctcdecode kenlm (kenlm builds from source: needs a C++ compiler)") from e
    return build_ctcdecoder


# decode state shared with forked workers (set before a pool forks: only indices and texts are pickled)
_STATE: Dict[str, object] = {}


def _decode_ours(i: int) -> str:
    return _STATE["decoder"].decode(_STATE["emissions"][i][None])[0][0].text


def _decode_pyctc(i: int) -> str:
    return " ".join(_STATE["decoder"].decode(_STATE["np_emissions"][i], beam_width=_STATE["beam"]).split())


def _timed(fn: Callable[[int], str], n: int, threads: int, repeats: int) -> Tuple[List[str], List[float]]:
    """Warm up on utterance 0 (in each worker), then decode all ``n`` ``repeats`` times; returns the
    hypotheses and the seconds of each pass."""
    passes: List[float] = []
    if threads <= 1:
        fn(0)
        for _ in range(repeats):
            start = time.perf_counter()
            hyps = [fn(i) for i in range(n)]
            passes.append(time.perf_counter() - start)
        return hyps, passes
    with multiprocessing.get_context("fork").Pool(threads) as pool:
        pool.map(fn, [0] * threads, chunksize=1)
        for _ in range(repeats):
            start = time.perf_counter()
            hyps = pool.map(fn, range(n), chunksize=1)
            passes.append(time.perf_counter() - start)
    return hyps, passes


def _run(name: str, decoder, fn: Callable[[int], str], refs: List[str], audio: float, threads: int,
         repeats: int, setup: float) -> DecoderResult:
    _STATE["decoder"] = decoder
    try:
        hyps, passes = _timed(fn, len(refs), threads, repeats)
    finally:
        _STATE.pop("decoder", None)
    seconds = statistics.median(passes)
    e = wer(refs, hyps)
    return DecoderResult(name, seconds, seconds / audio, e.rate, e.errors, e.ref_len, setup, passes, hyps)


def _versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": torch.__version__}
    for pkg in ("flashlight-text", "pyctcdecode", "kenlm", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "?"
    return out


def run_decode_bench(utterances: int = 200, beam: int = 50, lm_weight: float = 2.0, word_score: float = -1.0,
                     noise: float = 0.2, jitter: float = 1.0, peak: float = PEAK, seed: int = 0, threads: int = 1,
                     repeats: int = 3, beam_thresholds: Sequence[float] = (25.0, 10.0),
                     beam_size_token: Optional[int] = None,
                     unk_offset: float = -10.0, text: Optional[Sequence[str]] = None, lm: Optional[str] = None,
                     lexicon: Optional[str] = None, lm_order: int = 3, lm_sentences: int = 2000,
                     workdir: Optional[str] = None, quiet_lm_loading: bool = True) -> DecodeBenchResult:
    """Synthesise emissions, decode them with ours (once per beam threshold), pyctcdecode and greedy;
    time and score each (module docstring).

    ``beam_thresholds``: ours' ``beam_threshold`` values, one result row each: 25 is its default (and
    fairseq's), 10 matches pyctcdecode's ``beam_prune_logp`` (-10): both then drop hypotheses more than
    10 below the best. ``text``: sentences (default: the grammar); ``lm``/``lexicon``: files replacing the
    estimated LM and the lexicon built from the texts. Torch runs with 1 intra-op thread during the
    timing (restored afterwards); ``threads`` > 1 decodes in that many forked processes.
    ``quiet_lm_loading``: drop KenLM's progress output on stderr while the decoders load the LM.
    """
    if utterances < 1 or beam < 1 or threads < 1 or repeats < 1:
        raise ValueError("utterances, beam, threads and repeats must be positive")
    if not 0.0 <= noise <= 1.0 or jitter < 0 or peak <= 1:
        raise ValueError(f"noise must be in [0, 1], jitter >= 0 and peak > 1; got {noise}, {jitter}, {peak}")
    if not beam_thresholds:
        raise ValueError("give at least one beam threshold")
    build_ctcdecoder = _import_pyctcdecode()
    import numpy as np

    rng = random.Random(seed)
    dictionary = letter_dictionary()
    alphabet = [s for s in dictionary.symbols if s not in ("<s>", "<pad>", "</s>", "<unk>", "|")]

    # texts
    if text is not None:
        lines = [normalise_text(t, alphabet) for t in text]
        lines = [t for t in lines if t]
        if not lines:
            raise ValueError("the text has no words spelled with the dictionary's letters")
        refs = lines[:utterances]
        lm_lines = lines
        words = [w for t in lines for w in t.split()]
    else:
        refs = [grammar_sentence(rng) for _ in range(utterances)]
        lm_lines = [grammar_sentence(rng) for _ in range(lm_sentences)]
        words = grammar_words() + NEIGHBOURS

    tmp = tempfile.TemporaryDirectory(prefix="sew-bench-decode-") if workdir is None else None
    workdir = tmp.name if tmp is not None else workdir
    try:
        # lexicon and LM
        if lexicon is not None:
            lex = {w: s for w, s in read_lexicon(lexicon, alphabet=alphabet + ["|"]).items() if w != "<unk>"}
        elif lm is not None:
            if not is_arpa(lm):
                raise ValueError(f"{lm} is a KenLM binary: pass a lexicon (its words cannot be read from it)")
            vocab = sorted(read_arpa_vocabulary(lm) - {"<s>", "</s>", "<unk>"})
            lex = build_lexicon(w for w in vocab if all(c in alphabet for c in w))
        else:
            lex = build_lexicon(words)
        if not lex:
            raise ValueError("the lexicon has no words spelled with the dictionary's letters")
        if lm is None:
            lm = os.path.join(workdir, "lm.arpa")
            write_arpa(lm, lm_lines, order=lm_order, vocabulary=list(lex))
            lm_name = f"{lm_order}-gram estimated by write_arpa from {len(lm_lines)} sentences"
        else:
            lm = lm_name = os.fspath(lm)

        # emissions: the same log-probabilities for both (pyctcdecode: without the special columns)
        emissions = [synthesise_emissions(dictionary, r, rng, noise=noise, jitter=jitter, peak=peak) for r in refs]
        labels, columns = pyctcdecode_labels(dictionary)
        np_emissions = [np.ascontiguousarray(e[:, columns].numpy()) for e in emissions]
        frames = sum(len(e) for e in emissions)
        audio = frames / FRAMES_PER_SECOND

        # decoders (building them, i.e. loading the LM, is timed apart)
        ours = []
        quiet = _quiet_kenlm() if quiet_lm_loading else contextlib.nullcontext()
        with quiet:
            for threshold in beam_thresholds:
                t0 = time.perf_counter()
                dec = KenLMLexiconDecoder(dictionary, lex, lm, beam=beam, lm_weight=lm_weight,
                                          word_score=word_score, beam_threshold=threshold,
                                          beam_size_token=beam_size_token)
                tokens = f", {beam_size_token} tokens/frame" if beam_size_token else ""
                ours.append((f"ours, beam_threshold {threshold:g}{tokens}", dec, time.perf_counter() - t0))
            alpha = lm_weight / math.log(10.0)
            pyctc_logger = logging.getLogger("pyctcdecode")
            level = pyctc_logger.level
            pyctc_logger.setLevel(logging.ERROR)  # "only N unigrams ... small or artificial data?": yes
            try:
                t0 = time.perf_counter()
                pyctc = build_ctcdecoder(labels, kenlm_model_path=lm, unigrams=list(lex), alpha=alpha,
                                         beta=word_score, unk_score_offset=unk_offset)
                setup_pyctc = time.perf_counter() - t0
            finally:
                pyctc_logger.setLevel(level)

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # per-utterance tensors are tiny: intra-op threads only add overhead
        _STATE.update(emissions=emissions, np_emissions=np_emissions, beam=beam)
        try:
            args = (refs, audio, threads, repeats)
            viterbi = _run("greedy (no LM)", ViterbiDecoder(dictionary), _decode_ours, *args, setup=0.0)
            ours_rows = [_run(name, dec, _decode_ours, *args, setup=setup) for name, dec, setup in ours]
            pyctc_row = _run("pyctcdecode", pyctc, _decode_pyctc, *args, setup=setup_pyctc)
        finally:
            torch.set_num_threads(torch_threads)
            _STATE.clear()
            pyctc.cleanup()
    finally:
        if tmp is not None:
            tmp.cleanup()

    return DecodeBenchResult(
        utterances=len(refs), audio_seconds=audio, frames=frames, beam=beam, lm_weight=lm_weight,
        word_score=word_score, alpha=alpha, beta=word_score, unk_offset=unk_offset, noise=noise, jitter=jitter,
        peak=peak, seed=seed, threads=threads, repeats=repeats, lm=lm_name, lexicon_words=len(lex),
        ours=ours_rows, pyctcdecode=pyctc_row, viterbi=viterbi, references=refs, versions=_versions())


def format_result(r: DecodeBenchResult) -> str:
    """A plain-text table: time per audio second, WER, and the ratio pyctcdecode / ours for each row."""
    v = r.versions
    head = (f"# {r.utterances} utterances, {r.audio_seconds:.1f} s of audio ({r.frames} frames, "
            f"{FRAMES_PER_SECOND}/s); "
            f"noise {r.noise:g}, jitter {r.jitter:g}, peak {r.peak:g}, seed {r.seed}\n"
            f"# beam {r.beam} (both), lm_weight {r.lm_weight:g} = pyctcdecode alpha {r.alpha:.4f} (x ln 10), "
            f"word_score = beta {r.word_score:g}, pyctcdecode unk_score_offset {r.unk_offset:g}\n"
            f"# LM: {r.lm}; lexicon = unigrams: {r.lexicon_words} words\n"
            f"# {r.threads} process{'es' if r.threads > 1 else ''}, median of {r.repeats} pass"
            f"{'es' if r.repeats > 1 else ''}; flashlight-text {v.get('flashlight-text')}, pyctcdecode "
            f"{v.get('pyctcdecode')}, kenlm {v.get('kenlm')}, numpy {v.get('numpy')}, torch {v.get('torch')}, "
            f"{platform.processor() or platform.machine()}\n")
    lines = [f"{'decoder':<30}{'total s':>9}{'ms / audio s':>14}{'WER %':>8}{'errors':>10}{'pyctc / this':>14}"]
    for d in r.ours + [r.pyctcdecode, r.viterbi]:
        ratio = f"{r.ratio(d):.1f}x" if any(d is o for o in r.ours) else ("1.0x" if d is r.pyctcdecode else "")
        lines.append(f"{d.name:<30}{d.seconds:>9.3f}{1000 * d.seconds_per_audio_second:>14.3f}{100 * d.wer:>8.2f}"
                     f"{f'{d.word_errors}/{d.ref_words}':>10}{ratio:>14}")
    return head + "\n".join(lines)
