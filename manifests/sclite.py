"""NIST SCTK scoring of conversational speech: segment ids -> CTM, GLM filtering, ``sclite``, Hub5 subsets.

The Hub5'00 (eval2000) evaluation scores a CTM (``file channel start duration word``) against the reference
STM after both pass through a global mapping file (GLM: hesitations, contractions, spelling variants), the
way SCTK's ``hubscr.pl -l english -h hub5 -g GLM`` does, and Kaldi's ``egs/swbd/s5c/local/score_sclite.sh``
on top of it::

    csrfilt.sh -i stm -t ref -dh GLM < ref.stm > ref.stm.filt
    csrfilt.sh -i ctm -t hyp -dh GLM < hyp.ctm(sorted) > hyp.ctm.filt
    sclite -r ref.stm.filt stm -h hyp.ctm.filt ctm -F -D -o sum dtl ...

and then repeats it on the Switchboard (``sw_*``) and CallHome (``en_*``) halves. This module writes the CTM
from ``sew-infer``'s ``hyp.trn`` (segment ids made by :func:`format_segment_id` carry file, channel and
times; each segment's words are spread evenly over it, which is all sclite needs to put them in that
segment), removes what Kaldi removes from hypotheses before scoring (noise tags, hesitations, partial words),
runs the tools and reads the counts from sclite's ``.dtl`` report.

Debian's ``sctk`` package installs the tools in ``/usr/lib/sctk/bin`` (``/usr/bin/sctk`` is a dispatcher);
:func:`find_sctk_tool` looks at ``$SCTK_BIN``, ``PATH`` and there. ``sew-score`` (:func:`main`) is the command.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .atomic import atomic_file, atomic_open
from .records import cli_error
from .records import PathLike
from .trn import read_trn

SCTK_DIRS = ("/usr/lib/sctk/bin", "/usr/local/lib/sctk/bin")
# eval2000 halves by STM/CTM file-name prefix (Kaldi's score_sclite.sh: grep -v '^en_' / '^sw_')
HUB5_SUBSETS: Dict[str, Optional[str]] = {"all": None, "swbd": "sw_", "callhome": "en_"}
# hypothesis words Kaldi's score_sclite.sh removes before scoring: the GLM makes them optionally deletable
# in the reference, so dropping them can only help (partial words end in "-")
HESITATIONS = frozenset("UH UM EH MM HM AH HUH HA ER OOF HEE ACH EEE EW".split())
_NOISE = re.compile(r"^\[(NOISE|LAUGHTER|VOCALIZED-NOISE)\]$|^<UNK>$", re.IGNORECASE)
_SEGMENT_ID = re.compile(r"^(?P<file>.+)-(?P<chan>[A-Za-z0-9]+)_(?P<start>\d+)-(?P<end>\d+)$")


class SctkError(RuntimeError):
    """An SCTK tool is missing or failed (the message holds its command and output)."""


class ScoreSummary(NamedTuple):
    """Totals of one sclite run (from its ``.dtl`` report)."""

    sentences: int
    ref_words: int
    correct: int
    substitutions: int
    deletions: int
    insertions: int
    errors: int

    @property
    def wer(self) -> float:
        """Word error rate in percent (errors / reference words)."""
        return 100.0 * self.errors / self.ref_words if self.ref_words else 0.0


def find_sctk_tool(name: str) -> str:
    """Absolute path of an SCTK program (``sclite``, ``csrfilt.sh``, ``rfilter1``, ``hubscr.pl``)."""
    candidates = []
    if os.environ.get("SCTK_BIN"):
        candidates.append(os.path.join(os.environ["SCTK_BIN"], name))
    found = shutil.which(name)
    if found:
        candidates.append(found)
    candidates += [os.path.join(d, name) for d in SCTK_DIRS]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise SctkError(f"SCTK program {name!r} not found on PATH, in $SCTK_BIN or in {', '.join(SCTK_DIRS)}; "
                    f"install it with `apt-get install sctk` (Debian/Ubuntu) or build usnistgov/SCTK and set SCTK_BIN")


def format_segment_id(file: str, channel: str, start: float, end: float) -> str:
    """Kaldi-style segment id: ``("en_4156", "A", 357.64, 359.64)`` -> ``"en_4156-A_035764-035964"``.

    Times are kept in centiseconds, so a CTM can be made from the id alone (:func:`parse_segment_id`).
    """
    return f"{file}-{channel}_{int(round(start * 100)):06d}-{int(round(end * 100)):06d}"


def parse_segment_id(utt_id: str) -> Tuple[str, str, float, float]:
    """``"…/en_4156-A_035764-035964"`` -> ``("en_4156", "A", 357.64, 359.64)`` (a directory prefix is ignored)."""
    m = _SEGMENT_ID.match(utt_id.rsplit("/", 1)[-1])
    if m is None:
        raise ValueError(f"utterance id {utt_id!r} is not a segment id '<file>-<channel>_<start cs>-<end cs>' "
                         f"(e.g. en_4156-A_035764-035964); build the manifest with manifests.switchboard")
    return m["file"], m["chan"], int(m["start"]) / 100.0, int(m["end"]) / 100.0


def clean_hypothesis(words: Sequence[str]) -> List[str]:
    """Drop noise tags, ``<unk>``, hesitations and partial words (``TH-``), as Kaldi does before scoring."""
    return [w for w in words if not (_NOISE.match(w) or w.upper() in HESITATIONS or w.endswith("-"))]


def segments_to_ctm(segments: Iterable[Tuple[str, str]], clean: bool = True) -> List[str]:
    """CTM lines ``file channel start duration word`` from ``(segment id, text)`` pairs.

    Each segment's words share its time span evenly (decoders without word times); sclite assigns a CTM
    word to the reference segment holding its midpoint, so this is exact at segment level.
    """
    lines = []
    for utt_id, text in segments:
        file, chan, start, end = parse_segment_id(utt_id)
        words = text.split()
        if clean:
            words = clean_hypothesis(words)
        if not words:
            continue
        step = max(end - start, 0.01) / len(words)
        for i, word in enumerate(words):
            lines.append(f"{file} {chan} {start + i * step:.3f} {step:.3f} {word}")
    return lines


def _time(value: str) -> Optional[float]:
    try:
        return float(value)
    except ValueError:  # "*" on alternation lines
        return None


def sort_ctm(lines: Iterable[str]) -> List[str]:
    """Sort CTM lines by file, channel and start time (stable), dropping ``;;`` comments and blank lines.

    An alternation block (``<ALT_BEGIN>`` ... ``<ALT>`` ... ``<ALT_END>``, times ``*``) moves as one unit,
    at the time of its first timed word. (``hubscr.pl sortCTM`` sorts the ``*`` lines as time 0, which
    pulls the markers out of their blocks.)
    """
    rows = [ln.lstrip() if ln.endswith("\n") else ln.lstrip() + "\n" for ln in lines
            if ln.strip() and not ln.lstrip().startswith(";;")]
    blocks: List[List[str]] = []
    depth = 0
    for row in rows:
        if depth == 0:
            blocks.append([])
        blocks[-1].append(row)
        word = row.split()[4] if len(row.split()) > 4 else ""
        depth += (word == "<ALT_BEGIN>") - (word == "<ALT_END>")

    def key(block: List[str]):
        fields = block[0].split()
        times = [t for t in (_time(b.split()[2]) for b in block) if t is not None]
        return fields[0], fields[1], times[0] if times else 0.0

    return [row for block in sorted(blocks, key=key) for row in block]


def write_ctm(path: PathLike, lines: Iterable[str]) -> None:
    """Write CTM lines sorted as sclite expects (atomic)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.writelines(sort_ctm(lines))


def trn_to_ctm(trn: PathLike, ctm: PathLike, clean: bool = True) -> int:
    """``sew-infer``'s ``hyp.trn`` (segment ids) -> a sorted CTM file; returns the number of words written."""
    lines = segments_to_ctm(read_trn(trn), clean=clean)
    write_ctm(ctm, lines)
    return len(lines)


def _run(cmd: Sequence[str], stdin_path: Optional[str] = None, stdout_path: Optional[str] = None) -> str:
    env = dict(os.environ)
    # csrfilt.sh calls rfilter1 by name: put the SCTK directory first
    env["PATH"] = os.path.dirname(cmd[0]) + os.pathsep + env.get("PATH", "")
    fin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    fout = open(stdout_path, "wb") if stdout_path else subprocess.PIPE
    try:
        proc = subprocess.run(list(cmd), stdin=fin, stdout=fout, stderr=subprocess.PIPE, env=env)
    finally:
        if stdin_path:
            fin.close()
        if stdout_path:
            fout.close()
    out = proc.stdout.decode("utf-8", "replace") if proc.stdout else ""
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace")
        raise SctkError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{err}{out}")
    return out


def glm_filter(src: PathLike, dst: PathLike, glm: PathLike, fmt: str, purpose: str) -> None:
    """Apply a GLM to an stm/ctm/trn file with ``csrfilt.sh -i FMT -t ref|hyp -dh GLM`` (hubscr's English filter)."""
    if fmt not in ("stm", "ctm", "trn"):
        raise ValueError(f"fmt must be stm, ctm or trn, not {fmt!r}")
    if not os.path.isfile(glm):
        raise FileNotFoundError(f"GLM file not found: {glm}")
    with atomic_file(dst) as tmp:
        _run([find_sctk_tool("csrfilt.sh"), "-i", fmt, "-t", purpose, "-dh", os.fspath(glm)], os.fspath(src), tmp)


_DTL = {
    "sentences": r"^\s*sentences\s+(\d+)",
    "errors": r"^Percent Total Error\s*=.*\(\s*(\d+)\)",
    "correct": r"^Percent Correct\s*=.*\(\s*(\d+)\)",
    "substitutions": r"^Percent Substitution\s*=.*\(\s*(\d+)\)",
    "deletions": r"^Percent Deletions\s*=.*\(\s*(\d+)\)",
    "insertions": r"^Percent Insertions\s*=.*\(\s*(\d+)\)",
    "ref_words": r"^Ref\. words\s*=.*\(\s*(\d+)\)",
}


def parse_dtl(path: PathLike) -> ScoreSummary:
    """Read the totals of a sclite ``.dtl`` report (``DETAILED OVERALL REPORT FOR THE SYSTEM``)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    values = {}
    for key, pattern in _DTL.items():
        m = re.search(pattern, text, re.MULTILINE)
        if m is None:
            raise SctkError(f"{path}: no {key!r} line in the sclite dtl report")
        values[key] = int(m.group(1))
    return ScoreSummary(**values)


def run_sclite(stm: PathLike, ctm: PathLike, out_dir: PathLike, name: str, hub5_flags: bool = True) -> ScoreSummary:
    """``sclite -r STM stm -h CTM ctm -F -D -o sum dtl`` into ``out_dir/name.{sys,dtl}``; returns the totals.

    ``hub5_flags``: ``-F -D``, score fragments (``TH-`` matches ``THE``) and optionally deletable words
    (``(%HESITATION)``) as hubscr.pl does; False runs plain sclite.
    """
    os.makedirs(out_dir, exist_ok=True)
    flags = ["-F", "-D"] if hub5_flags else []
    _run([find_sctk_tool("sclite"), "-r", os.fspath(stm), "stm", "-h", os.fspath(ctm), "ctm", *flags,
          "-o", "sum", "dtl", "-O", os.fspath(out_dir), "-n", name])
    return parse_dtl(os.path.join(out_dir, f"{name}.dtl"))


def _subset(lines: Sequence[str], prefix: Optional[str], keep_comments: bool) -> List[str]:
    if prefix is None:
        return list(lines)
    return [ln for ln in lines if ln.startswith(prefix) or (keep_comments and ln.startswith(";;"))]


def score_ctm(stm: PathLike, ctm: PathLike, out_dir: PathLike, glm: Optional[PathLike] = None,
              subsets: Mapping[str, Optional[str]] = HUB5_SUBSETS, hub5_flags: bool = True) -> Dict[str, ScoreSummary]:
    """Score a CTM against an STM, for each subset (name -> file-name prefix, None = everything).

    With ``glm`` both sides are filtered first (:func:`glm_filter`). Subsets without reference segments
    are left out of the result. ``hub5_flags``: see :func:`run_sclite`. Reports land in ``out_dir``
    (``<subset>.ctm.filt.dtl`` / ``.sys``).
    """
    os.makedirs(out_dir, exist_ok=True)
    with open(stm, encoding="utf-8", errors="replace") as f:
        stm_lines = f.readlines()
    with open(ctm, encoding="utf-8", errors="replace") as f:
        ctm_lines = sort_ctm(f.readlines())
    results: Dict[str, ScoreSummary] = {}
    for name, prefix in subsets.items():
        ref = _subset(stm_lines, prefix, keep_comments=True)
        if not any(ln.strip() and not ln.startswith(";;") for ln in ref):
            continue
        ref_path = os.path.join(out_dir, f"{name}.stm")
        hyp_path = os.path.join(out_dir, f"{name}.ctm")
        with atomic_open(ref_path, "w", encoding="utf-8") as f:
            f.writelines(ref)
        with atomic_open(hyp_path, "w", encoding="utf-8") as f:
            f.writelines(_subset(ctm_lines, prefix, keep_comments=False))
        if glm is not None:
            glm_filter(ref_path, ref_path + ".filt", glm, "stm", "ref")
            glm_filter(hyp_path, hyp_path + ".filt", glm, "ctm", "hyp")
            ref_path, hyp_path = ref_path + ".filt", hyp_path + ".filt"
        results[name] = run_sclite(ref_path, hyp_path, out_dir, os.path.basename(hyp_path), hub5_flags)
    return results


def format_table(results: Mapping[str, ScoreSummary]) -> str:
    """A plain-text table: subset, #snt, #wrd, corr, sub, del, ins, WER (%)."""
    rows = [f"{'subset':10}{'#snt':>6}{'#wrd':>8}{'corr':>7}{'sub':>7}{'del':>7}{'ins':>7}{'WER %':>8}"]
    for name, s in results.items():
        n = max(s.ref_words, 1)
        rows.append(f"{name:10}{s.sentences:6d}{s.ref_words:8d}{100 * s.correct / n:7.1f}"
                    f"{100 * s.substitutions / n:7.1f}{100 * s.deletions / n:7.1f}{100 * s.insertions / n:7.1f}"
                    f"{s.wer:8.2f}")
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------------ sew-score

CLI_DESCRIPTION = """sew-score: score decoded conversational speech with NIST sclite and a GLM (Hub5'00 / eval2000
style).

    sew-score --hyp-trn exp/decode-eval2000/hyp.trn \\
        --stm manifests/eval2000.stm --glm manifests/eval2000.glm --out-dir exp/decode-eval2000/sclite

--hyp-trn is sew-infer's output for a split built by manifests.switchboard (its utterance ids carry file, channel
and times); --ctm scores an existing CTM instead. Prints WER for all segments, the Switchboard half (sw_*) and
the CallHome half (en_*), and writes scores.json and sclite's reports to --out-dir. Needs SCTK
(apt-get install sctk)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sew-score", description=CLI_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--hyp-trn", help="hypotheses as a trn file whose ids are segment ids (sew-infer's hyp.trn)")
    src.add_argument("--ctm", help="hypotheses as a CTM file (file channel start duration word)")
    p.add_argument("--stm", required=True,
                   help="reference STM (eval2000: hub5e00.english.000405.stm as fixed by the builder)")
    p.add_argument("--glm", help="global mapping file (eval2000: en20000405_hub5.glm); without it no filtering")
    p.add_argument("--out-dir", required=True,
                   help="directory for hyp.ctm, filtered files, sclite reports, scores.json")
    p.add_argument("--keep-hesitations", action="store_true",
                   help="do not drop hesitations, noise tags and partial words from the hypotheses (Kaldi drops them)")
    p.add_argument("--no-subsets", action="store_true", help="score all segments only (no sw_/en_ halves)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """``sew-score`` (the light layer: it starts without torch or fairseq)."""
    args = build_parser().parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    try:
        ctm = args.ctm
        if args.hyp_trn:
            ctm = os.path.join(args.out_dir, "hyp.ctm")
            trn_to_ctm(args.hyp_trn, ctm, clean=not args.keep_hesitations)
        subsets = {"all": None} if args.no_subsets else HUB5_SUBSETS
        results = score_ctm(args.stm, ctm, args.out_dir, glm=args.glm, subsets=subsets)
    except (SctkError, ValueError, OSError) as e:
        return cli_error("sew-score", e)
    print(format_table(results))
    with atomic_open(os.path.join(args.out_dir, "scores.json"), "w", encoding="utf-8") as f:
        json.dump({k: dict(v._asdict(), wer=round(v.wer, 2)) for k, v in results.items()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
