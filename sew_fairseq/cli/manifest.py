"""``sew-manifest``: corpus manifests (LibriSpeech, TED-LIUM 3, VoxPopuli, Switchboard) for fairseq.

The dispatcher lives in :mod:`manifests.__main__`, and the ``sew-manifest`` console script points there
directly, so that building manifests does not import fairseq; this module re-exports it for
``python -m sew_fairseq.cli.manifest``.
"""
import sys

from manifests.__main__ import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
