"""Score decoded conversational speech with NIST sclite and a GLM (Hub5'00 / eval2000 style).

    sew-score --hyp-trn exp/decode-eval2000/hyp.trn \\
        --stm manifests/eval2000.stm --glm manifests/eval2000.glm --out-dir exp/decode-eval2000/sclite

``--hyp-trn`` is ``sew-infer``'s output for a split built by ``manifests.switchboard`` (its utterance ids
carry file, channel and times); ``--ctm`` scores an existing CTM instead. Prints WER for all segments,
the Switchboard half (``sw_*``) and the CallHome half (``en_*``), and writes ``scores.json`` and sclite's
reports to ``--out-dir``. Needs SCTK (``apt-get install sctk``).
"""
import argparse
import json
import os
import sys
from typing import List, Optional

from manifests.atomic import atomic_open

from ..decoding.sclite import HUB5_SUBSETS, SctkError, format_table, score_ctm, trn_to_ctm
from .options import cli_error


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sew-score", description=__doc__,
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
