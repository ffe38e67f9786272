"""Wave feature extractor: WFE-C layout, the conv_feature_layers parser, lengths, masked GroupNorm, padding,
and equality with fairseq's ConvFeatureExtractionModel (names and outputs)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from fairseq.models.wav2vec.wav2vec2 import ConvFeatureExtractionModel

from sew_fairseq.modules.feature_extractor import (Fp32GroupNorm, WaveFeatureExtractor, conv_output_lengths,
                                                   format_conv_layers, parse_conv_layers, wfe_c_layers,
                                                   wfe_o_layers)

# the release's WFE-C layout (asappresearch/sew pretraining scripts), verbatim
WFE_C_64 = ("[(64,10,5),(128,3,2),(128,1,1),(128,3,2),(128,1,1),(256,3,2),(256,1,1),"
            "(256,3,2),(256,1,1),(512,2,2),(512,1,1),(512,2,2),(512,1,1)]")
WFE_C_CHANNELS = (1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8)  # times c
WFE_C_KERNELS = (10, 3, 1, 3, 1, 3, 1, 3, 1, 2, 1, 2, 1)
WFE_C_STRIDES = (5, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1)
FAIRSEQ_W2V2 = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2"  # wav2vec 2.0's default


def stride_and_receptive_field(layers):
    stride, field = 1, 1
    for _, kernel, s in layers:
        field += (kernel - 1) * stride
        stride *= s
    return stride, field


def test_wfe_c_layout():
    assert wfe_c_layers(64) == parse_conv_layers(WFE_C_64)
    assert parse_conv_layers(format_conv_layers(wfe_c_layers(64))) == wfe_c_layers(64)
    for c in (64, 96, 8):
        layers = wfe_c_layers(c)
        assert [ch for ch, _, _ in layers] == [m * c for m in WFE_C_CHANNELS]
        assert tuple(k for _, k, _ in layers) == WFE_C_KERNELS
        assert tuple(s for _, _, s in layers) == WFE_C_STRIDES
        assert stride_and_receptive_field(layers) == (320, 400)


def test_wfe_o_and_fairseq_default_strings():
    assert wfe_o_layers(64) == [(64, 11, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2
    assert parse_conv_layers(FAIRSEQ_W2V2) == [(512, 10, 5), (512, 3, 2), (512, 3, 2), (512, 3, 2), (512, 3, 2),
                                               (512, 2, 2), (512, 2, 2)]
    assert stride_and_receptive_field(parse_conv_layers(FAIRSEQ_W2V2)) == (320, 400)
    assert parse_conv_layers("  [(4, 2, 1)]\n") == [(4, 2, 1)]


@pytest.mark.parametrize("spec", [
    "__import__('os').system('x')",
    "[(1,2)]",
    "[(1, 2, 3, 4)]",
    "[]",
    "[(0, 2, 1)]",
    "[(-1, 2, 1)]",
    "[(1.5, 2, 1)]",
    "[('a', 2, 1)]",
    "(1, 2, 3)",
    "[(1, 2, 3)] - [(1, 2, 3)]",
    "[x for x in [(1, 2, 3)]]",
    "[(1, 2, 3)] * 2 ** 3",
    "[(1, 2, 3)] +",
    "open('/etc/passwd')",
])
def test_parse_rejects(spec):
    with pytest.raises(ValueError):
        parse_conv_layers(spec)


def test_output_frames_equal_conv_output_lengths():
    torch.manual_seed(0)
    layers = wfe_c_layers(4)
    fe = WaveFeatureExtractor(layers).eval()
    lengths = [400, 401, 719, 720, 1040, 3333, 16000, 16001]
    expected = conv_output_lengths(torch.tensor(lengths), layers)
    # independent count: floor((L - 400) / 320) + 1 for WFE-C (total stride 320, receptive field 400)
    assert expected.tolist() == [(n - 400) // 320 + 1 for n in lengths]
    with torch.no_grad():
        for n, frames in zip(lengths, expected.tolist()):
            assert fe(torch.randn(1, n)).shape == (1, 4 * 8, frames)
    assert fe.output_lengths(torch.tensor([399, 0])).tolist() == [0, 0]


def test_masked_group_norm_full_lengths_equals_torch():
    torch.manual_seed(1)
    ours, ref = Fp32GroupNorm(6, 6, affine=True), nn.GroupNorm(6, 6, affine=True)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(6))
        ours.bias.copy_(torch.randn(6))
    ref.load_state_dict(ours.state_dict())
    x = 3.0 * torch.randn(3, 6, 37) + 1.0
    full = torch.full((3,), 37)
    torch.testing.assert_close(ours(x, full), ref(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    # partial lengths: statistics over each row's own frames
    lengths = torch.tensor([37, 20, 5])
    out = ours(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b, :, :n], ref(x[b:b + 1, :, :n])[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["default", "layer_norm"])
def test_padded_batch_equals_single(mode):
    torch.manual_seed(2)
    layers = wfe_c_layers(4)
    fe = WaveFeatureExtractor(layers, mode=mode).eval()
    lengths = [6400, 4030, 4350, 1000]  # 19, 12, 13, 2 frames: odd and even
    frames = conv_output_lengths(torch.tensor(lengths), layers).tolist()
    assert {f % 2 for f in frames} == {0, 1}
    batch = 5.0 * torch.randn(len(lengths), max(lengths))  # padding holds garbage, not zeros
    wavs = [torch.randn(n) for n in lengths]
    for b, w in enumerate(wavs):
        batch[b, :len(w)] = w
    with torch.no_grad():
        out = fe(batch, torch.tensor(lengths))
        for b, (w, f) in enumerate(zip(wavs, frames)):
            torch.testing.assert_close(out[b, :, :f], fe(w[None])[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["default", "layer_norm"])
def test_matches_fairseq_conv_feature_extraction_model(mode):
    torch.manual_seed(3)
    layers = wfe_c_layers(8)
    theirs = ConvFeatureExtractionModel(layers, dropout=0.0, mode=mode, conv_bias=False).eval()
    ours = WaveFeatureExtractor(layers, mode=mode, conv_bias=False).eval()
    their_state = theirs.state_dict()
    assert sorted(ours.state_dict()) == sorted(their_state)
    assert all(ours.state_dict()[k].shape == v.shape for k, v in their_state.items())
    with torch.no_grad():  # non-trivial norms, so a misplaced norm shows
        for name, p in theirs.named_parameters():
            if p.dim() == 1:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn_like(p))
    ours.load_state_dict(theirs.state_dict(), strict=True)
    wav = torch.randn(2, 8005)
    with torch.no_grad():
        expected = theirs(wav)
        torch.testing.assert_close(ours(wav), expected, rtol=1e-5, atol=1e-5)
        # with lengths that cover the whole batch, the masked statistics are fairseq's
        torch.testing.assert_close(ours(wav, torch.tensor([8005, 8005])), expected, rtol=1e-5, atol=1e-5)
    assert expected.shape[-1] == conv_output_lengths(torch.tensor(8005), layers).item() == math.floor(7605 / 320) + 1


def test_conv_bias_names_match_fairseq():
    layers = [(8, 10, 5), (16, 3, 2)]
    for mode in ("default", "layer_norm"):
        theirs = ConvFeatureExtractionModel(layers, mode=mode, conv_bias=True)
        ours = WaveFeatureExtractor(layers, mode=mode, conv_bias=True)
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict())


def test_bad_mode_and_input_rank():
    with pytest.raises(ValueError, match="group_norm"):
        WaveFeatureExtractor([(4, 2, 1)], mode="group_norm")
    with pytest.raises(ValueError, match="2-D"):
        WaveFeatureExtractor([(4, 2, 1)])(torch.randn(1, 1, 10))


@pytest.mark.parametrize("spec", ["[(1, 2, 3)] * 1000000000", "[(True, 2, 1)]", "[(1, 2, 3)] + 5"])
def test_parse_conv_layers_rejects_huge_or_odd_specs(spec):
    with pytest.raises(ValueError):
        parse_conv_layers(spec)
