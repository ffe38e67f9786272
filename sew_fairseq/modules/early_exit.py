"""Early exit (HuBERT-EE, Yoon et al. 2022, arXiv 2204.06328): CTC exit branches and the exit criteria.

An exit branch turns the hidden states after an intermediate layer into CTC logits, as the final layer's output
projection does for the last one. For squeezed models (SEW, SEW-D) it runs on the squeezed sequence and is
upsampled like the final layer (its own :class:`~sew_fairseq.modules.squeeze.Upsample`, initialised from the
backbone's):

    hidden [B, S, D] --transformer block(s)--> [B, S, D] --upsample, pad--> [B, T, D] --dropout--> Linear(D, V)
        --> logits [B, T, V]            (S = T for unsqueezed backbones, which have no upsample)

At inference the first branch whose exit criterion passes decides, per utterance, and the layers after it are
not run. The criteria, on one utterance's CTC log-probabilities over its T frames and V classes:

* ``entropy``: mean over frames and classes of -p log p; exits when below the threshold (paper: 0.0035);
* ``confidence``: mean over frames of the largest probability; exits when above the threshold (paper: 0.955).
"""
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn as nn
from fairseq.models.wav2vec.wav2vec2 import TransformerSentenceEncoderLayer

EXIT_CRITERIA = ("entropy", "confidence")
# HuBERT-EE's best thresholds (Yoon et al. 2022, arXiv 2204.06328), the defaults of sew-infer --exit-threshold
DEFAULT_THRESHOLDS = {"entropy": 0.0035, "confidence": 0.955}


class ExitBranch(nn.Module):
    """A small transformer block (post-LN, fairseq's wav2vec 2.0 layer) + CTC projection on intermediate states.

    Args:
        dim: D, the backbone's width.
        ffn_dim, heads, layers: size of the branch's transformer block(s).
        dropout: dropout inside the block and before the projection.
        num_classes: V, the letter dictionary size (blank ``<s>`` included).
        upsample: for squeezed backbones, the module that maps [B, S, D] back to frames (applied through the
            ``to_frames`` callable given to :meth:`forward`); None for backbones that do not squeeze.
    """

    def __init__(self, dim: int, ffn_dim: int, heads: int, layers: int, dropout: float, num_classes: int,
                 upsample: Optional[nn.Module] = None):
        super().__init__()
        if layers < 1:
            raise ValueError(f"model.exit_branch_layers={layers}: a branch needs at least one transformer layer")
        if dim % heads:
            raise ValueError(f"model.exit_branch_heads={heads} does not divide the backbone's width D={dim}")
        self.layers = nn.ModuleList([
            TransformerSentenceEncoderLayer(embedding_dim=dim, ffn_embedding_dim=ffn_dim, num_attention_heads=heads,
                                            dropout=dropout, attention_dropout=dropout, activation_dropout=0.0,
                                            activation_fn="gelu", layer_norm_first=False)
            for _ in range(layers)])
        self.upsample = upsample
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, num_classes)
        # as fairseq's Wav2VecEncoder.proj (fairseq.models.wav2vec.wav2vec2_asr.Linear)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor, padding_mask: Optional[torch.Tensor],
                to_frames: Callable[[torch.Tensor, Optional[nn.Module]], torch.Tensor]) -> torch.Tensor:
        """hidden: [B, S, D], padding_mask: [B, S] (True = pad) or None -> logits [T, B, V] (fairseq CTC layout).

        ``to_frames(x [B, S, D], upsample) -> [B, T, D]`` is the backbone's way back to the frame rate."""
        attn_mask = padding_mask if padding_mask is not None and padding_mask.any() else None
        x = hidden.transpose(0, 1)  # [S, B, D]
        for layer in self.layers:
            x, _ = layer(x, self_attn_padding_mask=attn_mask, need_weights=False)
        x = to_frames(x.transpose(0, 1), self.upsample)  # [B, T, D]
        return self.proj(self.dropout(x.transpose(0, 1)))  # [T, B, V]


def _frame_mean(values: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """[B, T] per-frame values -> [B] mean over each utterance's frames (padding excluded)."""
    if padding_mask is None:
        return values.mean(-1)
    keep = (~padding_mask).to(values.dtype)
    return (values * keep).sum(-1) / keep.sum(-1).clamp(min=1)


def exit_entropy(log_probs: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """log_probs [B, T, V] -> [B]: mean over frames and classes of -p log p (0 log 0 = 0)."""
    return _frame_mean(torch.special.entr(log_probs.float().exp()).mean(-1), padding_mask)


def exit_confidence(log_probs: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """log_probs [B, T, V] -> [B]: mean over frames of the largest class probability."""
    return _frame_mean(log_probs.float().max(-1).values.exp(), padding_mask)


class ExitRule(NamedTuple):
    """Exit when ``criterion`` passes ``threshold``: entropy < threshold, or confidence > threshold."""
    criterion: str
    threshold: float

    def check(self) -> "ExitRule":
        if self.criterion not in EXIT_CRITERIA:
            raise ValueError(f"exit criterion {self.criterion!r}: choose one of {', '.join(EXIT_CRITERIA)}")
        return self

    def score(self, log_probs: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """[B] entropy or confidence of each utterance."""
        fn = exit_entropy if self.criterion == "entropy" else exit_confidence
        return fn(log_probs, padding_mask)

    def passes(self, log_probs: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """log_probs [B, T, V], padding_mask [B, T] -> [B] bool: which utterances exit here."""
        s = self.score(log_probs, padding_mask)
        return s < self.threshold if self.criterion == "entropy" else s > self.threshold
