"""``sew-lm``: lexicons and n-gram LMs for CTC decoding with ``sew-infer`` / ``ctc_lm_wer``.

    sew-lm lexicon --wrd data/train.wrd data/dev-other.wrd -o lexicon.txt        # WORD<TAB>W O R D |
    sew-lm arpa --text data/train.wrd --order 3 -o lm.arpa                       # small word LM (no lmplz)
    sew-lm arpa --text data/train.ltr --order 6 -o letters.arpa                  # letter LM (kenlm-lexfree)
    sew-lm check --lm lm.arpa --lexicon lexicon.txt                              # LM vocabulary vs lexicon

``arpa`` is a small interpolated absolute-discounting estimator meant for small corpora and tests; for real
corpora use KenLM's ``lmplz`` (see ``sew_fairseq/decoding/arpa.py`` for how to build it from PyPI's kenlm
source distribution).
"""
import argparse
import sys
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sew-lm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    lex = sub.add_parser("lexicon", help="a letter lexicon from .wrd files or a word list")
    lex.add_argument("--wrd", nargs="*", default=[], help=".wrd files (one transcript per line)")
    lex.add_argument("--words", help="a word list (one word per line)")
    lex.add_argument("-o", "--output", required=True, help="lexicon file to write")
    arpa = sub.add_parser("arpa", help="estimate an ARPA n-gram LM from text lines")
    arpa.add_argument("--text", nargs="+", required=True, help="text files, one sentence per line")
    arpa.add_argument("--order", type=int, default=3, help="n-gram order, 2-6 (default 3)")
    arpa.add_argument("-o", "--output", required=True, help="ARPA file to write")
    check = sub.add_parser("check", help="report lexicon words the LM does not know")
    check.add_argument("--lm", required=True, help="ARPA file")
    check.add_argument("--lexicon", required=True, help="lexicon file")
    check.add_argument("--strict", action="store_true", help="exit 1 when words are missing")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..decoding import (build_lexicon, check_lm_vocabulary, read_lexicon, words_from_wrd_files, write_arpa,
                            write_lexicon)
    from .options import cli_error

    try:
        if args.command == "lexicon":
            words = words_from_wrd_files(args.wrd) if args.wrd else []
            if args.words:
                with open(args.words, encoding="utf-8") as f:
                    words += [w for line in f for w in line.split()]
            if not words:
                return cli_error("sew-lm", "no words: give --wrd files or --words", 2)
            lexicon = build_lexicon(words)
            write_lexicon(args.output, lexicon)
            print(f"{args.output}: {len(lexicon)} words")
        elif args.command == "arpa":
            lines = []
            for path in args.text:
                with open(path, encoding="utf-8") as f:
                    lines += [line.strip() for line in f if line.strip()]
            write_arpa(args.output, lines, order=args.order)
            print(f"{args.output}: order {args.order}, {len(lines)} sentences")
        else:
            report = check_lm_vocabulary(args.lm, read_lexicon(args.lexicon))
            print(report.summary())
            return 1 if args.strict and not report.ok else 0
    except (OSError, ValueError) as e:
        return cli_error("sew-lm", e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
