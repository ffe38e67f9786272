"""``sew-demo-data``: write the synthetic eSpeak NG demo corpus in fairseq format (no network).

Also runs as ``python -m sew_fairseq.cli.demo_data``. See :mod:`sew_fairseq.demo_data`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from ..demo_data import DEFAULT_NUM_UTTERANCES, DemoDataError, make_demo_corpus

logger = logging.getLogger(__name__)

EPILOG = """\
example:
  sew-demo-data --dest demo_work/data --num-utterances 400 --seed 0 --workers 2

writes demo_work/data/{train,valid}.{tsv,wrd,ltr}, dict.ltr.txt, corpus.json and audio/*.wav
(16 kHz mono). Running it again with the same options does nothing; other options replace the
corpus (only a directory holding a demo corpus, or an empty one, is ever replaced).
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sew-demo-data",
        description="Generate a small synthetic English speech corpus (eSpeak NG voices, fixed "
                    "vocabulary) in fairseq manifest + letter-label format, offline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dest", required=True, help="output directory (created if missing)")
    p.add_argument("--num-utterances", type=int, default=DEFAULT_NUM_UTTERANCES,
                   help="utterances in train + valid, 1.5-4 s each (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for sentences, voices, prosody and the split (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: min(4, CPUs)); does not change the output")
    p.add_argument("--valid-fraction", type=float, default=0.1,
                   help="share of utterances in valid (default: %(default)s)")
    p.add_argument("--format", dest="audio_format", choices=("wav", "flac"), default="wav",
                   help="audio file format, 16-bit PCM either way (default: %(default)s)")
    p.add_argument("--voices", type=int, default=None, dest="num_voices",
                   help="use only the first N eSpeak NG voices (default: all); fewer voices, more regular speech")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        corpus = make_demo_corpus(args.dest, num_utterances=args.num_utterances, seed=args.seed,
                                  num_voices=args.num_voices,
                                  num_workers=args.workers, valid_fraction=args.valid_fraction,
                                  audio_format=args.audio_format, progress=not args.quiet)
    except (DemoDataError, ValueError) as e:
        print(f"sew-demo-data: error: {e}", file=sys.stderr)
        return 1
    state = f"generated in {corpus.elapsed_s:.1f} s" if corpus.generated else \
        "already complete, nothing to do"
    print(f"demo corpus at {corpus.root}: {corpus.num_train} train ({corpus.train_seconds:.0f} s) "
          f"+ {corpus.num_valid} valid ({corpus.valid_seconds:.0f} s) utterances; {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
