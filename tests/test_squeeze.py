"""Squeeze / upsample (SEW section 4.2): lengths, the upsample frame layout, padding, and the SEW encoder's names."""
from __future__ import annotations

import pytest
import torch

from sew_fairseq.models.sew import SEWEncoder
from sew_fairseq.modules.layer_pass import LayerPass
from sew_fairseq.modules.squeeze import SqueezedEncoder, Upsample, lengths_to_padding_mask
from sew_fairseq.models.presets import preset_config

D = 32


class PassThrough(SqueezedEncoder):
    """Squeeze -> no layers -> upsample, to test the squeeze machinery alone."""

    num_layers = 0

    def enter_layers(self, x, padding_mask):
        return LayerPass(x, padding_mask, padding_mask, x.size(1), 0)

    def hidden_states(self, p):
        return p.x

    def leave_layers(self, p):
        return p.x


def pass_through(factor: int = 2, seed: int = 0) -> PassThrough:
    torch.manual_seed(seed)
    enc = PassThrough(D, squeeze_factor=factor, conv_pos=31, conv_pos_groups=16).eval()
    with torch.no_grad():  # a non-zero bias, so zeros in the output can only come from padding
        enc.upsample[0].bias.normal_()
        enc.pos_conv[0].bias.normal_()
    return enc


@pytest.mark.parametrize("factor", [2, 3])
@pytest.mark.parametrize("length", [3, 4, 10, 11, 50, 51])
def test_squeezed_length_is_floor(factor, length):
    enc = pass_through(factor)
    x = torch.randn(2, length, D)
    with torch.no_grad():
        squeezed, mask = enc.squeeze(x, None)
        out, _ = enc(x)
    assert squeezed.shape == (2, length // factor, D) and mask is None
    assert out.shape == (2, length, D)


def test_squeeze_is_pool_plus_positional_conv():
    enc = pass_through(2)
    x = torch.randn(1, 11, D)
    with torch.no_grad():
        squeezed, _ = enc.squeeze(x, None)
        pooled = 0.5 * (x[:, 0:10:2] + x[:, 1:10:2])  # AvgPool1d(2, 2) by hand
        pos = enc.pos_conv(x.transpose(1, 2)).transpose(1, 2)[:, :5]
    torch.testing.assert_close(squeezed, pooled + pos, rtol=1e-6, atol=1e-6)


def test_upsample_layout():
    """Frame s*t + i is channel block i of step t: with Linear blocks (I, 2I), frame 2t = GELU(x_t), 2t+1 = GELU(2
    x_t)."""
    up = Upsample(D, 2)
    with torch.no_grad():
        up[0].weight.copy_(torch.cat([torch.eye(D), 2.0 * torch.eye(D)]))  # [2D, D]
        up[0].bias.zero_()
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        out = up(x)
    gelu = torch.nn.functional.gelu
    assert out.shape == (2, 10, D)
    torch.testing.assert_close(out[:, 0::2], gelu(x))
    torch.testing.assert_close(out[:, 1::2], gelu(2.0 * x))


@pytest.mark.parametrize("length", [21, 20])
def test_odd_length_last_frame_zero(length):
    enc = pass_through(2)
    with torch.no_grad():
        out, _ = enc(torch.randn(1, length, D))
    zero_frames = (out[0].abs().sum(-1) == 0).nonzero().flatten().tolist()
    assert zero_frames == ([length - 1] if length % 2 else [])


def test_padded_batch_equals_single():
    enc = pass_through(2)
    lengths = [21, 13, 8]  # squeezed 10, 6, 4
    x = 10.0 * torch.randn(len(lengths), max(lengths), D)  # padding frames hold garbage
    mask = lengths_to_padding_mask(torch.tensor(lengths), max(lengths))
    with torch.no_grad():
        out, _ = enc(x, padding_mask=mask)
        _, squeezed_mask = enc.squeeze(x, mask)
        for b, n in enumerate(lengths):
            assert (~squeezed_mask[b]).sum().item() == n // 2
            single, _ = enc(x[b:b + 1, :n])
            torch.testing.assert_close(out[b, :n], single[0], rtol=1e-5, atol=1e-5)
            # everything from squeezed padding (and the odd last frame) is zero
            assert out[b, 2 * (n // 2):].abs().sum().item() == 0.0
            assert out[b, :2 * (n // 2)].abs().sum(-1).min().item() > 0.0


def small_sew_cfg(layers: int = 2):
    return preset_config("sew_tiny", encoder_layers=layers, encoder_embed_dim=D, encoder_ffn_embed_dim=2 * D,
                         encoder_attention_heads=2, conv_pos=31, conv_pos_groups=16, dropout=0.0,
                         attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.0)


def test_sew_encoder_state_dict_names_are_the_release_names():
    enc = SEWEncoder(small_sew_cfg(layers=2))
    expected = {"pos_conv.0.weight_g", "pos_conv.0.weight_v", "pos_conv.0.bias", "upsample.0.weight",
                "upsample.0.bias", "layer_norm.weight", "layer_norm.bias"}
    for n in range(2):
        for part in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                     "self_attn_layer_norm", "fc1", "fc2", "final_layer_norm"):
            expected |= {f"layers.{n}.{part}.weight", f"layers.{n}.{part}.bias"}
    state = enc.state_dict()
    assert set(state) == expected, (sorted(set(state) - expected), sorted(expected - set(state)))
    assert state["pos_conv.0.weight_g"].shape == (1, 1, 31)  # weight norm over dim 2
    assert state["pos_conv.0.weight_v"].shape == (D, D // 16, 31)
    assert state["upsample.0.weight"].shape == (2 * D, D)


def test_sew_encoder_padded_batch_equals_single():
    torch.manual_seed(5)
    enc = SEWEncoder(small_sew_cfg()).eval()
    lengths = [19, 12]
    x = 10.0 * torch.randn(2, 19, D)
    mask = lengths_to_padding_mask(torch.tensor(lengths), 19)
    with torch.no_grad():
        out, _ = enc(x, padding_mask=mask)
        for b, n in enumerate(lengths):
            torch.testing.assert_close(out[b, :n], enc(x[b:b + 1, :n])[0][0], rtol=1e-5, atol=1e-5)
        assert out[1, 12:].abs().sum().item() == 0.0


def test_too_short_input_is_a_clear_error():
    from sew_fairseq.models.presets import build_preset

    model = build_preset("sew_d_tiny", encoder_layers=1).eval()
    model.remove_pretraining_modules()
    with pytest.raises(ValueError, match="too short to squeeze"):
        model.extract_features(torch.randn(1, 400), None)  # one frame
    assert model.extract_features(torch.randn(1, 720), None)["x"].shape[1] == 2
