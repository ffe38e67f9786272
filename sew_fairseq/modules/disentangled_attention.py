"""Disentangled self-attention (DeBERTa-v2 as used by SEW-D), written for speed and readability.

For content states H [B, S, D], one head of size d, relative table R = LayerNorm(rel_embeddings) [2k, D]
(k = ``position_buckets`` = 256, shared by all layers), and per layer the *shared* projections
(``share_att_key``): Q = Wq H, K = Wk H, V = Wv H, Qr = Wq R, Kr = Wk R (biases included):

    score(i, j) = (Q_i . K_j  +  Q_i . Kr[c(i, j)]  +  K_j . Qr[c(i, j)]) / sqrt(3 d)
                   content       content->position     position->content
    c(i, j) = clamp(bucket(i - j) + k, 0, 2k - 1)

``bucket`` keeps |delta| <= k/2 as is and maps larger distances logarithmically up to ``max_position``.
Then masked softmax, attention dropout, context -> dense -> dropout -> LayerNorm(+H) -> FFN -> LayerNorm.

What differs from the reference implementation, for speed, with equal results (tests compare):
* in eval mode without autograd, Qr / Kr depend only on weights and are cached per layer
  (invalidated when any weight they depend on changes);
* only the contiguous band of relative rows that S frames can reach is projected and gathered;
* content scores, the relative bias and the softmax-times-V run in one ``scaled_dot_product_attention``.

A traced graph (ONNX export) cannot cache by length: :class:`DisentangledEncoder` computes the index and the band's
rows from the traced length once per forward (:func:`relative_index_traced`) and passes them to every layer; each
layer projects the whole table from weights only (folded into constants by ONNX Runtime and OpenVINO when they load
the graph), with the score scale, and gathers the band's rows of the projections.

Parameter names are the original release's (DeBERTa's): ``layer.{n}.attention.self.{query,key,value}_proj``,
``.attention.output.{dense,LayerNorm}``, ``.intermediate.dense``, ``.output.{dense,LayerNorm}``,
``rel_embeddings``, ``LayerNorm``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.modules import LayerDropModuleList

from .layer_pass import LayerPass, run_layers


def weights_key(*tensors: torch.Tensor) -> tuple:
    """Identity + in-place version of tensors: changes whenever one is replaced or updated in place."""
    return tuple((t.data_ptr(), t._version) for t in tensors)


def log_bucket_position(relative_pos: torch.Tensor, bucket_size: int, max_position: int) -> torch.Tensor:
    """DeBERTa's log buckets: |delta| <= mid stays, larger maps to
    mid + ceil(log(|delta|/mid) / log((max-1)/mid) * (mid-1)).

    ``mid = bucket_size // 2``; the result keeps the sign of ``relative_pos`` and is odd (bucket(-x) = -bucket(x)).
    """
    mid = bucket_size // 2
    sign = torch.sign(relative_pos)
    abs_pos = relative_pos.abs()
    far = abs_pos > mid
    # log of a clamped value so that near positions do not produce log(0)
    log_pos = torch.ceil(torch.log(abs_pos.clamp(min=mid).double() / mid) / math.log((max_position - 1) / mid)
                         * (mid - 1)) + mid
    return torch.where(far, (log_pos * sign).to(relative_pos.dtype), relative_pos)


@lru_cache(maxsize=64)
def _relative_index(length: int, bucket_size: int, max_position: int, device: torch.device
                    ) -> Tuple[torch.Tensor, int, int]:
    """(index [S, S] into the band of table rows, first row, end row) for S = ``length`` frames.

    The full table index is c(i, j) = clamp(bucket(i - j) + k, 0, 2k - 1) with k = ``bucket_size``; since
    bucket is monotonic, S frames reach the contiguous rows [c(0, S-1), c(S-1, 0)], returned as a band.
    """
    # a normal tensor even when first built under torch.inference_mode: the cached index is reused by later
    # training passes, which cannot save an inference tensor for backward
    with torch.inference_mode(False):
        pos = torch.arange(length, device=device)
        rel = log_bucket_position(pos[:, None] - pos[None, :], bucket_size, max_position)
        index = (rel + bucket_size).clamp(0, 2 * bucket_size - 1)
        lo, hi = int(index.min()), int(index.max()) + 1
        return (index - lo).contiguous(), lo, hi


def relative_index_traced(hidden: torch.Tensor, heads: int, bucket_size: int, max_position: int
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The traced form of :func:`_relative_index` for hidden [B, S, D], from tensor ops only: (index
    [B, heads, S, S] into the band of table rows, the band's rows [U] of the table).

    The eager path caches the index per length and slices the band with Python ints; a traced graph (ONNX export)
    must compute them from the traced length. :class:`DisentangledEncoder` computes them once per forward for all
    its layers (the index already expanded to the layers' [B, H, S, S], as ``gather`` needs)."""
    pos = torch.arange(hidden.size(1), device=hidden.device)  # [S]
    rel = log_bucket_position(pos[:, None] - pos[None, :], bucket_size, max_position)
    index = (rel + bucket_size).clamp(0, 2 * bucket_size - 1)  # [S, S]
    lo, hi = index[0, -1], index[-1, 0] + 1  # c(0, S-1) and c(S-1, 0): the band's ends (c is monotonic)
    rows = torch.arange(lo, hi, device=hidden.device)  # [U]
    return (index - lo).expand(hidden.size(0), heads, -1, -1), rows


class DisentangledSelfAttention(nn.Module):
    """Multi-head c2p + p2c disentangled attention over [B, S, D] (DeBERTa-v2, ``share_att_key=True``)."""

    def __init__(self, dim: int, heads: int, attention_dropout: float, position_dropout: float,
                 position_buckets: int = 256, max_relative_positions: int = 512):
        super().__init__()
        if dim % heads:
            raise ValueError(f"encoder_embed_dim={dim} is not a multiple of encoder_attention_heads={heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.query_proj = nn.Linear(dim, dim)
        self.key_proj = nn.Linear(dim, dim)
        self.value_proj = nn.Linear(dim, dim)
        self.position_buckets = position_buckets
        self.max_relative_positions = max_relative_positions
        self.attention_dropout = attention_dropout
        self.pos_dropout = nn.Dropout(position_dropout)
        self.scale = 1.0 / math.sqrt(3 * self.head_dim)  # three score terms
        self._cache: Optional[tuple] = None

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """[B, S, H*d] -> [B, H, S, d]"""
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)

    def relative_projections(self, rel: torch.Tensor, lo: int, hi: int, rel_key: Optional[tuple] = None
                             ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(Qr, Kr) for table rows lo:hi, each [H, hi - lo, d].

        Cached in eval mode without autograd when ``rel_key`` (the identity of the weights ``rel`` was computed
        from, see :meth:`DisentangledEncoder.relative_table`) is given."""
        cacheable = rel_key is not None and not self.training and not torch.is_grad_enabled()
        if cacheable:
            key = (lo, hi) + rel_key + weights_key(self.query_proj.weight, self.query_proj.bias,
                                                   self.key_proj.weight, self.key_proj.bias)
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        band = self.pos_dropout(rel[lo:hi])  # [U, D]
        u = band.size(0)
        qr = self.query_proj(band).view(u, self.heads, self.head_dim).transpose(0, 1)  # [H, U, d]
        kr = self.key_proj(band).view(u, self.heads, self.head_dim).transpose(0, 1)  # [H, U, d]
        if cacheable:
            self._cache = (key, (qr, kr))
        return qr, kr

    def relative_projections_traced(self, rel: torch.Tensor, rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(Qr, Kr) of the table rows ``rows`` [U] of rel [2k, D] for a traced graph, each [H, U, d] and times the
        score scale (so the bias needs no multiplication of [B, H, S, S]).

        The whole table is projected, from weights only: ONNX Runtime and OpenVINO fold that into constants when
        they load the graph; then the band's rows are gathered (along the first axis, contiguous rows: a gather
        along a later axis ran several times slower in ONNX Runtime). The table is projected as [1, 2k, D], so that
        the exporter writes the same MatMul weights as for the content projections and the file holds each weight
        once (a 2-D input would export a Gemm with a second, untransposed copy)."""
        table = self.pos_dropout(rel)[None]  # [1, 2k, D]
        qr = (self.query_proj(table)[0] * self.scale).index_select(0, rows)  # [U, D]
        kr = (self.key_proj(table)[0] * self.scale).index_select(0, rows)  # [U, D]
        # -1, not U: a constant shape, without a Shape -> Gather -> Concat chain in the graph
        return (qr.view(-1, self.heads, self.head_dim).transpose(0, 1),
                kr.view(-1, self.heads, self.head_dim).transpose(0, 1))  # [H, U, d] each

    def forward(self, hidden: torch.Tensor, rel: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None,
                rel_key: Optional[tuple] = None,
                traced_index: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        """hidden: [B, S, D]; rel: normalised relative table [2k, D]; key_padding_mask: [B, S] True at padding;
        traced_index: :func:`relative_index_traced` of hidden when tracing (computed here if None; unused in eager).

        Returns the context [B, S, D] (before the output dense layer).
        """
        b, s, _ = hidden.shape
        q = self._split(self.query_proj(hidden))  # [B, H, S, d]
        k = self._split(self.key_proj(hidden))  # [B, H, S, d]
        v = self._split(self.value_proj(hidden))  # [B, H, S, d]

        if torch.jit.is_tracing():  # ONNX export: sizes are traced, so the graph keeps a dynamic S
            if traced_index is None:
                traced_index = relative_index_traced(hidden, self.heads, self.position_buckets,
                                                     self.max_relative_positions)
            idx, rows = traced_index  # [B, H, S, S] into the band, [U] rows of the table
            qr, kr = self.relative_projections_traced(rel, rows)  # [H, U, d] each, times the score scale
            c2p = torch.matmul(q, kr.transpose(-1, -2)).gather(-1, idx)  # [B, H, S, S]
            # p2c: K_j . Qr[c(i, j)] is row c(i, j), column j of Qr K^T [B, H, U, S]: no transposes of [S, S]
            p2c = torch.matmul(qr, k.transpose(-1, -2)).gather(-2, idx)  # [B, H, S, S]
            bias = c2p + p2c
        else:
            index, lo, hi = _relative_index(s, self.position_buckets, self.max_relative_positions, hidden.device)
            qr, kr = self.relative_projections(rel, lo, hi, rel_key)  # [H, U, d] each
            idx = index.expand(b, self.heads, s, s)
            c2p = torch.matmul(q, kr.transpose(-1, -2)).gather(-1, idx)  # [B, H, S, S]: Q_i . Kr[c(i, j)]
            # p2c: K_j . Qr[c(i, j)]; gather rows j with the transposed index, then transpose back
            p2c = torch.matmul(k, qr.transpose(-1, -2)).gather(-1, idx.transpose(-1, -2)).transpose(-1, -2)
            bias = (c2p + p2c) * self.scale  # [B, H, S, S]
        if key_padding_mask is not None:
            bias = bias.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        context = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.attention_dropout if self.training else 0.0, scale=self.scale)
        return context.transpose(1, 2).reshape(b, s, -1)  # [B, S, D]


class _DenseLayerNorm(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual): DeBERTa's ``SelfOutput`` / ``Output``."""

    def __init__(self, in_dim: int, dim: int, dropout: float, eps: float):
        super().__init__()
        self.dense = nn.Linear(in_dim, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Attention(nn.Module):
    def __init__(self, self_attention: DisentangledSelfAttention, output: _DenseLayerNorm):
        super().__init__()
        self.self = self_attention
        self.output = output


class _Intermediate(nn.Module):
    def __init__(self, dim: int, ffn_dim: int):
        super().__init__()
        self.dense = nn.Linear(dim, ffn_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class DisentangledLayer(nn.Module):
    """Post-LN SEW-D layer: disentangled attention block, then GELU feed-forward block, each with LayerNorm."""

    def __init__(self, dim: int, ffn_dim: int, heads: int, attention_dropout: float, hidden_dropout: float,
                 position_buckets: int, max_relative_positions: int, eps: float):
        super().__init__()
        self.attention = _Attention(
            DisentangledSelfAttention(dim, heads, attention_dropout, hidden_dropout, position_buckets,
                                      max_relative_positions),
            _DenseLayerNorm(dim, dim, hidden_dropout, eps))
        self.intermediate = _Intermediate(dim, ffn_dim)
        self.output = _DenseLayerNorm(ffn_dim, dim, hidden_dropout, eps)

    def forward(self, x: torch.Tensor, rel: torch.Tensor, key_padding_mask: Optional[torch.Tensor],
                rel_key: Optional[tuple] = None,
                traced_index: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        """x: [B, S, D] -> [B, S, D] (``traced_index``: see :meth:`DisentangledSelfAttention.forward`)"""
        attended = self.attention.output(self.attention.self(x, rel, key_padding_mask, rel_key, traced_index), x)
        return self.output(self.intermediate(attended), attended)


@dataclass(eq=False)
class RelativeLayerPass(LayerPass):
    """A pass through :class:`DisentangledEncoder`: also the relative table its layers share."""

    rel: Optional[torch.Tensor] = None  # LayerNorm(rel_embeddings) [2k, D]
    rel_key: Optional[tuple] = None  # identity of the weights rel came from (eval without autograd), else None
    # when tracing: relative_index_traced of the pass's length, computed once for all layers; None in eager
    traced_index: Optional[Tuple[torch.Tensor, torch.Tensor]] = None


class DisentangledEncoder(nn.Module):
    """Stack of :class:`DisentangledLayer` sharing one LayerNorm-ed relative embedding table (DeBERTa
    ``BertEncoder``)."""

    def __init__(self, layers: int, dim: int, ffn_dim: int, heads: int, attention_dropout: float = 0.1,
                 hidden_dropout: float = 0.0, layerdrop: float = 0.0, position_buckets: int = 256,
                 max_relative_positions: int = 512, eps: float = 1e-7, initializer_range: float = 0.02):
        super().__init__()
        self.layer = LayerDropModuleList(layerdrop, [
            DisentangledLayer(dim, ffn_dim, heads, attention_dropout, hidden_dropout, position_buckets,
                              max_relative_positions, eps) for _ in range(layers)])
        self.rel_embeddings = nn.Embedding(2 * position_buckets, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=eps)
        self._rel_cache: Optional[tuple] = None
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=initializer_range)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def relative_table(self) -> Tuple[torch.Tensor, Optional[tuple]]:
        """(LayerNorm(rel_embeddings) [2k, D], key). In eval mode without autograd the table is computed once
        and ``key`` identifies the weights it came from, so the layers can cache their projections of it;
        otherwise ``key`` is None."""
        if self.training or torch.is_grad_enabled():
            return self.LayerNorm(self.rel_embeddings.weight), None
        key = weights_key(self.rel_embeddings.weight, self.LayerNorm.weight, self.LayerNorm.bias)
        if self._rel_cache is None or self._rel_cache[0] != key:
            self._rel_cache = (key, self.LayerNorm(self.rel_embeddings.weight))
        return self._rel_cache[1], key

    @property
    def num_layers(self) -> int:
        return len(self.layer)

    # the layer-stepping protocol (modules/layer_pass.py): forward and, through SEWDEncoder, early exit use it
    def begin_layers(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> RelativeLayerPass:
        """x [B, S, D], padding_mask [B, S] (True = pad) or None -> the pass before layer 1, holding the relative
        table and layerdrop's decisions.

        The decisions are drawn for the whole stack at once, as ``self.layer`` (fairseq's ``LayerDropModuleList``)
        does when iterated: one ``torch.empty(L).uniform_()`` from torch's generator per pass, in eval mode too;
        in training the layer at position i runs when its draw exceeds ``layerdrop``."""
        rel, rel_key = self.relative_table()  # [2k, D]
        draws = torch.empty(len(self.layer)).uniform_()  # [L]
        keep = draws > self.layer.p if self.layer.training else None
        attn_mask = padding_mask if padding_mask is not None and padding_mask.any() else None
        traced_index = None
        if torch.jit.is_tracing() and len(self.layer):  # once per forward, not in every layer
            first = self.layer[0].attention.self
            traced_index = relative_index_traced(x, first.heads, first.position_buckets, first.max_relative_positions)
        return RelativeLayerPass(x, attn_mask, padding_mask, x.size(1), len(self.layer), keep=keep, rel=rel,
                                 rel_key=rel_key, traced_index=traced_index)

    def run_layer(self, p: RelativeLayerPass) -> bool:
        """The layer at position ``p.index`` on p.x [B, S, D], unless layerdrop dropped that position."""
        if p.keep is not None and not bool(p.keep[p.index]):
            return p.advance(False)
        p.x = self.layer[p.index](p.x, p.rel, p.attn_mask, p.rel_key, p.traced_index)
        return p.advance(True)

    def hidden_states(self, p: LayerPass) -> torch.Tensor:
        """[B, S, D] after the layers run so far."""
        return p.x

    def end_layers(self, p: LayerPass) -> torch.Tensor:
        """[B, S, D]: nothing follows the last layer."""
        return p.x

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, layer: Optional[int] = None
                ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """x: [B, S, D], padding_mask [B, S] (True = pad) -> (output [B, S, D], outputs [B, S, D] of the layers run).

        ``layer``: stop after the layer at this 0-based position in the stack (fairseq's ``tgt_layer``; positions
        that layerdrop skips in training count)."""
        p = self.begin_layers(x, padding_mask)
        results = run_layers(self, p, layer)
        return self.end_layers(p), results
