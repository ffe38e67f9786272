"""The layer-stepping protocol (modules/layer_pass.py, models/encoder_steps.py) of every context network.

Each encoder's forward is made of its protocol, so the protocol is checked against what the encoders computed
before it: for SEW and SEW-D, their forwards as they were written until then (``old_sew``, ``old_sew_d`` below,
test-only copies kept as references); for fairseq's wav2vec 2.0 / HuBERT ``TransformerEncoder``, fairseq's own
forward. Bit for bit (``torch.equal``), on random weights and padded batches, in eval mode and in training mode
with dropout and layerdrop (the random generators seeded alike, and left in the same state).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from fairseq.models.wav2vec.wav2vec2 import TransformerEncoder, Wav2Vec2Config

from sew_fairseq.models.encoder_steps import TransformerEncoderSteps, layer_stepper
from sew_fairseq.models.sew import SEWEncoder
from sew_fairseq.models.sew_d import SEWDEncoder
from sew_fairseq.modules.layer_pass import run_layers
from sew_fairseq.models.presets import preset_config

D, LAYERS = 32, 4
SIZES = dict(encoder_layers=LAYERS, encoder_embed_dim=D, encoder_ffn_embed_dim=2 * D, encoder_attention_heads=2,
             encoder_layerdrop=0.5)


def sew(layer_norm_first: bool = False) -> SEWEncoder:
    torch.manual_seed(0)
    return SEWEncoder(preset_config("sew_tiny", **SIZES, conv_pos=15, conv_pos_groups=4, dropout=0.1,
                                    layer_norm_first=layer_norm_first))


def sew_d() -> SEWDEncoder:
    torch.manual_seed(0)
    return SEWDEncoder(preset_config("sew_d_tiny", **SIZES, conv_pos=15, conv_pos_groups=4, activation_dropout=0.1,
                                     position_buckets=8, max_position_embeddings=32))


def transformer(layer_norm_first: bool = False, multiple: int = 2) -> TransformerEncoder:
    torch.manual_seed(0)
    return TransformerEncoder(Wav2Vec2Config(**SIZES, conv_pos=16, conv_pos_groups=4, dropout=0.1,
                                             layer_norm_first=layer_norm_first, required_seq_len_multiple=multiple))


ENCODERS = {"sew": sew, "sew_preln": lambda: sew(True), "sew_d": sew_d, "w2v2": transformer,
            "w2v2_preln_mult7": lambda: transformer(True, 7), "w2v2_mult1": lambda: transformer(False, 1)}


def frames(padded: bool = True, length: int = 37):
    """x [2, T, D] with garbage in the padding of the second utterance, padding mask [2, T] (or None)."""
    g = torch.Generator().manual_seed(3)
    x = 3.0 * torch.randn(2, length, D, generator=g)
    if not padded:
        return x, None
    mask = torch.zeros(2, length, dtype=torch.bool)
    mask[1, 23:] = True
    return x, mask


# ---------------------------------------------------------------- the forwards before the protocol (references)

def old_sew(enc: SEWEncoder, x, padding_mask, layer=None):
    """SEWEncoder.forward as written before the protocol (squeeze, enter_layers, run_layer, leave_layers)."""
    length = x.size(1)
    x, squeezed_mask = enc.squeeze(x, padding_mask)
    if not enc.layer_norm_first:
        x = enc.layer_norm(x)
    x = torch.nn.functional.dropout(x, p=enc.dropout, training=enc.training)
    mask = squeezed_mask if squeezed_mask is not None and squeezed_mask.any() else None
    x = x.transpose(0, 1)
    results = []
    for i in range(len(enc.layers)):
        if not (enc.training and np.random.random() <= enc.layerdrop):
            x = enc.layers[i](x, self_attn_padding_mask=mask, need_weights=False)[0]
            results.append(x.transpose(0, 1))
        if layer is not None and i == layer:
            break
    x = x.transpose(0, 1)
    x = enc.layer_norm(x) if enc.layer_norm_first else x
    return enc.unsqueeze(x, squeezed_mask, length), results


def old_sew_d(enc: SEWDEncoder, x, padding_mask, layer=None):
    """SEWDEncoder.forward as written before the protocol (its DisentangledEncoder's loop, layers at positions)."""
    length = x.size(1)
    x, squeezed_mask = enc.squeeze(x, padding_mask)
    stack = enc.encoder
    rel, rel_key = stack.relative_table()
    mask = squeezed_mask if squeezed_mask is not None and squeezed_mask.any() else None
    draws = torch.empty(len(stack.layer)).uniform_()  # as LayerDropModuleList.__iter__
    results = []
    for i in range(len(stack.layer)):
        if not stack.layer.training or draws[i] > stack.layer.p:
            x = stack.layer[i](x, rel, mask, rel_key)
            results.append(x)
        if layer is not None and i == layer:
            break
    return enc.unsqueeze(x, squeezed_mask, length), results


def forward(enc, x, padding_mask, layer=None):
    """(output, [hidden states [B, S, D] after each layer run]) of ``enc``'s forward."""
    y, results = enc(x, padding_mask, layer=layer)
    if isinstance(enc, TransformerEncoder):  # fairseq's layer results: ([T, B, D], attention, pre-FFN) tuples
        results = [r[0].transpose(0, 1) for r in results]
    return y, results


def reference(enc, x, padding_mask, layer=None):
    """(output, [hidden states [B, S, D] after each layer run]) as computed before the protocol."""
    if isinstance(enc, SEWDEncoder):
        return old_sew_d(enc, x, padding_mask, layer)
    if isinstance(enc, SEWEncoder):
        return old_sew(enc, x, padding_mask, layer)
    return forward(enc, x, padding_mask, layer)  # fairseq's own forward


def seeded(seed: int, fn, *args, **kwargs):
    """fn(*args) with torch's and numpy's generators seeded, and a sample of each generator afterwards."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    out = fn(*args, **kwargs)
    return out, (torch.rand(4), torch.from_numpy(np.random.random(4)))


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))


def stepped(enc, x, padding_mask, layer=None):
    """(output, hidden states after each layer run, layers run) through the protocol, as early exit drives it."""
    stack = layer_stepper(enc)
    p = stack.begin_layers(x, padding_mask)
    hidden = []
    while not p.done:
        position = p.index
        if stack.run_layer(p):
            hidden.append(stack.hidden_states(p))
        if layer is not None and position == layer:
            break
    return stack.end_layers(p), hidden, p.layers_run


# ---------------------------------------------------------------- the tests

@pytest.mark.parametrize("name", list(ENCODERS))
@pytest.mark.parametrize("padded", [True, False])
def test_forward_and_stepping_compute_what_the_encoders_did(name, padded):
    """The encoder's forward and the protocol stepped layer by layer both give the pre-protocol forward, in eval
    mode and in training (dropout, layerdrop 0.5: seeds where layers are skipped), with the generators left alike."""
    enc = ENCODERS[name]()
    x, mask = frames(padded)
    skipped = 0
    for training in (False, True):
        enc.train(training)
        for seed in range(4) if training else range(1):
            (ref, ref_hidden), ref_rng = seeded(seed, reference, enc, x, mask)
            (out, hidden), rng = seeded(seed, forward, enc, x, mask)
            assert torch.equal(out, ref) and same(hidden, ref_hidden) and same(rng, ref_rng), (training, seed)
            (out, hidden, layers_run), rng = seeded(seed, stepped, enc, x, mask)
            assert torch.equal(out, ref) and same(hidden, ref_hidden) and same(rng, ref_rng), (training, seed)
            assert layers_run == len(ref_hidden)
            skipped += LAYERS - layers_run
    assert skipped > 0, "no seed made layerdrop skip a layer"
    assert out.shape == x.shape


@pytest.mark.parametrize("name", list(ENCODERS))
def test_stopping_after_a_position(name):
    """``forward(layer=i)`` (fairseq's ``tgt_layer``) and stepping up to position i agree with the references, in
    training too: the layer index is the position in the stack, layers that layerdrop skipped included."""
    enc = ENCODERS[name]()
    x, mask = frames()
    for training in (False, True):
        enc.train(training)
        for seed in range(3):
            for i in range(LAYERS):
                (ref, ref_hidden), _ = seeded(seed, reference, enc, x, mask, layer=i)
                (_, hidden), _ = seeded(seed, forward, enc, x, mask, layer=i)
                (_, stepped_hidden, _), _ = seeded(seed, stepped, enc, x, mask, layer=i)
                assert same(hidden, ref_hidden) and same(stepped_hidden, ref_hidden), (training, seed, i)
                if isinstance(enc, TransformerEncoder):  # fairseq returns the hidden states at position i
                    p = layer_stepper(enc)
                    torch.manual_seed(seed)
                    np.random.seed(seed)
                    state = p.begin_layers(x, mask)
                    run_layers(p, state, last=i)
                    assert torch.equal(p.hidden_states(state), ref)
                else:
                    (out, _), _ = seeded(seed, enc, x, mask, layer=i)
                    assert torch.equal(out, ref)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_layer_index_counts_positions_under_layerdrop(name):
    """In training, ``forward(layer=i)`` calls no layer past position i and stops after the last one up to it."""
    enc = ENCODERS[name]().train()
    layers = enc.encoder.layer if isinstance(enc, SEWDEncoder) else enc.layers
    called = []
    for position in range(LAYERS):
        layers[position].register_forward_hook(lambda *_, position=position: called.append(position))
    x, mask = frames()
    for seed in range(6):
        called.clear()
        seeded(seed, enc, x, mask)
        kept = list(called)
        for i in range(LAYERS):
            called.clear()
            seeded(seed, enc, x, mask, layer=i)
            assert called == [k for k in kept if k <= i], (seed, i, kept)


@pytest.mark.parametrize("name", ["sew", "sew_d", "w2v2"])
def test_to_frames_of_the_last_hidden_states_is_the_output(name):
    """Post-LN encoders: the last hidden states brought to the frame rate are the forward's output."""
    enc = ENCODERS[name]().eval()
    x, mask = frames()
    stack = layer_stepper(enc)
    with torch.no_grad():
        p = stack.begin_layers(x, mask)
        run_layers(stack, p)
        assert torch.equal(stack.to_frames(p, stack.hidden_states(p)), enc(x, mask)[0])
    squeezed = isinstance(enc, (SEWEncoder, SEWDEncoder))
    assert p.padding_mask.shape == (2, 37 // 2 if squeezed else 37) and p.layers_run == LAYERS


def test_transformer_adapter_is_a_view_that_leaves_fairseqs_encoder_as_it_was():
    enc = transformer().train()
    keys = sorted(enc.state_dict())
    stack = layer_stepper(enc)
    assert isinstance(stack, TransformerEncoderSteps) and not isinstance(stack, torch.nn.Module)
    assert stack.num_layers == LAYERS
    stack.begin_layers(*frames())
    assert enc.layerdrop == 0.5 and not enc.layers[0]._forward_pre_hooks  # restored, hook removed
    assert sorted(enc.state_dict()) == keys
    for squeezed in (sew(), sew_d()):
        assert layer_stepper(squeezed) is squeezed and squeezed.num_layers == LAYERS
    with pytest.raises(ValueError, match="branches have no upsample"):
        stack.to_frames(stack.begin_layers(*frames()), torch.zeros(2, 37, D), torch.nn.Identity())


def test_unsupported_context_networks_are_named():
    with pytest.raises(TypeError, match="cannot run a Linear layer by layer"):
        layer_stepper(torch.nn.Linear(2, 2))
    torch.manual_seed(0)
    conformer = TransformerEncoder(Wav2Vec2Config(**SIZES, conv_pos=16, conv_pos_groups=4))
    conformer.layers[1] = torch.nn.Identity()
    with pytest.raises(ValueError, match="Identity layers"):
        layer_stepper(conformer)
