"""``sew-manifest <corpus> --root DIR --dest OUT [options]`` (also ``python -m manifests <corpus> ...``), and
``sew-manifest pack MANIFEST_DIR --dest DIR``.

Dispatches to ``manifests.<corpus>.main``; ``sew-manifest <corpus> --help`` lists a corpus's options.
Corpora: librispeech (+ Libri-light limited supervision), tedlium (TED-LIUM 3), voxpopuli (English ASR
release), switchboard, timit (TIMIT phones and words, Kaldi's splits), demo (the synthetic demo corpus).
``pack``: a manifest directory's audio into uncompressed zip shards of FLAC files that fairseq reads as they are,
with manifests pointing into them (``manifests.pack``; for large runs on shared storage).

    sew-manifest librispeech --root /data/LibriSpeech --dest data/librispeech
    sew-manifest pack data/librispeech --dest data/librispeech_packed --shard-mb 1000
"""
import importlib
import sys
from typing import Optional, Sequence

from . import CORPORA
from .records import cli_error

#: what ``sew-manifest`` runs besides the corpus builders
COMMANDS = ("pack",)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nusage: sew-manifest {" + ",".join(CORPORA) + "} --root DIR --dest OUT [options]")
        print("       sew-manifest pack MANIFEST_DIR --dest DIR [--shard-mb N] [--splits SPLIT ...]")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in CORPORA + COMMANDS:
        return cli_error("sew-manifest", f"unknown corpus {command!r}; choose from {', '.join(CORPORA)} (or pack)", 2)
    module = importlib.import_module(f"manifests.{command}")
    return module.main(rest, prog=f"sew-manifest {command}")


if __name__ == "__main__":
    sys.exit(main())
