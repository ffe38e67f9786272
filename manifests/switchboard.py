"""Switchboard-1 (LDC97S62) + Hub5'00 (eval2000) manifests for fairseq, Fisher transcripts as LM text.

    python -m manifests.switchboard --root /data/LDC97S62 --transcripts /data/swb_ms98_transcriptions \\
        --hub5-audio /data/LDC2002S09/hub5e_00 --hub5-transcripts /data/LDC2002T43 --dest data/swbd
    sew-manifest switchboard --root ... --dest ... --fisher-dir /data/LDC2004T19 /data/LDC2005T19

Input:

- ``--root``: Switchboard-1 audio, found recursively as ``sw0NNNN.sph`` (2-channel 8 kHz mu-law SPHERE;
  side A = channel 1, side B = channel 2).
- ``--transcripts``: the ISIP/MSU ms98 word transcripts (default: ``swb_ms98_transcriptions`` under or beside
  ``--root``), ``NN/NNNN/swNNNN{A,B}-ms98-a-trans.text``, lines ``sw2001A-ms98-a-0001 0.000000 0.977625 words``.
- ``--hub5-audio`` / ``--hub5-transcripts`` (optional): LDC2002S09 (``english/{sw,en}_NNNN.sph``) and
  LDC2002T43 (``reference/hub5e00.english.000405.stm``, ``reference/en20000405_hub5.glm``).
- ``--fisher-dir`` (optional, several): Fisher English transcripts (``**/fe_03_NNNNN.txt``, lines
  ``start end A: words``), added to the LM text only.

Output: ``train`` and ``dev`` (the first ``--dev-conversations`` conversations in sorted order, held out
whole, as Kaldi's s5c takes its first 4,000 utterances) and ``eval2000`` (when given), each
``<split>.tsv/.wrd/.ltr/.report.json`` with audio ``<dest>/audio/<split>/<conversation>/<id>.flac``: each channel
is resampled once to 16 kHz with soxr (HQ) and cut into segments, 16-bit mono FLAC. Segment ids are Kaldi's
``sw02001-A_000098-001156`` (side, start and end in centiseconds; ``manifests.sclite`` turns
``sew-infer``'s hypotheses into a CTM from them). Also ``dict.ltr.txt``, ``lexicon.txt`` and ``lm.txt``
(train + Fisher), and for scoring ``eval2000.stm`` (Kaldi's fixes: ``((`` -> ``(``, no ``<B_ASIDE>``/``<E_ASIDE>``)
and ``eval2000.glm``.

Normalisation (:func:`normalize_words`; Kaldi's ``swbd1_data_prep.sh`` + ``swbd1_map_words.pl`` for a letter
model), counted in the report's ``normalisation`` block: ``[silence]``, ``<b_aside>``, ``<e_aside>``, ``[noise]``,
``[vocalized-noise]``, ``[laughter]`` are removed; ``[laughter-yes]`` -> ``YES``; mispronunciations
``[it'n/isn't]`` keep what was said (``IT'N``); ``{yuppiedom}`` -> ``YUPPIEDOM``; ``them_1`` -> ``THEM``;
spelled acronyms ``t_v`` -> ``T V``; ``&`` -> ``AND`` (``at&t`` -> ``AT AND T``); backchannels are joined
(``uh-huh`` -> ``UHHUH``, as the eval2000 STM writes them), other hyphenated words split (``x-ray`` -> ``X RAY``,
as sclite's ``-dh`` scores them); partial words (``th[e]-``, ``-[an]y``, ``abso-``) are
removed (``--keep-partial-words`` keeps ``TH-``, adding ``-`` to the letters); hesitations ``uh``, ``um`` stay
(``--drop-hesitations`` removes them; ``manifests.sclite`` removes them from hypotheses before
scoring, as Kaldi does). Upper case. A segment left without words is dropped (counted, not a problem).

Problems (``<split>.report.json``; ``--strict`` fails naming file and line): missing/unreadable/empty sph,
shorten-compressed sph without ``--sph2pipe`` (``unreadable``, with the fix), sph with other than 2 channels
(``wrong_channels``), transcripts without sph and the reverse, bad lines, segments with end <= start
(``empty_segment``) or beyond the audio (``segment_beyond_audio``), words outside the letters
(``dropped_by_normalisation``), repeated ids.
"""
import glob
import io
import logging
import os
import re
import subprocess
from collections import Counter
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from .audio import write_flac
from .switchboard_text import fisher_lines, normalize_stm_text, normalize_words
from .common import (LETTERS, ManifestError, Report, Utterance, atomic_write_text, base_parser, build_lexicon,
                     lexicon_lines, outside_alphabet, parallel_map, run_main, setup_logging, write_corpus_files,
                     write_segmented_split)

logger = logging.getLogger("manifests.switchboard")

SAMPLE_RATE = 16000
HUB5_STM = "hub5e00.english.000405.stm"
HUB5_GLM = "en20000405_hub5.glm"
_MS98_LINE = re.compile(r"^sw(\d{4})([AB])-ms98-a-(\d+)$")
_MS98_FILE = re.compile(r"^sw(\d{4})([AB])-ms98-a-trans\.text$")

Problem = Tuple[str, str, str]  # reason, where, detail


# ------------------------------------------------------------------------------------------ parsing


class Segment(NamedTuple):
    """A transcribed stretch of one side of a conversation."""

    conversation: str  # sw02001 / en_4156 (the sph file's stem)
    side: str  # A (channel 1) or B (channel 2)
    start: float
    end: float
    words: str  # normalised
    where: str  # file:line


def segment_id(conversation: str, side: str, start: float, end: float) -> str:
    """Kaldi's id: ``("sw02001", "A", 0.98, 11.56)`` -> ``"sw02001-A_000098-001156"``."""
    return f"{conversation}-{side}_{int(round(start * 100)):06d}-{int(round(end * 100)):06d}"


def _usable(words: str, where: str, stats: Counter, problems: List[Problem], keep_partial: bool) -> bool:
    """A normalised segment is kept if it has words, all in the letter alphabet (``-`` too with partial
    words kept); a segment left without words is counted in ``stats``, one with other symbols in ``problems``."""
    if not words:
        stats["segments_without_words"] += 1
        return False
    bad = outside_alphabet(words, LETTERS | ({"-"} if keep_partial else set()))
    if bad:
        problems.append(("dropped_by_normalisation", where, f"symbols {''.join(bad)!r} in {words!r}"))
        return False
    return True


def read_ms98(path: str, stats: Counter, problems: List[Problem], keep_partial: bool = False,
              drop_hesitations: bool = False) -> List[Segment]:
    """Segments of one ``swNNNN{A,B}-ms98-a-trans.text`` file (conversation ``sw0NNNN``)."""
    segs = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            where = f"{path}:{lineno}"
            fields = line.split()
            if not fields:
                continue
            m = _MS98_LINE.match(fields[0])
            try:
                start, end = float(fields[1]), float(fields[2])
            except (IndexError, ValueError):
                m = None
            if m is None:
                problems.append(("bad_line", where,
                                 f"expected 'swNNNN[AB]-ms98-a-NNNN start end words', got {line.strip()!r}"))
                continue
            if end <= start:
                problems.append(("empty_segment", where, f"end {end} <= start {start}"))
                continue
            words = normalize_words(" ".join(fields[3:]), stats, keep_partial, drop_hesitations)
            if _usable(words, where, stats, problems, keep_partial):
                segs.append(Segment(f"sw0{m.group(1)}", m.group(2), start, end, words, where))
    return segs


def read_hub5_stm(path: str, stats: Counter, problems: List[Problem], keep_partial: bool = False) -> List[Segment]:
    """Segments of the eval2000 STM (``en_4156 A en_4156_A 357.64 359.64 <O,en,F,en-F> WORDS``)."""
    segs = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            where = f"{path}:{lineno}"
            if not line.strip() or line.startswith(";;"):
                continue
            fields = line.split()
            try:
                start, end = float(fields[3]), float(fields[4])
                side = fields[1].upper()
                if side not in ("A", "B", "1", "2"):
                    raise ValueError(side)
            except (IndexError, ValueError):
                problems.append(("bad_line", where,
                                 f"expected 'file channel speaker start end <label> text', got {line.strip()!r}"))
                continue
            side = {"1": "A", "2": "B"}.get(side, side)
            text = " ".join(t for t in fields[5:] if not (t.startswith("<") and t.endswith(">") and "," in t))
            if "IGNORE_TIME_SEGMENT_IN_SCORING" in text.upper():
                stats["segments_ignore_time_segment_in_scoring"] += 1
                continue
            if end <= start:
                problems.append(("empty_segment", where, f"end {end} <= start {start}"))
                continue
            words = normalize_stm_text(text, stats, keep_partial)
            if _usable(words, where, stats, problems, keep_partial):
                segs.append(Segment(fields[0], side, start, end, words, where))
    return segs


def fix_hub5_stm(src: str, dst: str) -> None:
    """Copy the eval2000 STM for sclite with Kaldi's fixes (``((`` -> ``(``, ``<B_ASIDE>``/``<E_ASIDE>`` removed)."""
    with open(src, encoding="utf-8", errors="replace") as f:
        lines = [ln.rstrip("\n").replace("((", "(").replace("<B_ASIDE>", "").replace("<E_ASIDE>", "") for ln in f]
    atomic_write_text(dst, lines)


# -------------------------------------------------------------------------------------------- audio


def sphere_header(path: str) -> Dict[str, str]:
    """The fields of a NIST SPHERE header (``sample_coding`` -> ``ulaw,embedded-shorten-v2.00``); {} if not SPHERE."""
    with open(path, "rb") as f:
        head = f.read(1024)
    if not head.startswith(b"NIST_1A"):
        return {}
    fields = {}
    for line in head.decode("ascii", "replace").splitlines()[2:]:
        if line.startswith("end_head"):
            break
        parts = line.split(None, 2)
        if len(parts) == 3:
            fields[parts[0]] = parts[2]
    return fields


def read_sph(path: str, sph2pipe: Optional[str] = None):
    """``(samples [frames, channels] float32, sample rate)`` of a SPHERE file.

    soundfile (libsndfile) reads PCM, mu-law and a-law SPHERE, not LDC's shorten-compressed files
    (``sample_coding ... embedded-shorten``): those need ``sph2pipe`` (``sph2pipe -f wav FILE``).
    """
    import soundfile as sf

    coding = sphere_header(path).get("sample_coding", "")
    if "shorten" in coding:
        if not sph2pipe:
            raise ValueError(f"shorten-compressed SPHERE ({coding}): pass --sph2pipe /path/to/sph2pipe "
                             f"(or convert first: sph2pipe -f wav {path} out.wav)")
        wav = subprocess.run([sph2pipe, "-f", "wav", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if wav.returncode != 0:
            raise ValueError(f"sph2pipe failed: {wav.stderr.decode('utf-8', 'replace').strip()}")
        return sf.read(io.BytesIO(wav.stdout), dtype="float32", always_2d=True)
    return sf.read(path, dtype="float32", always_2d=True)


class ConversationTask(NamedTuple):
    conversation: str
    sph: Optional[str]
    segments: Tuple[Segment, ...]
    transcript_files: Tuple[str, ...]
    out_dir: str  # <dest>/audio/<split>
    sph2pipe: Optional[str]
    overwrite: bool


class ConversationResult(NamedTuple):
    utterances: List[Utterance]
    problems: List[Problem]
    stats: Counter


def process_conversation(task: ConversationTask) -> ConversationResult:
    """Read one 2-channel sph, resample each side to 16 kHz once, cut and write its segments (worker)."""
    stats: Counter = Counter()
    problems: List[Problem] = []
    if task.sph is None:
        for path in task.transcript_files:
            problems.append(("transcript_without_audio", path, f"no {task.conversation}.sph under --root"))
        return ConversationResult([], problems, stats)
    if not task.segments and not task.transcript_files:
        problems.append(("audio_without_transcript", task.sph, f"no transcript names {task.conversation}"))
        return ConversationResult([], problems, stats)
    if os.path.getsize(task.sph) == 0:
        problems.append(("empty", task.sph, "0 bytes"))
        return ConversationResult([], problems, stats)
    try:
        audio, rate = read_sph(task.sph, task.sph2pipe)
    except Exception as e:  # libsndfile errors, sph2pipe failures, shorten without sph2pipe
        problems.append(("unreadable", task.sph, f"{type(e).__name__}: {e}".strip()))
        return ConversationResult([], problems, stats)
    if audio.shape[0] == 0:
        problems.append(("no_frames", task.sph, "0 samples"))
        return ConversationResult([], problems, stats)
    if audio.shape[1] != 2:
        problems.append(("wrong_channels", task.sph, f"{audio.shape[1]} channel(s), expected 2 (sides A and B)"))
        return ConversationResult([], problems, stats)
    import soxr

    sides = {}
    duration = audio.shape[0] / rate
    utts: List[Utterance] = []
    seen = set()
    for seg in sorted(task.segments, key=lambda s: (s.side, s.start, s.end)):
        if seg.start >= duration:
            problems.append(("segment_beyond_audio", seg.where, f"starts at {seg.start} s, audio is {duration:.2f} s"))
            continue
        uid = segment_id(task.conversation, seg.side, seg.start, seg.end)
        if uid in seen:
            problems.append(("duplicate_id", seg.where, uid))
            continue
        seen.add(uid)
        if seg.side not in sides:
            channel = audio[:, 0 if seg.side == "A" else 1]
            sides[seg.side] = channel if rate == SAMPLE_RATE else soxr.resample(channel, rate, SAMPLE_RATE,
                                                                                quality="HQ")
        signal = sides[seg.side]
        if seg.end > duration:
            stats["segments_clipped_at_audio_end"] += 1
        first, last = int(round(seg.start * SAMPLE_RATE)), min(int(round(seg.end * SAMPLE_RATE)), len(signal))
        dst = os.path.join(task.out_dir, task.conversation, uid + ".flac")
        samples = write_flac(dst, signal[first:last], SAMPLE_RATE, task.overwrite)
        utts.append(Utterance(uid, os.path.abspath(dst), samples, seg.words))
    return ConversationResult(utts, problems, stats)


# ------------------------------------------------------------------------------------------ builder


def find_files(root: str, pattern: str) -> Dict[str, str]:
    """``stem -> path`` of the files matching ``pattern`` (case-insensitive suffix) under ``root``, recursively."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.lower().endswith(pattern):
                out.setdefault(name[: -len(pattern)], os.path.join(dirpath, name))
    return out


def default_transcripts(root: str) -> Optional[str]:
    for cand in (os.path.join(root, "swb_ms98_transcriptions"),
                 os.path.join(os.path.dirname(root), "swb_ms98_transcriptions")):
        if os.path.isdir(cand):
            return cand
    return None


def _run_split(name: str, tasks: List[ConversationTask], dest: str, strict: bool, workers: int, progress: bool,
               problems: List[Problem], stats: Counter, info: Optional[dict] = None) -> Tuple[List[Utterance], Report]:
    results = parallel_map(process_conversation, tasks, workers, desc=name, progress=progress, unit="conversation")
    return write_segmented_split(dest, name, results, strict, os.path.join(dest, "audio", name), problems, stats, info)


def prepare_switchboard(root: str, dest: str, transcripts: Optional[str] = None, dev_conversations: int = 30,
                        hub5_audio: Optional[str] = None, hub5_transcripts: Optional[str] = None,
                        fisher_dirs: Sequence[str] = (), sph2pipe: Optional[str] = None,
                        keep_partial_words: bool = False,
                        drop_hesitations: bool = False, workers: int = 1, strict: bool = False, overwrite: bool = False,
                        progress: bool = True) -> Dict[str, Report]:
    """Write ``train``, ``dev`` and (with the Hub5 inputs) ``eval2000`` (see the module docstring)."""
    root, dest = os.path.abspath(root), os.path.abspath(dest)
    if not os.path.isdir(root):
        raise ManifestError(f"--root {root} is not a directory")
    transcripts = transcripts or default_transcripts(root)
    if not transcripts or not os.path.isdir(transcripts):
        raise ManifestError(f"ms98 transcripts not found (looked for swb_ms98_transcriptions in and beside {root}); "
                            f"pass --transcripts DIR")
    sphs = {k.lower(): v for k, v in find_files(root, ".sph").items()}
    # ms98 files, by conversation (sw0NNNN), with their problems and normalisation counts
    by_conv: Dict[str, List[Segment]] = {}
    files_by_conv: Dict[str, List[str]] = {}
    problems_by_conv: Dict[str, List[Problem]] = {}
    stats_by_conv: Dict[str, Counter] = {}
    for dirpath, _, files in os.walk(transcripts):
        for name in sorted(files):
            m = _MS98_FILE.match(name)
            if not m:
                continue
            path = os.path.join(dirpath, name)
            conv = f"sw0{m.group(1)}"
            files_by_conv.setdefault(conv, []).append(path)
            by_conv.setdefault(conv, []).extend(read_ms98(
                path, stats_by_conv.setdefault(conv, Counter()), problems_by_conv.setdefault(conv, []),
                keep_partial_words, drop_hesitations))
    if not files_by_conv:
        raise ManifestError(f"no swNNNN[AB]-ms98-a-trans.text files under {transcripts}")
    conversations = sorted(set(files_by_conv) | set(sphs))
    dev = set(sorted(files_by_conv)[:dev_conversations])
    if dev_conversations >= len(files_by_conv):
        raise ManifestError(f"--dev-conversations {dev_conversations} leaves no training conversation "
                            f"({len(files_by_conv)} transcribed)")
    fisher_text: List[str] = []
    if fisher_dirs:
        fstats: Counter = Counter()
        paths = sorted(p for d in fisher_dirs for p in glob.glob(os.path.join(d, "**", "*.txt"), recursive=True))
        fisher_text = fisher_lines(paths, fstats)
        logger.info("Fisher: %d LM lines from %d files (%s)", len(fisher_text), len(paths),
                    ", ".join(f"{k} {v}" for k, v in sorted(fstats.items())))
    written: Dict[str, List[Utterance]] = {}
    reports: Dict[str, Report] = {}
    for name, members in (("dev", sorted(dev)), ("train", [c for c in conversations if c not in dev])):
        out_dir = os.path.join(dest, "audio", name)
        tasks = [ConversationTask(c, sphs.get(c), tuple(by_conv.get(c, ())), tuple(files_by_conv.get(c, ())),
                                  out_dir, sph2pipe, overwrite) for c in members]
        own = [p for c in members for p in problems_by_conv.get(c, ())]
        info = {"conversations": len(members)}
        if name == "train" and fisher_dirs:
            info["fisher_lm_lines"] = len(fisher_text)
        split_stats: Counter = Counter()
        for c in members:
            split_stats.update(stats_by_conv.get(c, Counter()))
        written[name], reports[name] = _run_split(name, tasks, dest, strict, workers, progress, own, split_stats, info)
    if hub5_audio or hub5_transcripts:
        written["eval2000"], reports["eval2000"] = prepare_eval2000(
            hub5_audio, hub5_transcripts, dest, sph2pipe, keep_partial_words, workers, strict, overwrite, progress)
    write_corpus_files(dest, written, ["train"])
    if fisher_text:
        lm = [u.words for u in written["train"]] + fisher_text
        atomic_write_text(os.path.join(dest, "lm.txt"), lm)
        atomic_write_text(os.path.join(dest, "lexicon.txt"),
                          lexicon_lines(build_lexicon(sorted({w for ln in lm for w in ln.split()}))))
    return reports


def prepare_eval2000(hub5_audio: Optional[str], hub5_transcripts: Optional[str], dest: str, sph2pipe: Optional[str],
                     keep_partial_words: bool, workers: int, strict: bool, overwrite: bool, progress: bool
                     ) -> Tuple[List[Utterance], Report]:
    """The Hub5'00 split from LDC2002S09 sph + LDC2002T43 stm; also ``eval2000.stm`` / ``eval2000.glm`` in ``dest``."""
    if not (hub5_audio and hub5_transcripts):
        raise ManifestError("eval2000 needs both --hub5-audio (LDC2002S09) and --hub5-transcripts (LDC2002T43)")
    stm = find_files(hub5_transcripts, ".000405.stm").get("hub5e00.english")
    if stm is None:
        raise ManifestError(f"{HUB5_STM} not found under {hub5_transcripts}")
    glm = os.path.join(os.path.dirname(stm), HUB5_GLM)
    stats: Counter = Counter()
    problems: List[Problem] = []
    segs = read_hub5_stm(stm, stats, problems, keep_partial_words)
    sphs = find_files(hub5_audio, ".sph")
    by_conv: Dict[str, List[Segment]] = {}
    for s in segs:
        by_conv.setdefault(s.conversation, []).append(s)
    out_dir = os.path.join(dest, "audio", "eval2000")
    tasks = [ConversationTask(c, sphs.get(c), tuple(by_conv.get(c, ())), (stm,) if c in by_conv else (), out_dir,
                              sph2pipe, overwrite) for c in sorted(set(by_conv) | set(sphs))]
    result = _run_split("eval2000", tasks, dest, strict, workers, progress, problems, stats,
                        {"conversations": len(tasks)})
    fix_hub5_stm(stm, os.path.join(dest, "eval2000.stm"))
    if os.path.isfile(glm):
        with open(glm, encoding="utf-8", errors="replace") as f:
            atomic_write_text(os.path.join(dest, "eval2000.glm"), [ln.rstrip("\n") for ln in f])
    else:
        logger.warning("%s not found beside %s: score eval2000 without a GLM or pass one to the scorer", HUB5_GLM, stm)
    return result


def build_parser(prog: Optional[str] = None):
    p = base_parser(prog or "python -m manifests.switchboard", __doc__)
    p.add_argument("--transcripts", help="swb_ms98_transcriptions folder (default: found in or beside --root)")
    p.add_argument("--dev-conversations", type=int, default=30,
                   help="first N conversations (sorted) held out as dev (default 30, about 4,000 segments)")
    p.add_argument("--hub5-audio", help="Hub5'00 audio (LDC2002S09), holding english/*.sph")
    p.add_argument("--hub5-transcripts", help="Hub5'00 transcripts (LDC2002T43), holding reference/" + HUB5_STM)
    p.add_argument("--fisher-dir", nargs="+", default=[], help="Fisher transcript folders (LM text only)")
    p.add_argument("--sph2pipe", help="sph2pipe binary, needed for LDC's shorten-compressed sph files")
    p.add_argument("--keep-partial-words", action="store_true",
                   help="keep partial words (TH-) instead of removing them")
    p.add_argument("--drop-hesitations", action="store_true", help="remove uh/um from the labels")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    args = build_parser(prog).parse_args(argv)
    setup_logging(args.verbose)
    return run_main(prog or "manifests.switchboard", lambda: prepare_switchboard(
        args.root, args.dest, transcripts=args.transcripts, dev_conversations=args.dev_conversations,
        hub5_audio=args.hub5_audio, hub5_transcripts=args.hub5_transcripts, fisher_dirs=args.fisher_dir,
        sph2pipe=args.sph2pipe, keep_partial_words=args.keep_partial_words, drop_hesitations=args.drop_hesitations,
        workers=args.workers, strict=args.strict, overwrite=args.overwrite, progress=not args.no_progress))


if __name__ == "__main__":
    raise SystemExit(main())
