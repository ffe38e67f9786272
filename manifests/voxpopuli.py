"""VoxPopuli English ASR manifests for fairseq (ogg -> 16 kHz mono FLAC).

    python -m manifests.voxpopuli --root /data/voxpopuli --dest data/voxpopuli
    sew-manifest voxpopuli --root /data/voxpopuli --dest data/voxpopuli [--audio-dest DIR] [--lang en]

Input: what VoxPopuli's ``voxpopuli/get_asr_data.py --root ROOT --lang en`` writes,
``ROOT/transcribed_data/en/asr_{train,dev,test}.tsv`` (TAB separated, header
``id raw_text normalized_text speaker_id split gender``) and ``ROOT/transcribed_data/en/<year>/<id>.ogg``
(``<year>`` = the first 4 characters of the id). ``--root`` may be ROOT or the folder holding the
``asr_*.tsv`` files; extra columns (e.g. SLUE's ``raw_ner``) are ignored.

Output: ``train``, ``dev``, ``test`` manifests (``<split>.tsv/.wrd/.ltr/.report.json``) over FLAC copies
at 16 kHz mono in ``--audio-dest`` (default ``<dest>/audio``, as ``<year>/<id>.flac``; existing
conversions are kept on re-runs unless ``--overwrite``), ``dict.ltr.txt``, and ``lexicon.txt`` /
``lm.txt`` from the train split (all splits if there is none).

Transcripts (:func:`normalize_transcript`, from ``normalized_text``, or ``raw_text`` with
``--text-column raw``; VoxPopuli's normalised text is lower case with numbers already spelled out,
e.g. ``2014`` -> ``two thousand and fourteen``, but keeps some punctuation):

1. curly/typographic apostrophes and quotes -> ASCII (``ʼ ’ ‘`` -> ``'``), accents removed (``é`` -> ``E``);
2. upper case;
3. digits are spelled out: ``1,000`` -> ``1000``; ``2.5`` -> ``TWO POINT FIVE``; ordinals ``13th`` ->
   ``THIRTEENTH``; decades ``80s`` -> ``EIGHTIES``, ``1990s`` -> ``NINETEEN NINETIES``; a 4-digit number 1100-1999 is
   read as a year (``1984`` -> ``NINETEEN EIGHTY FOUR``),
   other numbers as cardinals without "and" (``2014`` -> ``TWO THOUSAND FOURTEEN``, ``20`` -> ``TWENTY``);
   ``%`` -> ``PERCENT``, ``&`` -> ``AND``, ``+`` -> ``PLUS``;
4. hyphens and dashes separate words; other punctuation (``. , ; : ? ! " ( ) [ ] …``) is removed;
   apostrophes at the start or end of a word are removed, inside a word kept (``DON'T``);
5. what is left must be in ``A-Z '``: an utterance with any other symbol (``ł``, ``°``, ``€``...) is
   dropped and counted as ``dropped_by_normalisation`` (with the symbols) in the report; an utterance
   with no words is dropped and counted as ``empty_transcript``.

Counted, never silent (``--strict`` fails instead): rows whose ogg is absent
(``transcript_without_audio``), oggs no row names (``audio_without_transcript``), unreadable/empty audio,
malformed rows (``bad_line``), duplicate ids.
"""
import csv
import json
import logging
import os
import re
import unicodedata
from typing import Dict, List, Optional, Sequence, Tuple

from .audio import convert_audio
from .common import (LETTERS, ManifestError, Report, Utterance, ascii_quotes, atomic_write_text, base_parser,
                     outside_alphabet, parallel_map, run_main, setup_logging, spell_number, squeeze_spaces,
                     write_corpus_files, write_split)

logger = logging.getLogger("manifests.voxpopuli")

SPLITS = ("train", "dev", "test")
_SYMBOLS = {"%": " PERCENT ", "&": " AND ", "+": " PLUS "}
_ORDINAL_SUFFIX = {"ONE": "FIRST", "TWO": "SECOND", "THREE": "THIRD", "FIVE": "FIFTH", "EIGHT": "EIGHTH",
                   "NINE": "NINTH", "TWELVE": "TWELFTH"}


def _ordinal(cardinal: str) -> str:
    words = cardinal.split()
    last = words[-1]
    if last in _ORDINAL_SUFFIX:
        last = _ORDINAL_SUFFIX[last]
    elif last.endswith("Y"):
        last = last[:-1] + "IETH"
    else:
        last += "TH"
    return " ".join(words[:-1] + [last])


def _plural(cardinal: str) -> str:
    words = cardinal.split()
    last = words[-1][:-1] + "IES" if words[-1].endswith("Y") else words[-1] + "S"
    return " ".join(words[:-1] + [last])


def _number(digits: str) -> str:
    n = int(digits)
    return spell_number(digits, year=len(digits) == 4 and 1100 <= n <= 1999 and digits[0] != "0")


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalize_transcript(text: str) -> Tuple[str, List[str]]:
    """``(words, bad_symbols)`` by the rules of the module docstring; keep the utterance iff ``bad`` is empty.

    >>> normalize_transcript("In 2014, the 13th report wasnʼt 2.5% — of 1,000")
    ("IN TWO THOUSAND FOURTEEN THE THIRTEENTH REPORT WASN'T TWO POINT FIVE PERCENT OF ONE THOUSAND", [])
    >>> normalize_transcript("1,000 €")
    ('ONE THOUSAND €', ['€'])
    """
    t = _strip_accents(ascii_quotes(text)).upper()
    t = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", t)  # thousands separators
    t = re.sub(r"(\d+)\.(\d+)",
               lambda m: f" {_number(m.group(1))} POINT {' '.join(spell_number(d) for d in m.group(2))} ", t)
    t = re.sub(r"(\d+)(ST|ND|RD|TH)\b", lambda m: f" {_ordinal(_number(m.group(1)))} ", t)
    t = re.sub(r"(\d+)'?S\b", lambda m: f" {_plural(_number(m.group(1)))} ", t)
    t = re.sub(r"\d+", lambda m: f" {_number(m.group(0))} ", t)
    for sym, word in _SYMBOLS.items():
        t = t.replace(sym, word)
    t = re.sub(r"[-\u2010-\u2015\u2212]", " ", t)  # hyphens, dashes, minus
    t = re.sub(r"[.,;:?!\"()\[\]{}\u2026/]", " ", t)
    words = []
    for w in t.split():
        w = w.strip("'")
        if w:
            words.append(w)
    out = squeeze_spaces(" ".join(words))
    return out, outside_alphabet(out, LETTERS)


def find_tsv_dir(root: str, lang: str = "en") -> str:
    for cand in (root, os.path.join(root, "transcribed_data", lang)):
        if any(os.path.isfile(os.path.join(cand, f"asr_{s}.tsv")) for s in SPLITS):
            return cand
    raise ManifestError(f"no asr_{{train,dev,test}}.tsv under {root} or {os.path.join(root, 'transcribed_data', lang)} "
                        "(run VoxPopuli's get_asr_data.py first)")


def _convert(job: Tuple[str, str, bool]) -> Tuple[int, Optional[str], str]:
    src, dst, overwrite = job
    if not os.path.exists(src):
        return 0, "missing", ""
    if os.path.getsize(src) == 0:
        return 0, "empty", "0 bytes"
    try:
        return convert_audio(src, dst, sample_rate=16000, overwrite=overwrite), None, ""
    except Exception as e:  # unreadable or no samples
        return 0, "unreadable", f"{type(e).__name__}: {e}".strip()


def read_split_tsv(path: str, text_column: str, report: Report) -> List[Tuple[str, str, str]]:
    """``(id, words, where)`` of the kept rows of an ``asr_<split>.tsv``; problems go to ``report``."""
    rows = []
    seen = set()
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if not header or "id" not in header or text_column not in header:
            raise ManifestError(f"{path}:1: header {header!r} lacks 'id' or {text_column!r} "
                                "(expected: id raw_text normalized_text speaker_id split gender)")
        i_id, i_text = header.index("id"), header.index(text_column)
        for lineno, fields in enumerate(reader, 2):
            where = f"{path}:{lineno}"
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):
                report.add("bad_line", where, f"{len(fields)} fields, header has {len(header)}")
                continue
            uid = fields[i_id].strip()
            if not uid:
                report.add("bad_line", where, "empty id")
                continue
            if uid in seen:
                report.add("duplicate_id", where, uid)
                continue
            seen.add(uid)
            words, bad = normalize_transcript(fields[i_text])
            if bad:
                report.add("dropped_by_normalisation", where, f"{uid}: symbols {''.join(bad)!r}")
                continue
            if not words:
                report.add("empty_transcript", where, uid)
                continue
            rows.append((uid, words, where))
    return rows


def prepare_voxpopuli(root: str, dest: str, audio_dest: Optional[str] = None, lang: str = "en",
                      text_column: str = "normalized_text", workers: int = 1, strict: bool = False,
                      overwrite: bool = False, progress: bool = True) -> Dict[str, Report]:
    """Convert and write the VoxPopuli ASR splits found under ``root``; return ``split -> Report``."""
    tsv_dir = os.path.abspath(find_tsv_dir(os.path.abspath(root), lang))
    dest = os.path.abspath(dest)
    audio_dest = os.path.abspath(audio_dest or os.path.join(dest, "audio"))
    written: Dict[str, List[Utterance]] = {}
    reports: Dict[str, Report] = {}
    for split in SPLITS:
        path = os.path.join(tsv_dir, f"asr_{split}.tsv")
        if not os.path.isfile(path):
            continue
        report = Report(split, strict=strict)
        rows = read_split_tsv(path, text_column, report)
        jobs = [(os.path.join(tsv_dir, uid[:4], uid + ".ogg"), os.path.join(audio_dest, uid[:4], uid + ".flac"),
                 overwrite)
                for uid, _, _ in rows]
        results = parallel_map(_convert, jobs, workers, desc=f"voxpopuli {split}", progress=progress)
        utts = []
        for (uid, words, where), (src, dst, _), (n, reason, detail) in zip(rows, jobs, results):
            if reason == "missing":
                report.add("transcript_without_audio", where, f"{src} not found")
            elif reason:
                report.add(reason, src, detail)
            else:
                utts.append(Utterance(uid, dst, n, words))
        write_split(dest, split, utts, report, audio_root=audio_dest)
        logger.info("%s", report.summary())
        written[split], reports[split] = utts, report
    # oggs that no kept or dropped row names (rows dropped for their text still name their audio)
    named_all = set()
    for split in written:
        with open(os.path.join(tsv_dir, f"asr_{split}.tsv"), encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader)
            i_id = header.index("id")
            named_all.update(r[i_id].strip() for r in reader if len(r) > i_id)
    orphans = []
    for year in sorted(d for d in os.listdir(tsv_dir) if d.isdigit() and os.path.isdir(os.path.join(tsv_dir, d))):
        for name in sorted(os.listdir(os.path.join(tsv_dir, year))):
            if name.endswith(".ogg") and name[:-4] not in named_all:
                orphans.append(os.path.join(tsv_dir, year, name))
    if orphans:
        # audio of no split: its own report file
        report = Report("unassigned", strict=strict)
        for p in orphans:
            report.add("audio_without_transcript", p, "no row in asr_{train,dev,test}.tsv")
        atomic_write_text(os.path.join(dest, "unassigned.report.json"), [json.dumps(report.to_dict(), indent=1)])
        logger.info("%s", report.summary())
        reports["unassigned"] = report
        if strict:
            raise report.error()
    if not written:
        raise ManifestError(f"no split written from {tsv_dir}")
    lm_splits = ["train"] if "train" in written else list(written)
    write_corpus_files(dest, written, lm_splits)
    logger.info("wrote %s to %s (audio in %s); lexicon and LM text from %s", ", ".join(written), dest, audio_dest,
                ", ".join(lm_splits))
    return reports


def build_parser(prog: Optional[str] = None):
    p = base_parser(prog or "python -m manifests.voxpopuli", __doc__)
    p.add_argument("--audio-dest", help="where the 16 kHz FLAC files go (default: <dest>/audio)")
    p.add_argument("--lang", default="en", help="language folder under transcribed_data/ (default en)")
    p.add_argument("--text-column", default="normalized_text", choices=("normalized_text", "raw_text"),
                   help="transcript column (default normalized_text: numbers already spelled out)")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    args = build_parser(prog).parse_args(argv)
    setup_logging(args.verbose)
    return run_main(prog or "manifests.voxpopuli", lambda: prepare_voxpopuli(
        args.root, args.dest, audio_dest=args.audio_dest, lang=args.lang, text_column=args.text_column,
        workers=args.workers, strict=args.strict, overwrite=args.overwrite, progress=not args.no_progress))


if __name__ == "__main__":
    raise SystemExit(main())
