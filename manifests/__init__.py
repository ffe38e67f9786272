"""Corpus manifests for fairseq: one module per corpus, each a ``prepare_<corpus>()`` and a ``main(argv)`` CLI.

    python -m manifests.librispeech --root /data/LibriSpeech --dest data/librispeech
    sew-manifest librispeech --root /data/LibriSpeech --dest data/librispeech      # the same

Every builder writes ``<split>.tsv`` / ``.wrd`` / ``.ltr`` / ``.report.json`` per split, plus
``dict.ltr.txt``, ``lexicon.txt`` and ``lm.txt`` (TIMIT also ``<split>.phn`` and ``dict.phn.txt``); the shared
pieces are in :mod:`manifests.common`; ``demo`` generates the embedded synthetic corpus (``sew-demo-data``).
This package never imports fairseq or ``sew_fairseq`` (fast start, light worker processes).
"""
CORPORA = ("librispeech", "tedlium", "voxpopuli", "switchboard", "timit", "demo")
