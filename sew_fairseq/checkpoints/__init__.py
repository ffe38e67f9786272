"""Every checkpoint this project reads or writes, in one place.

==================== =======================================================================================
module               what it reads or writes
==================== =======================================================================================
:mod:`.safe_load`    any fairseq checkpoint file, through torch's weights-only unpickler and an allow-list
:mod:`.plugin`       this plugin's fairseq checkpoints: split into parts, rebuild the model, write new ones
:mod:`.ctc`          a fine-tuned CTC checkpoint loaded for inference (model, output dictionary, config)
:mod:`.hubert_ctc`   fairseq ``hubert_ctc`` checkpoints read as ``sew_ctc``
:mod:`.original`     the original SEW release's checkpoints (``sew-convert from-original``)
:mod:`.hf`           Hugging Face transformers' SEW / SEW-D (and, with :mod:`.hf_wav2vec2`, wav2vec 2.0 /
                     HuBERT) directories, both ways (``sew-convert from-hf`` / ``to-hf``)
:mod:`.onnx`         ONNX graphs of fine-tuned models (``sew-convert to-onnx``)
:mod:`.average`      the parameter average of checkpoints of one model (``sew-average``)
==================== =======================================================================================

This ``__init__`` imports nothing, so that :mod:`.safe_load` (which the fairseq fixes in
:mod:`sew_fairseq.compat` use) loads without the modules that need the registered models.
"""
