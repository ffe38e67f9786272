"""``ctc_early_exit``: ``ctc_lm_wer`` for ``sew_ctc_early_exit``: final CTC + lambda * sum of the branches' CTC.

Each loss is fairseq's ``ctc`` criterion computed on one output (the final layer's, then each branch's), so lengths,
blank, ``zero_infinity`` and ``sentence_avg`` behave as in plain CTC fine-tuning; lambda is the model's
``exit_loss_weight``. Logged (bits per sentence or per token, as ``loss``): ``loss`` (the weighted sum that is
optimised), ``loss_final``, and ``loss_exit{k}`` for the branch after layer k; at validation also the final layer's
``wer`` (KenLM when ``wer_kenlm_model`` is set), ``raw_wer`` and ``uer``, and each branch's greedy ``uer_exit{k}``
and ``wer_exit{k}``.

    criterion:
      _name: ctc_early_exit
      zero_infinity: true
"""
import math
import re
from typing import Dict, List

import torch
from fairseq import metrics, utils
from fairseq.criterions import register_criterion
from fairseq.criterions.ctc import CtcCriterion
from fairseq.logging.meters import safe_round

from .ctc_lm_wer import CtcLMWerConfig, CtcLMWerCriterion

_EXIT_KEY = re.compile(r"^(loss|c_errors|c_total|wv_errors|w_total)_exit(\d+)$")


class _Replay:
    """A stand-in for the model that returns an output already computed (fairseq's CTC criterion calls the model)."""

    def __init__(self, model, net_output: Dict):
        self.model, self.net_output = model, net_output
        self.training = model.training

    def __call__(self, **net_input) -> Dict:
        return self.net_output

    def get_normalized_probs(self, net_output: Dict, log_probs: bool) -> torch.Tensor:
        return self.model.get_normalized_probs(net_output, log_probs=log_probs)


@register_criterion("ctc_early_exit", dataclass=CtcLMWerConfig)
class CtcEarlyExitCriterion(CtcLMWerCriterion):
    def forward(self, model, sample, reduce: bool = True, **kwargs):
        net_output = model(**sample["net_input"], return_exits=True)
        if "exit_outputs" not in net_output:
            raise ValueError(f"criterion ctc_early_exit needs the model sew_ctc_early_exit (exit branches), not "
                             f"{type(model).__name__}; use criterion ctc or ctc_lm_wer for it")
        exits: Dict[int, torch.Tensor] = net_output.pop("exit_outputs")
        loss, sample_size, log = super().forward(_Replay(model, net_output), sample, reduce)
        log["loss_final"] = log["loss"]
        weight = getattr(model, "exit_loss_weight")
        lm_decoder, self.w2l_decoder = self.w2l_decoder, None  # branches: greedy decoding only
        try:
            for layer, logits in exits.items():
                branch_output = {"encoder_out": logits, "padding_mask": net_output["padding_mask"]}
                branch_loss, _, branch_log = super().forward(_Replay(model, branch_output), sample, reduce)
                loss = loss + weight * branch_loss
                for key in ("loss", "c_errors", "c_total", "wv_errors", "w_total"):
                    if key in branch_log:
                        log[f"{key}_exit{layer}"] = branch_log[key]
        finally:
            self.w2l_decoder = lm_decoder
        log["loss"] = utils.item(loss.data)
        return loss, sample_size, log

    @staticmethod
    def reduce_metrics(logging_outputs: List[Dict]) -> None:
        CtcCriterion.reduce_metrics(logging_outputs)
        sample_size = utils.item(sum(log.get("sample_size", 0) for log in logging_outputs))
        final = utils.item(sum(log.get("loss_final", 0) for log in logging_outputs))
        metrics.log_scalar("loss_final", final / max(sample_size, 1) / math.log(2), sample_size, round=3)
        sums: Dict[str, Dict[int, float]] = {}
        for log in logging_outputs:
            for key, value in log.items():
                m = _EXIT_KEY.match(key)
                if m:
                    per_layer = sums.setdefault(m.group(1), {})
                    per_layer[int(m.group(2))] = per_layer.get(int(m.group(2)), 0) + utils.item(value)
        for layer, value in sorted(sums.get("loss", {}).items()):
            metrics.log_scalar(f"loss_exit{layer}", value / max(sample_size, 1) / math.log(2), sample_size, round=3)
        # error counts as sums over the whole validation set (fairseq's own uer/wer are derived the same way)
        for layer in sorted(sums.get("c_total", {})):
            for key in ("c_errors", "c_total", "wv_errors", "w_total"):
                metrics.log_scalar(f"_{key}_exit{layer}", sums[key][layer])
            metrics.log_derived(f"uer_exit{layer}", lambda meters, k=layer: _rate(meters, "c_errors", "c_total", k))
            metrics.log_derived(f"wer_exit{layer}", lambda meters, k=layer: _rate(meters, "wv_errors", "w_total", k))


def _rate(meters, errors: str, total: str, layer: int) -> float:
    n = meters[f"_{total}_exit{layer}"].sum
    return safe_round(meters[f"_{errors}_exit{layer}"].sum * 100.0 / n, 3) if n > 0 else float("nan")
