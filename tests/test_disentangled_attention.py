"""DisentangledSelfAttention against a naive reference written from the formula (DeBERTa, He et al. 2021, as SEW-D
uses it).

    bucket(δ) = δ                                                              if |δ| <= k/2
              = sign(δ) · (ceil(log(|δ| / (k/2)) / log((m - 1) / (k/2)) · (k/2 - 1)) + k/2)   otherwise
    c(i, j)   = clamp(bucket(i - j) + k, 0, 2k - 1)
    score(i, j) = (Q_i·K_j + Q_i·Kr_c(i,j) + K_j·Qr_c(i,j)) / sqrt(3 d)      per head of size d
    context_i = Σ_j softmax_j(score(i, j), padded keys excluded) · V_j

k = position_buckets (256 released), m = max_relative_positions (512 released).
"""
from __future__ import annotations

import math

import pytest
import torch

from sew_fairseq.modules.disentangled_attention import (DisentangledEncoder, DisentangledSelfAttention,
                                                        _relative_index, log_bucket_position)


def ref_bucket(delta: int, k: int, m: int) -> int:
    mid = k // 2
    if abs(delta) <= mid:
        return delta
    sign = 1 if delta > 0 else -1
    return sign * (math.ceil(math.log(abs(delta) / mid) / math.log((m - 1) / mid) * (mid - 1)) + mid)


def ref_index(i: int, j: int, k: int, m: int) -> int:
    return min(max(ref_bucket(i - j, k, m) + k, 0), 2 * k - 1)


# Worked by hand from the formula. k = 256, m = 512: mid = 128, log(511/128) = 1.384339, factor 127.
#   129: log(1.0078125) = 0.0077821 -> 0.0077821 / 1.384339 * 127 = 0.714 -> ceil 1 -> 129
#   130: log(1.015625) = 0.0155042 -> 1.422 -> 2 -> 130
#   150: log(1.171875) = 0.158605 -> 14.551 -> 15 -> 143
#   200: log(1.5625) = 0.446287 -> 40.943 -> 41 -> 169
#   256: log(2) = 0.693147 -> 63.590 -> 64 -> 192
#   300: log(2.34375) = 0.851752 -> 78.140 -> 79 -> 207
#   511: log(511/128) / log(511/128) = 1 -> exactly 127 -> 255 (the last bucket)
#   512: log(4) = 1.386294 -> 127.179 -> 128 -> 256
#   1000: log(7.8125) = 2.055725 -> 188.593 -> 189 -> 317 (index clamps to 2k - 1 = 511)
# k = 8, m = 32: mid = 4, log(31/4) = 2.047693, factor 3.
#   5: log(1.25) = 0.223144 -> 0.327 -> 1 -> 5;   6: log(1.5) = 0.405465 -> 0.594 -> 1 -> 5
#   8: log(2) -> 1.016 -> 2 -> 6;   10: log(2.5) = 0.916291 -> 1.342 -> 2 -> 6;   16: log(4) -> 2.031 -> 3 -> 7
#   31: exactly 3 -> 7;   32: log(8) = 2.079442 -> 3.047 -> 4 -> 8;   100: log(25) = 3.218876 -> 4.716 -> 5 -> 9
HAND_BUCKETS = [
    (256, 512, 0, 0), (256, 512, 1, 1), (256, 512, 127, 127), (256, 512, 128, 128), (256, 512, 129, 129),
    (256, 512, 130, 130), (256, 512, 150, 143), (256, 512, 200, 169), (256, 512, 256, 192), (256, 512, 300, 207),
    (256, 512, 511, 255), (256, 512, 512, 256), (256, 512, 1000, 317),
    (8, 32, 3, 3), (8, 32, 4, 4), (8, 32, 5, 5), (8, 32, 6, 5), (8, 32, 8, 6), (8, 32, 10, 6), (8, 32, 16, 7),
    (8, 32, 31, 7), (8, 32, 32, 8), (8, 32, 100, 9),
]


@pytest.mark.parametrize("k,m,delta,expected", HAND_BUCKETS)
def test_bucket_hand_values(k, m, delta, expected):
    assert ref_bucket(delta, k, m) == expected  # the reference itself
    got = log_bucket_position(torch.tensor([delta, -delta]), k, m).tolist()
    assert got == [expected, -expected]


@pytest.mark.parametrize("k,m", [(256, 512), (8, 32)])
def test_bucket_matches_formula(k, m):
    delta = torch.arange(-1200, 1201)
    got = log_bucket_position(delta, k, m)
    assert got.dtype == delta.dtype
    assert got.tolist() == [ref_bucket(int(d), k, m) for d in delta]


@pytest.mark.parametrize("k,m,length", [(256, 512, 300), (256, 512, 1), (8, 32, 40), (8, 32, 2)])
def test_relative_index_band(k, m, length):
    """The band [lo, hi) of table rows and the index into it reproduce c(i, j) for S = ``length``."""
    index, lo, hi = _relative_index(length, k, m, torch.device("cpu"))
    full = torch.tensor([[ref_index(i, j, k, m) for j in range(length)] for i in range(length)])
    assert torch.equal(index + lo, full)
    assert (lo, hi) == (int(full.min()), int(full.max()) + 1)


def reference_attention(att: DisentangledSelfAttention, hidden: torch.Tensor, rel: torch.Tensor,
                        key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Explicit loops over batch, head, query, key."""
    b_sz, s, dim = hidden.shape
    h_n, d = att.heads, dim // att.heads
    k, m = att.position_buckets, att.max_relative_positions
    wq, bq = att.query_proj.weight, att.query_proj.bias
    wk, bk = att.key_proj.weight, att.key_proj.bias
    wv, bv = att.value_proj.weight, att.value_proj.bias
    out = torch.zeros_like(hidden)
    for b in range(b_sz):
        for h in range(h_n):
            sl = slice(h * d, (h + 1) * d)
            q = hidden[b] @ wq[sl].T + bq[sl]
            kk = hidden[b] @ wk[sl].T + bk[sl]
            v = hidden[b] @ wv[sl].T + bv[sl]
            qr = rel @ wq[sl].T + bq[sl]  # shared projections (share_att_key)
            kr = rel @ wk[sl].T + bk[sl]
            for i in range(s):
                scores = []
                for j in range(s):
                    if key_padding_mask is not None and key_padding_mask[b, j]:
                        scores.append(torch.tensor(float("-inf"), dtype=hidden.dtype))
                        continue
                    c = ref_index(i, j, k, m)
                    scores.append((q[i] @ kk[j] + q[i] @ kr[c] + kk[j] @ qr[c]) / math.sqrt(3 * d))
                p = torch.softmax(torch.stack(scores), dim=0)
                out[b, i, sl] = p @ v
    return out


def make_attention(k: int, m: int, dim: int = 16, heads: int = 2, seed: int = 0) -> DisentangledSelfAttention:
    torch.manual_seed(seed)
    att = DisentangledSelfAttention(dim, heads, attention_dropout=0.0, position_dropout=0.0, position_buckets=k,
                                    max_relative_positions=m)
    with torch.no_grad():
        for p in att.parameters():
            p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]) if p.dim() == 2 else 0.3 * torch.randn_like(p))
    return att.double().eval()


@pytest.mark.parametrize("k,m,length", [(256, 512, 24), (8, 32, 40), (8, 32, 1)])
def test_attention_matches_reference(k, m, length):
    att = make_attention(k, m)
    torch.manual_seed(1)
    hidden = torch.randn(2, length, 16, dtype=torch.float64)
    rel = torch.randn(2 * k, 16, dtype=torch.float64)
    expected = reference_attention(att, hidden, rel)
    torch.testing.assert_close(att(hidden, rel), expected, rtol=1e-9, atol=1e-10)
    with torch.no_grad():  # the no-autograd path
        torch.testing.assert_close(att(hidden, rel), expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("k,m", [(256, 512), (8, 32)])
def test_key_padding(k, m):
    att = make_attention(k, m)
    torch.manual_seed(2)
    full, short = 30, 17
    hidden = torch.randn(2, full, 16, dtype=torch.float64)
    hidden[1, short:] = 1e3 * torch.randn(full - short, 16, dtype=torch.float64)  # padding garbage must not leak
    mask = torch.zeros(2, full, dtype=torch.bool)
    mask[1, short:] = True
    rel = torch.randn(2 * k, 16, dtype=torch.float64)
    out = att(hidden, rel, key_padding_mask=mask)
    # row 0 (no padding) as computed alone; row 1's valid queries as the unpadded utterance alone
    torch.testing.assert_close(out[:1], att(hidden[:1], rel), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(out[1, :short], att(hidden[1:, :short], rel)[0], rtol=1e-9, atol=1e-10)
    # and against the loops with the mask
    torch.testing.assert_close(out[1, :short], reference_attention(att, hidden, rel, mask)[1, :short],
                               rtol=1e-9, atol=1e-10)


def make_encoder(seed: int = 4) -> DisentangledEncoder:
    torch.manual_seed(seed)
    enc = DisentangledEncoder(layers=2, dim=16, ffn_dim=32, heads=2, attention_dropout=0.0, position_buckets=8,
                              max_relative_positions=32, initializer_range=0.3)
    with torch.no_grad():  # non-trivial LayerNorms (the relative table's included)
        for name, p in enc.named_parameters():
            if "LayerNorm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return enc.double().eval()  # float64: cached and uncached paths must agree to rounding


def test_eval_cache_equals_uncached():
    """Eval mode: the cached relative projections (no autograd) give the autograd path's result."""
    enc = make_encoder()
    x = torch.randn(2, 23, 16, dtype=torch.float64)
    uncached, _ = enc(x)  # grad enabled: nothing cached
    with torch.no_grad():
        first, _ = enc(x)
        assert enc.layer[0].attention.self._cache is not None, "eval + no_grad should fill the projection cache"
        second, _ = enc(x)  # served from the cache
        shorter, _ = enc(x[:, :9])  # another band of table rows
        third, _ = enc(x)
    assert torch.equal(first, second) and torch.equal(first, third)
    torch.testing.assert_close(first, uncached, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(shorter, enc(x[:, :9])[0], rtol=1e-9, atol=1e-10)
    # training mode (dropout 0) never reads the cache
    with torch.no_grad():
        trained, _ = enc.train()(x)
    torch.testing.assert_close(trained, uncached, rtol=1e-9, atol=1e-10)


IN_PLACE_UPDATES = {  # what an optimizer step does: same tensors, new values
    "key_proj.weight": lambda enc: enc.layer[0].attention.self.key_proj.weight.add_(1.0),
    "query_proj.bias": lambda enc: enc.layer[1].attention.self.query_proj.bias.add_(0.5),
    "rel_embeddings": lambda enc: enc.rel_embeddings.weight.add_(torch.randn_like(enc.rel_embeddings.weight)),
    "rel LayerNorm": lambda enc: enc.LayerNorm.weight.mul_(2.0),
}


@pytest.mark.parametrize("update", list(IN_PLACE_UPDATES))
def test_eval_cache_invalidated_by_in_place_update(update):
    enc = make_encoder()
    x = torch.randn(1, 20, 16, dtype=torch.float64)
    with torch.no_grad():
        before, _ = enc(x)
        IN_PLACE_UPDATES[update](enc)
        after, _ = enc(x)
    assert not torch.allclose(before, after, atol=1e-4), f"stale cache after an in-place update of {update}"
    torch.testing.assert_close(after, enc(x)[0], rtol=1e-9, atol=1e-10)  # = the grad-enabled recomputation


def test_training_after_inference_mode_on_the_same_length():
    """The per-length relative index is cached across calls: one first built under ``torch.inference_mode``
    (sew-infer, early-exit sweeps) must not break a later training step on the same length."""
    enc = make_encoder().float()
    _relative_index.cache_clear()
    x = torch.randn(1, 31, 16)
    with torch.inference_mode():
        enc.eval()(x)
    out, _ = enc.train()(x.requires_grad_())
    out.sum().backward()  # raised "Inference tensors cannot be saved for backward" with an inference-mode index
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_layer_is_a_position_in_the_stack_under_layerdrop():
    """``forward(layer=i)`` in training stops after the layer at position i of the stack, whichever layers layerdrop
    skipped before it (fairseq's ``tgt_layer``). It used to count the layers that ran instead, so with position 0
    skipped ``layer=1`` ran on to position 2 and returned that layer's output."""
    torch.manual_seed(0)
    enc = DisentangledEncoder(layers=4, dim=16, ffn_dim=32, heads=2, attention_dropout=0.0, hidden_dropout=0.0,
                              layerdrop=0.5, position_buckets=8, max_relative_positions=32).double().train()
    ran = []  # (position, output) of each layer called
    for position in range(len(enc.layer)):  # indexing: iterating a LayerDropModuleList in training would drop some
        enc.layer[position].register_forward_hook(lambda m, a, out, position=position: ran.append((position, out)))
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    skipped_then_ran_on = 0  # cases the old count got wrong: a position <= i skipped, one after i run
    for seed in range(12):
        ran.clear()
        torch.manual_seed(seed)
        full, _ = enc(x)
        kept = [position for position, _ in ran]  # this seed's layerdrop decisions (one draw per pass)
        for i in range(4):
            ran.clear()
            torch.manual_seed(seed)
            y, results = enc(x, layer=i)
            assert [position for position, _ in ran] == [k for k in kept if k <= i], (seed, i, kept)
            assert torch.equal(y, ran[-1][1] if ran else x)  # the output of the last layer up to position i
            assert len(results) == len(ran) and all(torch.equal(r, out) for r, (_, out) in zip(results, ran))
            skipped_then_ran_on += len([k for k in kept if k <= i]) < i + 1 and any(k > i for k in kept)
        if kept == [0, 1, 2, 3]:
            assert torch.equal(y, full)
    assert skipped_then_ran_on > 0, "no seed exercised a skipped layer before position i"


@pytest.mark.parametrize("k,m,length", [(256, 512, 300), (256, 512, 1), (8, 32, 40), (8, 32, 2)])
def test_traced_relative_index_is_the_band(k, m, length):
    """relative_index_traced (the ONNX export's, once per forward) gives the eager band: its rows [lo, hi) and the
    index into them, expanded to [B, H, S, S]."""
    from sew_fairseq.modules.disentangled_attention import relative_index_traced

    index, lo, hi = _relative_index(length, k, m, torch.device("cpu"))
    idx, rows = relative_index_traced(torch.zeros(2, length, 4), 3, k, m)
    assert idx.shape == (2, 3, length, length) and torch.equal(idx[1, 2], index)
    assert rows.tolist() == list(range(lo, hi))
