"""``sew-infer``: a fairseq manifest split decoded with a fine-tuned CTC checkpoint and scored.

* :mod:`.splits`: reading a split (``<split>.tsv`` and its labels) and computing every utterance's emissions
  through an engine (:mod:`sew_fairseq.engines`), with bad audio skipped or reported;
* :mod:`.scoring`: decoding the emissions, WER / CER / PER, LM-weight tuning, the result files.
"""
