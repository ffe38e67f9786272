"""``sew-manifest <corpus> --root DIR --dest OUT [options]`` (also ``python -m manifests <corpus> ...``).

Dispatches to ``manifests.<corpus>.main``; ``sew-manifest <corpus> --help`` lists a corpus's options.
Corpora: librispeech (+ Libri-light limited supervision), tedlium (TED-LIUM 3), voxpopuli (English ASR
release), switchboard, timit (TIMIT phones and words, Kaldi's splits).
"""
import importlib
import sys
from typing import Optional, Sequence

from . import CORPORA
from .records import cli_error


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nusage: sew-manifest {" + ",".join(CORPORA) + "} --root DIR --dest OUT [options]")
        return 0 if argv else 2
    corpus, rest = argv[0], argv[1:]
    if corpus not in CORPORA:
        return cli_error("sew-manifest", f"unknown corpus {corpus!r}; choose from {', '.join(CORPORA)}", 2)
    module = importlib.import_module(f"manifests.{corpus}")
    return module.main(rest, prog=f"sew-manifest {corpus}")


if __name__ == "__main__":
    sys.exit(main())
