"""LibriSpeech (+ Libri-light limited supervision) manifests for fairseq.

    python -m manifests.librispeech --root /data/LibriSpeech --dest data/librispeech
    sew-manifest librispeech --root /data/LibriSpeech --dest data/librispeech [--finetuning-root DIR]

Input: the LibriSpeech layout ``<root>/<split>/SPK/CHAP/SPK-CHAP-UTT.flac`` + ``SPK-CHAP.trans.txt``
(``UTT-ID WORDS...`` per line). Every sub-folder of ``--root`` with that layout is a split
(train-clean-100, train-clean-360, train-other-500, dev-clean, dev-other, test-clean, test-other, and
any other such as mini_librispeech's dev-clean-2), written as ``<split>.tsv/.wrd/.ltr`` with the split
folder as audio root (as fairseq's ``wav2vec_manifest.py`` + ``libri_labels.py`` would). Also:

- ``train-960``: train-clean-100 + train-clean-360 + train-other-500 (written only when all three are
  there), audio root ``--root``;
- Libri-light's limited-supervision sets from ``librispeech_finetuning/`` (``--finetuning-root``, by
  default ``<root>/librispeech_finetuning`` or ``<root>/../librispeech_finetuning``; layout
  ``1h/{0..5}/{clean,other}/SPK/CHAP/...`` and ``9h/{clean,other}/SPK/CHAP/...``): ``train-10m`` = 1h/0,
  ``train-1h`` = 1h/0-5, ``train-10h`` = 1h/0-5 + 9h, audio root ``librispeech_finetuning``.

These names are the ``dataset.train_subset`` / ``valid_subset`` of ``recipes/finetuning/*.yaml``.

Audio is not converted (LibriSpeech is 16 kHz mono FLAC): only headers are read (FLAC STREAMINFO, 42
bytes per file), one worker task per chapter folder. Transcripts are kept as they are (upper-cased; letters
and apostrophes); a line with any other symbol is dropped and counted (``dropped_by_normalisation``).
Counted, never silent (``<split>.report.json``; ``--strict`` fails instead): transcript lines whose
flac is absent (``transcript_without_audio``), flacs no line names (``audio_without_transcript``),
empty/corrupt/stereo/non-16 kHz flacs, unparsable or empty lines, duplicate ids.

Also written: ``dict.ltr.txt`` (letters of all splits), ``lexicon.txt`` and ``lm.txt`` (from the
training splits: train-960 when written, else every ``train*`` split, else all splits).

``--overwrite`` (the converting builders, tedlium, voxpopuli and switchboard, convert audio again with it) has
nothing to redo here, as with timit: nothing is converted and every run rewrites the manifests. Given, a warning
says it has no effect.
"""
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

from .audio import probe_audio
from .common import (LETTERS, ManifestError, Report, Utterance, base_parser, outside_alphabet, parallel_map, run_main,
                     setup_logging, squeeze_spaces, write_corpus_files, write_split)

logger = logging.getLogger("manifests.librispeech")

STANDARD_SPLITS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other",
                   "test-clean", "test-other")
TRAIN_960 = ("train-clean-100", "train-clean-360", "train-other-500")
FINETUNING_DIR = "librispeech_finetuning"
#: Libri-light set -> folders of librispeech_finetuning/ (each holding SPK/CHAP/ chapters)
LIBRILIGHT_SETS = {
    "train-10m": ("1h/0/clean", "1h/0/other"),
    "train-1h": tuple(f"1h/{i}/{k}" for i in range(6) for k in ("clean", "other")),
    "train-10h": tuple(f"1h/{i}/{k}" for i in range(6) for k in ("clean", "other")) + ("9h/clean", "9h/other"),
}

Problem = Tuple[str, str, str]  # reason, where, detail


def _subdirs(path: str) -> List[str]:
    try:
        return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))
    except FileNotFoundError:
        return []


def chapter_dirs(group: str) -> List[str]:
    """``group/SPK/CHAP`` folders, sorted."""
    return [os.path.join(group, s, c) for s in _subdirs(group) for c in _subdirs(os.path.join(group, s))]


def is_split_dir(path: str) -> bool:
    """True if ``path`` has the ``SPK/CHAP/SPK-CHAP.trans.txt`` or ``SPK/CHAP/*.flac`` layout."""
    for spk in _subdirs(path):
        for chap in _subdirs(os.path.join(path, spk)):
            with os.scandir(os.path.join(path, spk, chap)) as it:
                if any(e.name.endswith((".trans.txt", ".flac")) for e in it):
                    return True
    return False


def read_chapter(chapter: str) -> Tuple[List[Utterance], List[Problem]]:
    """One ``SPK/CHAP`` folder: its utterances (sorted by id) and problems, reading flac headers only."""
    spk, chap = os.path.basename(os.path.dirname(chapter)), os.path.basename(chapter)
    trans_name = f"{spk}-{chap}.trans.txt"
    flacs = {}
    has_trans = False
    with os.scandir(chapter) as it:
        for e in it:
            if e.name.endswith(".flac"):
                flacs[e.name[:-5]] = e.path
            elif e.name == trans_name:
                has_trans = True
    problems: List[Problem] = []
    texts: Dict[str, str] = {}
    trans_path = os.path.join(chapter, trans_name)
    lines: List[str] = []
    missing_why = "" if has_trans else f"{trans_name} not found"
    if has_trans:
        try:
            with open(trans_path, encoding="utf-8") as f:
                lines = [x.rstrip("\r") for x in f.read().split("\n")]  # a last line without "\n" reads the same
        except UnicodeDecodeError as e:
            problems.append(("unreadable", trans_path, f"not UTF-8 ({e.reason} at byte {e.start})"))
            missing_why = f"{trans_name} is not UTF-8"  # its flacs count as audio_without_transcript
    for lineno, line in enumerate(lines, 1):
        where = f"{trans_path}:{lineno}"
        fields = line.split(None, 1)
        if not fields:
            continue  # blank line
        uid = fields[0]
        words = squeeze_spaces(fields[1]).upper() if len(fields) > 1 else ""
        if not uid.startswith(f"{spk}-{chap}-"):
            problems.append(("bad_line", where, f"id {uid!r} does not start with {spk}-{chap}-"))
            continue
        if uid in texts:
            problems.append(("duplicate_id", where, uid))
            continue
        if not words:
            problems.append(("empty_transcript", where, uid))
            texts[uid] = ""
            continue
        bad = outside_alphabet(words, LETTERS)
        if bad:
            problems.append(("dropped_by_normalisation", where, f"{uid}: symbols {''.join(bad)!r}"))
            texts[uid] = ""
            continue
        if uid not in flacs:
            problems.append(("transcript_without_audio", where, f"{uid}.flac not found"))
            continue
        texts[uid] = words
    utts: List[Utterance] = []
    for uid in sorted(flacs):
        path = os.path.abspath(flacs[uid])
        if uid not in texts:
            problems.append(("audio_without_transcript", path, missing_why or f"no line in {trans_name}"))
            continue
        if not texts[uid]:
            continue  # counted above
        probe = probe_audio(path, sample_rate=16000, channels=1)
        if probe.reason:
            problems.append((probe.reason, path, probe.detail))
            continue
        utts.append(Utterance(uid, path, probe.num_samples, texts[uid]))
    return utts, problems


def read_group(name: str, groups: Sequence[str], workers: int, progress: bool,
               cache: Optional[Dict[str, Tuple[List[Utterance], List[Problem]]]] = None
               ) -> Tuple[List[Utterance], Report]:
    """Utterances and report of the chapters under ``groups`` (folders of ``SPK/CHAP``), in order."""
    cache = {} if cache is None else cache
    chapters = [c for g in groups for c in chapter_dirs(g)]
    todo = [c for c in chapters if c not in cache]
    for c, result in zip(todo, parallel_map(read_chapter, todo, workers, desc=name, progress=progress, unit="chapter")):
        cache[c] = result
    report = Report(name)
    utts: List[Utterance] = []
    for c in chapters:
        u, problems = cache[c]
        utts += u
        for reason, where, detail in problems:
            report.add(reason, where, detail)
    return utts, report


def find_finetuning_root(root: str) -> Optional[str]:
    for cand in (os.path.join(root, FINETUNING_DIR), os.path.join(os.path.dirname(os.path.abspath(root)),
                                                                  FINETUNING_DIR)):
        if os.path.isdir(cand):
            return cand
    return None


def prepare_librispeech(root: str, dest: str, finetuning_root: Optional[str] = None,
                        splits: Optional[Sequence[str]] = None,
                        workers: int = 1, strict: bool = False, progress: bool = True) -> Dict[str, Report]:
    """Write the manifests of every LibriSpeech split and Libri-light set found; return ``split -> Report``.

    ``splits``: only these names (split folders, ``train-960``, ``train-10m/1h/10h``); default: all found.
    Raises ManifestError if nothing is found, or (``strict``) on the first split with problems.
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise ManifestError(f"--root {root} is not a directory")
    ft_root = os.path.abspath(finetuning_root) if finetuning_root else find_finetuning_root(root)
    if finetuning_root and not os.path.isdir(ft_root):
        raise ManifestError(f"--finetuning-root {ft_root} is not a directory")
    found = [d for d in _subdirs(root) if d != FINETUNING_DIR and is_split_dir(os.path.join(root, d))]
    found.sort(key=lambda d: (STANDARD_SPLITS.index(d) if d in STANDARD_SPLITS else len(STANDARD_SPLITS), d))
    wanted = set(splits) if splits else None
    cache: Dict[str, Tuple[List[Utterance], List[Problem]]] = {}
    written: Dict[str, List[Utterance]] = {}
    reports: Dict[str, Report] = {}

    def emit(name: str, utts: List[Utterance], report: Report, audio_root: str) -> None:
        report.strict = strict
        write_split(dest, name, utts, report, audio_root=audio_root)
        written[name] = utts
        reports[name] = report
        logger.info("%s", report.summary())

    per_folder: Dict[str, Tuple[List[Utterance], Report]] = {}
    need_960 = wanted is None or "train-960" in wanted
    for d in found:
        if wanted is not None and d not in wanted and not (need_960 and d in TRAIN_960):
            continue
        per_folder[d] = read_group(d, [os.path.join(root, d)], workers, progress, cache)
        if wanted is None or d in wanted:
            emit(d, *per_folder[d], audio_root=os.path.join(root, d))
    if need_960:
        if all(d in per_folder for d in TRAIN_960):
            report = Report("train-960")
            utts: List[Utterance] = []
            for d in TRAIN_960:
                utts += per_folder[d][0]
                report.merge(per_folder[d][1])
            emit("train-960", utts, report, audio_root=root)
        elif any(d in per_folder for d in TRAIN_960) or (wanted and "train-960" in wanted):
            logger.info("train-960 not written: %s not found under %s",
                        ", ".join(d for d in TRAIN_960 if d not in per_folder), root)
    if ft_root:
        for name, groups in LIBRILIGHT_SETS.items():
            if wanted is not None and name not in wanted:
                continue
            paths = [os.path.join(ft_root, g) for g in groups]
            absent = [g for g, p in zip(groups, paths) if not os.path.isdir(p)]
            if absent:
                logger.info("%s not written: %s missing under %s", name, ", ".join(absent), ft_root)
                continue
            emit(name, *read_group(name, paths, workers, progress, cache), audio_root=ft_root)
    if not written:
        raise ManifestError(f"no LibriSpeech split found under {root} (expected <split>/SPK/CHAP/SPK-CHAP.trans.txt"
                            + (f"; none of {sorted(wanted)}" if wanted else "") + ")")
    if "train-960" in written:
        lm_splits = ["train-960"]
    else:
        lm_splits = [s for s in written if s.startswith("train")] or list(written)
    write_corpus_files(dest, written, lm_splits)
    logger.info("wrote %d split(s) to %s (%s); lexicon and LM text from %s",
                len(written), dest, ", ".join(written), ", ".join(lm_splits))
    return reports


def build_parser(prog: Optional[str] = None):
    p = base_parser(prog or "python -m manifests.librispeech", __doc__)
    p.add_argument("--finetuning-root", help="Libri-light's librispeech_finetuning/ folder (default: "
                   "<root>/librispeech_finetuning or <root>/../librispeech_finetuning if present)")
    p.add_argument("--splits", nargs="+", help="only these splits (folder names, train-960, train-10m, "
                   "train-1h, train-10h); default: all found")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    args = build_parser(prog).parse_args(argv)
    setup_logging(args.verbose)
    name = prog or "manifests.librispeech"
    if args.overwrite:
        logger.warning("%s: --overwrite has no effect: LibriSpeech's FLACs are used where they are (nothing is "
                       "converted, so nothing is converted again) and the manifests are rewritten on every run", name)
    return run_main(name, lambda: prepare_librispeech(
        args.root, args.dest, finetuning_root=args.finetuning_root, splits=args.splits, workers=args.workers,
        strict=args.strict, progress=not args.no_progress))


if __name__ == "__main__":
    raise SystemExit(main())
