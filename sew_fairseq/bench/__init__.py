"""Benchmarks behind ``sew-bench`` (library code; ``sew_fairseq/cli/bench.py`` only parses arguments).

``longform``: long recordings, ``sew-transcribe`` against transformers' chunked ASR pipeline.
"""
