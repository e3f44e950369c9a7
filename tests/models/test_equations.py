"""The papers' equations checked on tiny hand-computed cases (1-unit states, set weights)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from seq2seq.core import EncoderOutput
from seq2seq.models.decoders.bahdanau import BahdanauDecoder
from seq2seq.models.decoders.context import ContextDecoder
from seq2seq.models.encoders.rnn import BiGRUEncoder, GRUEncoder
from seq2seq.models.modules.attention import AdditiveAttention
from seq2seq.models.modules.cells import BahdanauGRUCell, ChoGRUCell, ContextLSTMCell
from seq2seq.models.modules.maxout import MaxoutOutput


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def fill(linear: nn.Linear, *values: float) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(values).view_as(linear.weight))


def test_additive_attention_hand_computed() -> None:
    """e_j = v tanh(W s + U h_j); alpha = softmax over real positions; c = sum alpha h."""
    attention = AdditiveAttention(query_dim=1, key_dim=1, attention_dim=1)
    fill(attention.query, 0.5)  # W_a
    fill(attention.key, 2.0)  # U_a
    fill(attention.v, 3.0)  # v_a
    s = torch.tensor([[1.0]])
    h = torch.tensor([[[0.2], [-0.4], [9.0]]])  # the last position is padding
    mask = torch.tensor([[True, True, False]])
    context, alpha = attention(s, attention.project_keys(h), h, mask)

    e = [3.0 * math.tanh(0.5 * 1.0 + 2.0 * hj) for hj in (0.2, -0.4)]
    z = sum(math.exp(x) for x in e)
    expected_alpha = [math.exp(x) / z for x in e]
    torch.testing.assert_close(alpha, torch.tensor([[*expected_alpha, 0.0]]))
    expected_c = expected_alpha[0] * 0.2 + expected_alpha[1] * -0.4
    torch.testing.assert_close(context, torch.tensor([[expected_c]]))


def test_bahdanau_gru_cell_hand_computed() -> None:
    """s' = (1-z) s + z tanh(x_h + U (r*s) + k_h): reset before U, update weighs the candidate."""
    cell = BahdanauGRUCell(hidden_dim=1)
    fill(cell.recurrent_gates, 0.3, -0.2)  # U_z, U_r
    fill(cell.recurrent, 1.5)  # U
    s, x, k = 0.8, (0.1, 0.2, 0.3), (-0.1, 0.4, 0.05)
    out = cell(torch.tensor([x]), torch.tensor([k]), {"h": torch.tensor([[s]])})["h"]
    z = sigmoid(x[0] + 0.3 * s + k[0])
    r = sigmoid(x[1] - 0.2 * s + k[1])
    candidate = math.tanh(x[2] + 1.5 * (r * s) + k[2])
    assert out.item() == pytest.approx((1 - z) * s + z * candidate, abs=1e-6)


def test_cho_gru_cell_hand_computed() -> None:
    """h' = z h + (1-z) tanh(x_h + r * (U h + C c)): the reset gate also scales the context."""
    cell = ChoGRUCell(hidden_dim=1)
    fill(cell.recurrent, 0.3, -0.2, 1.5)  # U_z, U_r, U
    h, x, k = -0.6, (0.1, 0.2, 0.3), (-0.1, 0.4, 0.7)
    out = cell(torch.tensor([x]), torch.tensor([k]), {"h": torch.tensor([[h]])})["h"]
    z = sigmoid(x[0] + 0.3 * h + k[0])
    r = sigmoid(x[1] - 0.2 * h + k[1])
    candidate = math.tanh(x[2] + r * (1.5 * h + k[2]))
    assert out.item() == pytest.approx(z * h + (1 - z) * candidate, abs=1e-6)


def test_lstm_cell_hand_computed() -> None:
    cell = ContextLSTMCell(hidden_dim=1)
    fill(cell.recurrent, 0.1, 0.2, 0.3, 0.4)
    h, m = 0.5, -0.3
    x, k = (0.1, -0.1, 0.2, 0.0), (0.0, 0.3, -0.2, 0.1)
    pre = [x[j] + k[j] + w * h for j, w in enumerate((0.1, 0.2, 0.3, 0.4))]
    state = {"h": torch.tensor([[h]]), "memory": torch.tensor([[m]])}
    new = cell(torch.tensor([x]), torch.tensor([k]), state)
    memory = sigmoid(pre[1]) * m + sigmoid(pre[0]) * math.tanh(pre[3])
    assert new["memory"].item() == pytest.approx(memory, abs=1e-6)
    assert new["h"].item() == pytest.approx(sigmoid(pre[2]) * math.tanh(memory), abs=1e-6)


def test_maxout_pools_adjacent_pairs() -> None:
    """t_j = max(t~_{2j-1}, t~_{2j}) then W_o t."""
    layer = MaxoutOutput(state_dim=1, embed_dim=1, context_dim=1, maxout_dim=2, vocab_size=1)
    with torch.no_grad():
        layer.from_state.weight.copy_(torch.tensor([[1.0], [-1.0], [2.0], [0.5]]))
        layer.from_state.bias.zero_()
        layer.from_embedding.weight.zero_()
        layer.from_context.weight.copy_(torch.tensor([[0.0], [1.0], [0.0], [-3.0]]))
        layer.vocab.weight.copy_(torch.tensor([[1.0, 10.0]]))
        layer.vocab.bias.zero_()
    s, c = 2.0, 1.0
    logits = layer(torch.tensor([[s]]), torch.tensor([[0.0]]), torch.tensor([[c]]))
    t = [max(1.0 * s, -1.0 * s + c), max(2.0 * s, 0.5 * s - 3.0 * c)]
    assert logits.item() == pytest.approx(t[0] + 10.0 * t[1])


def _tiny_enc(batch: int = 2, n: int = 4, d: int = 6, s: int = 3) -> EncoderOutput:
    torch.manual_seed(0)
    mask = torch.tensor([[True] * n, [True] * (n - 1) + [False]])[:batch]
    return EncoderOutput(torch.randn(batch, n, d) * mask[..., None], mask, torch.randn(batch, s))


def test_bahdanau_decoder_attends_from_previous_state_and_outputs_from_it() -> None:
    """Step i: alpha from s_{i-1}; logits from (s_{i-1}, E y_{i-1}, c_i); s_0 = tanh(W_s c)."""
    torch.manual_seed(1)
    decoder = BahdanauDecoder(
        11,
        annotation_dim=6,
        summary_dim=3,
        embed_dim=5,
        hidden_dim=4,
        attention_dim=3,
        maxout_dim=2,
    ).eval()
    enc = _tiny_enc()
    state = decoder.init_state(enc)
    s0 = torch.tanh(decoder.init_proj(enc.summary))
    torch.testing.assert_close(state["h"], s0)
    prev = torch.tensor([2, 5])
    out = decoder.step(prev, state, enc)
    context, alpha = decoder.attention(
        s0, decoder.attention.project_keys(enc.annotations), enc.annotations, enc.mask
    )
    torch.testing.assert_close(out.attention, alpha)
    expected = decoder.output(s0, decoder.embedding(prev), context)
    torch.testing.assert_close(out.logits, expected)
    # And the new state is the cell's update with that context.
    x = decoder.input_proj(decoder.embedding(prev))
    s1 = decoder.cell(x, decoder.context_proj(context), {"h": s0})["h"]
    torch.testing.assert_close(out.state["h"], s1)


def test_cho_decoder_reads_context_every_step_and_outputs_from_new_state() -> None:
    torch.manual_seed(2)
    decoder = ContextDecoder(9, summary_dim=3, embed_dim=5, hidden_dim=4, maxout_dim=2).eval()
    enc = _tiny_enc()
    state = decoder.init_state(enc)
    torch.testing.assert_close(state["h"], torch.tanh(decoder.init_proj(enc.summary)))  # h'(0)
    prev = torch.tensor([4, 7])
    out = decoder.step(prev, state, enc)
    x = decoder.input_proj(decoder.embedding(prev))
    h1 = decoder.cell(x, decoder.context_proj(enc.summary), {"h": state["h"]})["h"]
    torch.testing.assert_close(out.state["h"], h1)
    torch.testing.assert_close(out.logits, decoder.output(h1, decoder.embedding(prev), enc.summary))
    # The annotations are never read: changing them changes nothing.
    enc2 = EncoderOutput(torch.randn_like(enc.annotations), enc.mask, enc.summary)
    torch.testing.assert_close(
        decoder.step(prev, decoder.init_state(enc2), enc2).logits, out.logits
    )


def test_bigru_summary_is_backward_state_at_first_word() -> None:
    torch.manual_seed(3)
    encoder = BiGRUEncoder(20, embed_dim=4, hidden_dim=3).eval()
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    out = encoder(src, torch.tensor([4, 2]))
    torch.testing.assert_close(out.summary, out.annotations[:, 0, 3:])
    assert out.annotations[1, 2:].abs().max() == 0  # padding annotations are zero


def test_gru_encoder_context_is_tanh_v_last_real_state() -> None:
    torch.manual_seed(4)
    encoder = GRUEncoder(20, embed_dim=4, hidden_dim=3, context_dim=5).eval()
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    out = encoder(src, torch.tensor([4, 2]))
    last = torch.stack([out.annotations[0, 3], out.annotations[1, 1]])
    torch.testing.assert_close(out.summary, torch.tanh(encoder.to_context(last)))
    assert out.summary.shape == (2, 5)


def test_show_attend_tell_gate_and_output_from_current_state() -> None:
    """ẑ = β Σ α a with β = σ(f_β(h_{t-1})); the output reads h_t, E y_{t-1} and ẑ."""
    torch.manual_seed(5)
    decoder = BahdanauDecoder(
        9,
        annotation_dim=6,
        summary_dim=3,
        embed_dim=5,
        hidden_dim=4,
        attention_dim=3,
        maxout_dim=2,
        cell="lstm",
        gate=True,
        output_from="current",
        maxout_pool=1,
    ).eval()
    enc = _tiny_enc()
    state = decoder.init_state(enc)
    prev = torch.tensor([3, 6])
    out = decoder.step(prev, state, enc)
    context, _ = decoder.attention(
        state["h"], decoder.attention.project_keys(enc.annotations), enc.annotations, enc.mask
    )
    beta = torch.sigmoid(decoder.gate(state["h"]))
    gated = beta * context
    x = decoder.input_proj(decoder.embedding(prev))
    new = decoder.cell(x, decoder.context_proj(gated), {"h": state["h"], "memory": state["memory"]})
    torch.testing.assert_close(out.state["h"], new["h"])
    torch.testing.assert_close(out.logits, decoder.output(new["h"], decoder.embedding(prev), gated))


def test_doubly_stochastic_regulariser_hand_computed() -> None:
    """λ Σ_i (1 - Σ_t α_ti)², over real target steps and real source positions only."""
    decoder = BahdanauDecoder(5, annotation_dim=2, summary_dim=2, doubly_stochastic=0.5)
    alpha = torch.tensor([[[0.7, 0.3, 0.0], [0.2, 0.8, 0.0], [0.5, 0.5, 0.0]]])  # (1, T=3, N=3)
    target_mask = torch.tensor([[True, True, False]])  # the third step is padding
    source_mask = torch.tensor([[True, True, False]])  # the third position is padding
    loss = decoder.auxiliary_loss(alpha, target_mask, source_mask)
    expected = 0.5 * ((1 - (0.7 + 0.2)) ** 2 + (1 - (0.3 + 0.8)) ** 2)
    assert loss.item() == pytest.approx(expected)
    plain = BahdanauDecoder(5, annotation_dim=2, summary_dim=2)
    assert plain.auxiliary_loss(alpha, target_mask, source_mask) is None
