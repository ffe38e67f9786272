"""TIMIT manifests for fairseq: Kaldi's train / dev / core-test splits with 39-phone and word labels.

    python -m manifests.timit --root /data/timit/TIMIT --dest data/timit
    sew-manifest timit --root /data/timit/TIMIT --dest data/timit [--splits train dev test] [--no-merge-sil]

Input: the LDC93S1 layout ``<root>/{TRAIN,TEST}/DR1..DR8/<SPEAKER>/<SENTENCE>.{WAV,PHN,WRD,TXT}``, upper- or
lower-case names (``timit/train/dr1/fcjf0/si1027.wav`` works the same; ``--root`` may also be the folder above
``TIMIT/``). Sentences are ``SA1``/``SA2`` (dialect sentences read by every speaker), ``SI<n>`` and ``SX<n>``.
The ``.WAV`` files are NIST SPHERE, 16 kHz 16-bit mono. ``.PHN`` lines are ``start_sample end_sample phone``
(61 TIMIT phones), the ``.TXT`` line is ``start_sample end_sample Sentence text.``::

    0 3050 h#
    3050 4559 sh
    ...
    0 46797 She had your dark suit in greasy wash water all year.

Splits, as Kaldi's ``egs/timit/s5/local/timit_data_prep.sh`` makes them (the standard train, dev and test split
that wav2vec 2.0, Baevski et al. 2020, fine-tunes and reports on), SA1/SA2 left out of all three:

- ``train``: every speaker under ``TRAIN`` (462 speakers x 8 SI/SX sentences = 3,696 utterances);
- ``dev``: the 50 speakers of Kaldi's ``conf/dev_spk.list`` (under ``TEST``; 400 utterances);
- ``test``: the 24 speakers of the core test set, Kaldi's ``conf/test_spk.list`` (192 utterances).
Other ``TEST`` speakers are in no split (counted in the log). The speaker lists and the phone map below are
copied from kaldi-asr/kaldi at commit f4007661023b98b8081fd875029f0dee62242fd1, ``egs/timit/s5/conf/``.

Labels, one line per utterance in manifest order (utterances sorted by Kaldi's id ``<SPEAKER>_<SENTENCE>``,
upper case):

- ``<split>.phn``: the ``.PHN`` phones folded from 61 to 39 with the third column of Kaldi's
  ``conf/phones.60-48-39.map`` (:func:`fold_phones`): ``q`` (glottal stop) has no target and is deleted, the
  closures ``bcl dcl gcl pcl tcl kcl``, the pauses ``pau``, ``epi`` and ``h#`` become ``sil``, e.g. ``ao -> aa``,
  ``ix -> ih``, ``axr -> er``, ``en -> n``, ``zh -> sh``. **Runs of ``sil`` are merged into one** (``epi pcl`` and a
  deleted ``q`` between two closures give ``sil sil`` after folding, written ``sil``), counted as ``sil_merged``;
  ``--no-merge-sil`` keeps them, as Kaldi's ``local/timit_norm_trans.pl`` writes its folded transcripts. The
  merge shortens CTC targets only at silences and changes no phone error rate scored without ``sil`` (the
  standard, :func:`manifests.error_rates.per`); a closure inside a word stays (``d ah sil k``).
- ``<split>.wrd``: the ``.TXT`` sentence, upper case, punctuation removed (``. , ? ! ; : "`` and any symbol other
  than letters and the apostrophe; hyphens separate words); ``<split>.ltr`` its letters as the other builders
  write them. The ``.WRD`` word alignments are not read.
- ``<split>.tsv``: ``--root``'s TIMIT folder as audio root, then ``TRAIN/DR1/FCJF0/SI1027.WAV<TAB>samples``: the
  SPHERE files are referenced where they are, not converted. fairseq's audio loader reads them with soundfile
  (libsndfile reads NIST SPHERE PCM; LDC93S1's files are uncompressed), and so do ``sew-infer`` and the
  manifest checks of the fine-tuning task, so a FLAC copy would only double the disk space.
- ``dict.phn.txt``: the 39 phones with their counts over the written splits (fairseq's ``symbol count``,
  count descending; a phone no split has gets 0, so the dictionary is always the same 39 symbols);
  ``dict.ltr.txt``, ``lexicon.txt`` and ``lm.txt`` (words of ``train``) as the other builders write them.

Counted, never silent (``<split>.report.json``; ``--strict`` fails instead): ``.WAV`` without ``.PHN`` or ``.TXT``
(``audio_without_transcript``), ``.PHN``/``.TXT`` without ``.WAV`` (``transcript_without_audio``), empty, corrupt,
stereo or non-16 kHz audio, ``.PHN``/``.TXT`` lines that cannot be parsed (``bad_line``, with file:line), phones
outside TIMIT's 61 (``unknown_phone``, file:line), files without phones or words (``empty_transcript``), words
with symbols left outside A-Z and ``'`` (``dropped_by_normalisation``), a speaker folder found twice
(``duplicate_id``). The report's ``normalisation`` block counts what was changed on purpose (SA sentences left
out, ``q`` deleted, ``sil`` merged); ``speakers`` and ``missing_speakers`` say which listed speakers were found.
``--overwrite`` has no effect (nothing is converted).
"""
import logging
import os
import re
from collections import Counter
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from .audio import probe_audio
from .common import (LETTERS, ManifestError, Report, Utterance, ascii_quotes, atomic_write_text, base_parser,
                     dictionary_lines, outside_alphabet, parallel_map, run_main, setup_logging, squeeze_spaces,
                     write_corpus_files, write_segmented_split)

logger = logging.getLogger("manifests.timit")

SPLITS = ("train", "dev", "test")
KALDI_COMMIT = "f4007661023b98b8081fd875029f0dee62242fd1"  # kaldi-asr/kaldi, where the lists below come from

#: kaldi-asr/kaldi egs/timit/s5/conf/dev_spk.list: the 50 development speakers (from TIMIT's TEST part)
DEV_SPEAKERS = tuple("""
faks0 fdac1 fjem0 mgwt0 mjar0 mmdb1 mmdm2 mpdf0 fcmh0 fkms0 mbdg0 mbwm0 mcsh0 fadg0 fdms0 fedw0 mgjf0
mglb0 mrtk0 mtaa0 mtdt0 mthc0 mwjg0 fnmr0 frew0 fsem0 mbns0 mmjr0 mdls0 mdlf0 mdvc0 mers0 fmah0 fdrw0
mrcs0 mrjm4 fcal1 mmwh0 fjsj0 majc0 mjsw0 mreb0 fgjd0 fjmg0 mroa0 mteb0 mjfc0 mrjr0 fmml0 mrws1
""".split())

#: kaldi-asr/kaldi egs/timit/s5/conf/test_spk.list: the 24 speakers of the core test set
TEST_SPEAKERS = tuple("""
mdab0 mwbt0 felc0 mtas1 mwew0 fpas0 mjmp0 mlnt0 fpkt0 mlll0 mtls0 fjlm0 mbpm0 mklt0 fnlp0 mcmj0 mjdh0 fmgd0
mgrt0 mnjm0 fdhc0 mjln0 mpam0 fmld0
""".split())

#: kaldi-asr/kaldi egs/timit/s5/conf/phones.60-48-39.map, line for line (its tabs written as spaces): a TIMIT
#: phone, its 48-phone class and its 39-phone class; ``q`` has no class (deleted)
PHONE_MAP = """
aa aa aa
ae ae ae
ah ah ah
ao ao aa
aw aw aw
ax ax ah
ax-h ax ah
axr er er
ay ay ay
b b b
bcl vcl sil
ch ch ch
d d d
dcl vcl sil
dh dh dh
dx dx dx
eh eh eh
el el l
em m m
en en n
eng ng ng
epi epi sil
er er er
ey ey ey
f f f
g g g
gcl vcl sil
h# sil sil
hh hh hh
hv hh hh
ih ih ih
ix ix ih
iy iy iy
jh jh jh
k k k
kcl cl sil
l l l
m m m
n n n
ng ng ng
nx n n
ow ow ow
oy oy oy
p p p
pau sil sil
pcl cl sil
q
r r r
s s s
sh sh sh
t t t
tcl cl sil
th th th
uh uh uh
uw uw uw
ux uw uw
v v v
w w w
y y y
z z z
zh zh sh
"""


def _parse_map(text: str, column: int) -> Dict[str, Optional[str]]:
    """TIMIT phone -> its class in ``column`` (1: 48 classes, 2: 39) of :data:`PHONE_MAP`, None for ``q``."""
    fields = [line.split() for line in text.strip().splitlines()]
    return {f[0]: f[column] if len(f) == 3 else None for f in fields}


FOLD_39 = _parse_map(PHONE_MAP, 2)
TIMIT_PHONES = tuple(FOLD_39)  # the 61 phones of the .PHN files
PHONES_39 = tuple(sorted({p for p in FOLD_39.values() if p}))
SILENCE = "sil"
_SENTENCE = re.compile(r"^(S[AIX])(\d+)\.(WAV|PHN|WRD|TXT)$", re.IGNORECASE)
_DIALECT = re.compile(r"^DR\d+$", re.IGNORECASE)

Problem = Tuple[str, str, str]  # reason, where, detail


def fold_phones(phones: Sequence[str], merge_sil: bool = True, stats: Optional[Counter] = None) -> List[str]:
    """TIMIT phones -> Kaldi's 39 classes: ``q`` deleted, then (``merge_sil``) runs of ``sil`` made one.

    Raises ValueError naming the first phone outside TIMIT's 61.

    >>> fold_phones("h# sh ix hv eh dcl jh ih".split())
    ['sil', 'sh', 'ih', 'hh', 'eh', 'sil', 'jh', 'ih']
    >>> fold_phones("n pau tcl t".split()), fold_phones("n pau tcl t".split(), merge_sil=False)
    (['n', 'sil', 't'], ['n', 'sil', 'sil', 't'])
    """
    stats = stats if stats is not None else Counter()
    out: List[str] = []
    for p in phones:
        if p not in FOLD_39:
            raise ValueError(f"phone {p!r} is not one of TIMIT's 61 ({' '.join(TIMIT_PHONES)})")
        target = FOLD_39[p]
        if target is None:
            stats["q_deleted"] += 1
            continue
        if merge_sil and target == SILENCE and out and out[-1] == SILENCE:
            stats["sil_merged"] += 1
            continue
        out.append(target)
    return out


_HYPHENS = re.compile(r"[-\u2010-\u2015]")
_PUNCTUATION = re.compile(r"[.,?!;:\"()]")


def normalize_text(text: str) -> str:
    """A ``.TXT`` sentence as upper-case words: punctuation removed, hyphens separate words.

    Symbols that are neither letters nor apostrophes nor punctuation (digits, ``&``) are kept, so that the
    caller can report them (``dropped_by_normalisation``).

    >>> normalize_text("Don't ask me to carry an oily rag like that.")
    "DON'T ASK ME TO CARRY AN OILY RAG LIKE THAT"
    >>> normalize_text('"Cross-cut," she said; "why?"')
    'CROSS CUT SHE SAID WHY'
    """
    text = _HYPHENS.sub(" ", ascii_quotes(text)).upper()
    text = _PUNCTUATION.sub(" ", text)
    words = [w for w in text.split() if w.strip("'")]
    return squeeze_spaces(" ".join(words))


def read_phn(path: str) -> Tuple[List[str], List[Problem]]:
    """The phones of a ``.PHN`` file (``start end phone`` lines) and its bad lines."""
    phones: List[str] = []
    problems: List[Problem] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{lineno}"
            if len(fields) != 3 or not (fields[0].isdigit() and fields[1].isdigit()):
                problems.append(("bad_line", where, f"expected 'start_sample end_sample phone', got {line.strip()!r}"))
            elif int(fields[1]) < int(fields[0]):
                problems.append(("bad_line", where, f"end {fields[1]} before start {fields[0]}"))
            elif fields[2] not in FOLD_39:
                problems.append(("unknown_phone", where, f"{fields[2]!r} is not one of TIMIT's 61 phones"))
            else:
                phones.append(fields[2])
    return phones, problems


def read_txt(path: str) -> Tuple[Optional[str], List[Problem]]:
    """The sentence of a ``.TXT`` file (one ``start end text`` line), or None and the problem."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split(None, 2)
            if not fields:
                continue
            if len(fields) < 2 or not (fields[0].isdigit() and fields[1].isdigit()):
                return None, [("bad_line", f"{path}:{lineno}", f"expected 'start end text', got {line.strip()!r}")]
            return (fields[2].strip() if len(fields) == 3 else ""), []
    return "", []


class SpeakerTask(NamedTuple):
    split: str
    speaker: str  # upper case
    path: str
    merge_sil: bool


class SpeakerResult(NamedTuple):
    utterances: List[Utterance]
    problems: List[Problem]
    stats: Counter


def read_utterance(speaker: str, sentence: str, files: Dict[str, str], merge_sil: bool,
                   problems: List[Problem], stats: Counter) -> Optional[Utterance]:
    """One SI/SX sentence of a speaker (``files``: ``WAV``/``PHN``/``TXT`` -> path), or None with its problems."""
    wav, phn, txt = files.get("WAV"), files.get("PHN"), files.get("TXT")
    if wav is None:
        problems.append(("transcript_without_audio", phn or txt or files["WRD"], f"no {sentence}.WAV"))
        return None
    if phn is None or txt is None:
        missing = " and ".join(f"{sentence}.{e}" for e, p in (("PHN", phn), ("TXT", txt)) if p is None)
        problems.append(("audio_without_transcript", wav, f"no {missing}"))
        return None
    phones, bad = read_phn(phn)
    text, bad_txt = read_txt(txt)
    problems += bad + bad_txt
    if bad or bad_txt:
        return None
    if not phones:
        problems.append(("empty_transcript", phn, "no phones"))
        return None
    words = normalize_text(text)
    if not words:
        problems.append(("empty_transcript", txt, "no words"))
        return None
    odd = outside_alphabet(words, LETTERS)
    if odd:
        problems.append(("dropped_by_normalisation", txt, f"symbols {''.join(odd)!r} in {words!r}"))
        return None
    probe = probe_audio(wav, sample_rate=16000, channels=1)
    if probe.reason:
        problems.append((probe.reason, wav, probe.detail))
        return None
    folded = fold_phones(phones, merge_sil, stats)
    if not folded:  # only glottal stops
        problems.append(("empty_transcript", phn, "no phones left after deleting q"))
        return None
    return Utterance(f"{speaker}_{sentence}", os.path.abspath(wav), probe.num_samples, words,
                     (("phn", " ".join(folded)),))


def process_speaker(task: SpeakerTask) -> SpeakerResult:
    """The SI/SX utterances of one speaker folder, sorted by id; SA sentences are counted and left out."""
    sentences: Dict[str, Dict[str, str]] = {}
    for name in os.listdir(task.path):
        m = _SENTENCE.match(name)
        if m:
            sentence = (m.group(1) + m.group(2)).upper()
            sentences.setdefault(sentence, {})[m.group(3).upper()] = os.path.join(task.path, name)
    stats: Counter = Counter()
    problems: List[Problem] = []
    utts: List[Utterance] = []
    for sentence in sorted(sentences):
        if sentence.startswith("SA"):
            stats["sa_sentences_left_out"] += 1
            continue
        u = read_utterance(task.speaker, sentence, sentences[sentence], task.merge_sil, problems, stats)
        if u is not None:
            utts.append(u)
    return SpeakerResult(utts, problems, stats)


def _entries(path: str) -> Dict[str, str]:
    """Sub-folders of ``path`` by upper-case name -> real path."""
    try:
        return {e.name.upper(): e.path for e in os.scandir(path) if e.is_dir() and not e.name.startswith(".")}
    except FileNotFoundError:
        return {}


def find_timit_dir(root: str) -> str:
    """The folder holding ``TRAIN`` and/or ``TEST`` (any case): ``root``, ``root/TIMIT`` or ``root/timit``."""
    for cand in (root, os.path.join(root, "TIMIT"), os.path.join(root, "timit")):
        if {"TRAIN", "TEST"} & set(_entries(cand)):
            return cand
    raise ManifestError(f"no TIMIT layout under {root}: expected {root}/TRAIN/DR1/<SPEAKER>/SI*.WAV and "
                        f"{root}/TEST/... (upper or lower case); pass the folder holding TRAIN and TEST as --root")


def speakers(part: str) -> List[Tuple[str, str]]:
    """``(SPEAKER, folder)`` of every ``DR*/<speaker>`` folder of a ``TRAIN``/``TEST`` part, sorted by speaker."""
    out = [(spk, path) for dr, dr_path in sorted(_entries(part).items()) if _DIALECT.match(dr)
           for spk, path in _entries(dr_path).items()]
    return sorted(out)


def split_speakers(timit: str) -> Tuple[Dict[str, List[Tuple[str, str]]], List[str]]:
    """Speakers of each split (see the module docstring) and the TEST speakers in none."""
    parts = _entries(timit)
    train = speakers(parts["TRAIN"]) if "TRAIN" in parts else []
    test_part = speakers(parts["TEST"]) if "TEST" in parts else []
    dev_set, test_set = {s.upper() for s in DEV_SPEAKERS}, {s.upper() for s in TEST_SPEAKERS}
    chosen = {"train": train, "dev": [s for s in test_part if s[0] in dev_set],
              "test": [s for s in test_part if s[0] in test_set]}
    others = sorted({s for s, _ in test_part if s not in dev_set | test_set})
    return chosen, others


def prepare_timit(root: str, dest: str, splits: Sequence[str] = SPLITS, merge_sil: bool = True, workers: int = 1,
                  strict: bool = False, progress: bool = True) -> Dict[str, Report]:
    """Write the TIMIT manifests of ``splits`` (see the module docstring); return ``split -> Report``.

    Raises ManifestError for an unknown split name, when no split has a speaker, or (``strict``) on problems.
    """
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ManifestError(f"unknown TIMIT split(s) {', '.join(unknown)}; choose from {', '.join(SPLITS)}")
    root, dest = os.path.abspath(root), os.path.abspath(dest)
    timit = find_timit_dir(root)
    chosen, others = split_speakers(timit)
    listed = {"train": None, "dev": DEV_SPEAKERS, "test": TEST_SPEAKERS}
    written: Dict[str, List[Utterance]] = {}
    reports: Dict[str, Report] = {}
    for split in splits:
        found = chosen[split]
        if not found:
            logger.info("%s: no speaker found under %s, skipped", split, timit)
            continue
        tasks, early, seen = [], [], {}
        for spk, path in found:
            if spk in seen:
                early.append(("duplicate_id", path, f"speaker {spk} also in {seen[spk]}; this folder is not used"))
                continue
            seen[spk] = path
            tasks.append(SpeakerTask(split, spk, path, merge_sil))
        info = {"speakers": len(tasks), "merge_sil": merge_sil}
        if listed[split] is not None:
            missing = sorted(s.upper() for s in listed[split] if s.upper() not in seen)
            info.update(speakers_listed=len(listed[split]), missing_speakers=missing)
            if missing:
                logger.warning("%s: %d of Kaldi's %d %s speakers are not under %s/TEST (e.g. %s)", split, len(missing),
                               len(listed[split]), split, timit, " ".join(missing[:5]))
        results = parallel_map(process_speaker, tasks, workers, desc=split, progress=progress, unit="speaker")
        utts, report = write_segmented_split(dest, split, results, strict, timit, problems=early, info=info,
                                             extra_labels=("phn",))
        written[split] = utts
        reports[split] = report
    if not written:
        raise ManifestError(f"none of the splits {', '.join(splits)} has a speaker under {timit}")
    if others:
        logger.info("%d TEST speaker(s) in no split (Kaldi's recipe uses the 50 dev and 24 core-test speakers), "
                    "e.g. %s", len(others), " ".join(others[:5]))
    counts = Counter({p: 0 for p in PHONES_39})
    for utts in written.values():
        for u in utts:
            counts.update(dict(u.labels)["phn"].split())
    atomic_write_text(os.path.join(dest, "dict.phn.txt"), dictionary_lines(counts))
    write_corpus_files(dest, written, ["train"] if "train" in written else list(written))
    return reports


def build_parser(prog: Optional[str] = None):
    p = base_parser(prog or "python -m manifests.timit", __doc__)
    p.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS,
                   help="splits to write (default: train dev test)")
    p.add_argument("--no-merge-sil", action="store_true",
                   help="keep runs of 'sil' after folding (as Kaldi's timit_norm_trans.pl writes them) instead of "
                        "merging each run into one 'sil'")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    args = build_parser(prog).parse_args(argv)
    setup_logging(args.verbose)
    return run_main(prog or "manifests.timit", lambda: prepare_timit(
        args.root, args.dest, splits=args.splits, merge_sil=not args.no_merge_sil, workers=args.workers,
        strict=args.strict, progress=not args.no_progress))


if __name__ == "__main__":
    raise SystemExit(main())
