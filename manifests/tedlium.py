"""TED-LIUM 3 manifests for fairseq: each STM segment cut from its talk's sph into a 16 kHz FLAC.

    python -m manifests.tedlium --root /data/TEDLIUM_release-3 --dest data/tedlium
    sew-manifest tedlium --root /data/TEDLIUM_release-3 --dest data/tedlium --layout speaker-adaptation

Input: ``<root>/<layout>/{train,dev,test}/{sph,stm}/<talk>.{sph,stm}`` with ``--layout legacy`` (default,
the TED-LIUM 2 split) or ``speaker-adaptation``; a root that holds ``{train,dev,test}/{sph,stm}`` itself
(TED-LIUM 1/2) works too. An STM line is (``;;`` lines are comments)::

    AlGore_2009 1 AlGore_2009 17.82 28.81 <o,f0,male> so it 's a pleasure to be here(2) {NOISE} today

Output per split: ``<split>.tsv/.wrd/.ltr/.report.json`` with audio ``<dest>/audio/<split>/<talk>/<id>.flac``
(16 kHz mono 16-bit, resampled with soxr if a talk is not 16 kHz), utterance id
``<talk>-<start cs:07d>-<end cs:07d>``; ``dict.ltr.txt``, ``lexicon.txt`` and ``lm.txt`` (train only).

Normalisation (:func:`normalize_words`, Kaldi's ``egs/tedlium/s5_r3`` conventions), counted in the report's
``normalisation`` block: segments whose text is ``ignore_time_segment_in_scoring`` are dropped; ``<unk>``,
noise tags (``{NOISE}``, ``{SMACK}``, ``{BREATH}``, ``{COUGH}``, any ``{...}``, ``<sil>``, any ``<...>``,
``[...]``) are removed; pronunciation variants ``word(2)`` become ``word``; a token starting with an
apostrophe is joined to the word before it (``it 's`` -> ``IT'S``, ``doesn 't`` -> ``DOESN'T``); text is
upper-cased. A segment left without words is dropped (counted, not a problem). Problems (counted in
``<split>.report.json``; ``--strict`` fails): sph without stm (``audio_without_transcript``), stm without
sph (``transcript_without_audio``), empty/unreadable sph, sph with more than one channel
(``wrong_channels``), unparsable STM lines (``bad_line``), segments with end <= start (``empty_segment``)
or starting after the end of the audio (``segment_beyond_audio``), words with symbols outside A-Z and
``'`` (``dropped_by_normalisation``), repeated segment ids (``duplicate_id``).
"""
import logging
import os
import re
from collections import Counter
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from .audio import convert_audio, probe_audio
from .common import (LETTERS, ManifestError, Report, Utterance, base_parser, outside_alphabet, parallel_map, run_main,
                     setup_logging, write_corpus_files, write_segmented_split)

logger = logging.getLogger("manifests.tedlium")

LAYOUTS = ("legacy", "speaker-adaptation")
SPLITS = ("train", "dev", "test")
IGNORE = "ignore_time_segment_in_scoring"
_VARIANT = re.compile(r"^(.+?)\(\d+\)$")  # that(2) -> that
_TAG = re.compile(r"^(\{.*\}|<.*>|\[.*\])$")  # {NOISE} <sil> [laughter]

Problem = Tuple[str, str, str]  # reason, where, detail


class StmSegment(NamedTuple):
    """One STM line: ``talk channel speaker start end [<label>] text`` (times in seconds)."""

    talk: str
    channel: str
    speaker: str
    start: float
    end: float
    label: str
    text: str


def parse_stm_line(line: str) -> Optional[StmSegment]:
    """An STM line as a :class:`StmSegment`; None for a comment or blank line; ValueError if malformed."""
    if not line.strip() or line.lstrip().startswith(";;"):
        return None
    fields = line.split()
    if len(fields) < 5:
        raise ValueError(f"expected 'talk channel speaker start end [<label>] text', got {line.strip()!r}")
    try:
        start, end = float(fields[3]), float(fields[4])
    except ValueError:
        raise ValueError(f"start/end {fields[3]!r} {fields[4]!r} are not numbers") from None
    rest = fields[5:]
    label = rest.pop(0) if rest and rest[0].startswith("<") and rest[0].endswith(">") and "," in rest[0] else ""
    return StmSegment(fields[0], fields[1], fields[2], start, end, label, " ".join(rest))


def normalize_words(text: str, stats: Optional[Counter] = None) -> str:
    """TED-LIUM text -> upper-case words (see the module docstring); ``stats`` counts what was changed.

    >>> normalize_words("so it 's a pleasure(2) {NOISE} to be <unk> here")
    "SO IT'S A PLEASURE TO BE HERE"
    """
    stats = stats if stats is not None else Counter()
    words: List[str] = []
    for token in text.split():
        if token.lower() == "<unk>":
            stats["unk_tokens"] += 1
            continue
        if _TAG.match(token):
            stats["noise_tags"] += 1
            continue
        m = _VARIANT.match(token)
        if m:
            stats["pronunciation_variants"] += 1
            token = m.group(1)
        if token.startswith("'") and len(token) > 1 and words:
            stats["joined_contractions"] += 1
            words[-1] += token
            continue
        words.append(token)
    return " ".join(words).upper()


def segment_id(talk: str, start: float, end: float) -> str:
    """``("AlGore_2009", 17.82, 28.81)`` -> ``"AlGore_2009-0001782-0002881"`` (centiseconds)."""
    return f"{talk}-{int(round(start * 100)):07d}-{int(round(end * 100)):07d}"


class TalkTask(NamedTuple):
    split: str
    talk: str
    stm: Optional[str]
    sph: Optional[str]
    out_dir: str  # <dest>/audio/<split>
    overwrite: bool


class TalkResult(NamedTuple):
    utterances: List[Utterance]
    problems: List[Problem]
    stats: Counter


def read_stm(path: str, stats: Counter, problems: List[Problem]) -> List[Tuple[int, StmSegment, str]]:
    """``(line number, segment, normalised words)`` of one talk's STM, ignore/empty segments counted in ``stats``."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                seg = parse_stm_line(line)
            except ValueError as e:
                problems.append(("bad_line", where, str(e)))
                continue
            if seg is None:
                continue
            if seg.text.strip().lower() == IGNORE:
                stats[f"segments_{IGNORE}"] += 1
                continue
            if seg.end <= seg.start:
                problems.append(("empty_segment", where, f"end {seg.end} <= start {seg.start}"))
                continue
            words = normalize_words(seg.text, stats)
            if not words:
                stats["segments_without_words"] += 1
                continue
            bad = outside_alphabet(words, LETTERS)
            if bad:
                problems.append(("dropped_by_normalisation", where, f"symbols {''.join(bad)!r} in {words!r}"))
                continue
            out.append((lineno, seg, words))
    return out


def process_talk(task: TalkTask) -> TalkResult:
    """One talk: parse its STM, check its sph, cut and convert the kept segments (worker function)."""
    stats: Counter = Counter()
    problems: List[Problem] = []
    if task.sph is None:
        n = sum(1 for ln in open(task.stm, encoding="utf-8",
                                 errors="replace") if ln.strip() and not ln.startswith(";;"))
        problems.append(("transcript_without_audio", task.stm, f"no sph/{task.talk}.sph for its {n} segment line(s)"))
        return TalkResult([], problems, stats)
    if task.stm is None:
        problems.append(("audio_without_transcript", task.sph, f"no stm/{task.talk}.stm"))
        return TalkResult([], problems, stats)
    probe = probe_audio(task.sph, sample_rate=None, channels=1)
    if probe.reason:
        problems.append((probe.reason, task.sph, probe.detail))
        return TalkResult([], problems, stats)
    import soundfile as sf

    duration = probe.num_samples / sf.info(task.sph).samplerate
    utts: List[Utterance] = []
    seen = set()
    for lineno, seg, words in read_stm(task.stm, stats, problems):
        where = f"{task.stm}:{lineno}"
        if seg.start >= duration:
            problems.append(("segment_beyond_audio", where, f"starts at {seg.start} s, audio is {duration:.2f} s"))
            continue
        uid = segment_id(task.talk, seg.start, seg.end)
        if uid in seen:
            problems.append(("duplicate_id", where, uid))
            continue
        seen.add(uid)
        if seg.end > duration:
            stats["segments_clipped_at_audio_end"] += 1
        dst = os.path.join(task.out_dir, task.talk, uid + ".flac")
        samples = convert_audio(task.sph, dst, start=seg.start, end=min(seg.end, duration), overwrite=task.overwrite)
        utts.append(Utterance(uid, os.path.abspath(dst), samples, words))
    return TalkResult(utts, problems, stats)


def find_layout_dir(root: str, layout: str) -> str:
    """The folder holding ``train/dev/test``: ``<root>/<layout>``, ``<root>/TEDLIUM_release-3/<layout>`` or
    ``<root>``."""
    if layout not in LAYOUTS:
        raise ManifestError(f"--layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    for cand in (os.path.join(root, layout), os.path.join(root, "TEDLIUM_release-3", layout), root):
        if any(os.path.isdir(os.path.join(cand, s, "stm")) for s in SPLITS):
            return cand
    raise ManifestError(f"no TED-LIUM {layout} layout under {root}: expected {root}/{layout}/{{train,dev,test}}/"
                        f"{{sph,stm}}/<talk>.{{sph,stm}} (pass the TEDLIUM_release-3 folder as --root)")


def talk_tasks(split_dir: str, split: str, out_dir: str, overwrite: bool) -> List[TalkTask]:
    """One task per talk named by an stm or an sph file, sorted by talk."""
    def names(sub: str, ext: str) -> Dict[str, str]:
        d = os.path.join(split_dir, sub)
        if not os.path.isdir(d):
            return {}
        return {f[: -len(ext)]: os.path.join(d, f) for f in os.listdir(d) if f.endswith(ext)}

    stms, sphs = names("stm", ".stm"), names("sph", ".sph")
    return [TalkTask(split, t, stms.get(t), sphs.get(t), out_dir, overwrite) for t in sorted(set(stms) | set(sphs))]


def prepare_tedlium(root: str, dest: str, layout: str = "legacy", splits: Sequence[str] = SPLITS, workers: int = 1,
                    strict: bool = False, overwrite: bool = False, progress: bool = True) -> Dict[str, Report]:
    """Write the TED-LIUM manifests of ``splits`` found under ``root`` (see the module docstring).

    Returns ``split -> Report``; raises ManifestError when no split is found or (``strict``) on problems.
    """
    root, dest = os.path.abspath(root), os.path.abspath(dest)
    base = find_layout_dir(root, layout)
    written: Dict[str, List[Utterance]] = {}
    reports: Dict[str, Report] = {}
    for split in splits:
        split_dir = os.path.join(base, split)
        if not os.path.isdir(split_dir):
            logger.info("%s: not found under %s, skipped", split, base)
            continue
        out_dir = os.path.join(dest, "audio", split)
        tasks = talk_tasks(split_dir, split, out_dir, overwrite)
        results = parallel_map(process_talk, tasks, workers, desc=split, progress=progress, unit="talk")
        utts, report = write_segmented_split(dest, split, results, strict, out_dir, info={"layout": layout})
        written[split] = utts
        reports[split] = report
    if not written:
        raise ManifestError(f"none of the splits {', '.join(splits)} found under {base}")
    lm_splits = ["train"] if "train" in written else list(written)
    write_corpus_files(dest, written, lm_splits)
    return reports


def build_parser(prog: Optional[str] = None):
    p = base_parser(prog or "python -m manifests.tedlium", __doc__)
    p.add_argument("--layout", choices=LAYOUTS, default="legacy",
                   help="TED-LIUM 3 split definition: legacy (TED-LIUM 2 dev/test, default) or speaker-adaptation")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), help="splits to write (default: train dev test)")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    args = build_parser(prog).parse_args(argv)
    setup_logging(args.verbose)
    return run_main(prog or "manifests.tedlium", lambda: prepare_tedlium(
        args.root, args.dest, layout=args.layout, splits=args.splits, workers=args.workers, strict=args.strict,
        overwrite=args.overwrite, progress=not args.no_progress))


if __name__ == "__main__":
    raise SystemExit(main())
