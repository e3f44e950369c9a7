"""The encoder/decoder contract, for every encoder × decoder × cell combination."""

from __future__ import annotations

import itertools

import pytest
import torch

from seq2seq.model import EncoderDecoder, build_model

ENCODERS = {
    "bigru": {
        "_target_": "seq2seq.models.encoders.rnn.BiGRUEncoder",
        "embed_dim": 7,
        "hidden_dim": 5,
    },
    "gru": {
        "_target_": "seq2seq.models.encoders.rnn.GRUEncoder",
        "embed_dim": 7,
        "hidden_dim": 6,
    },
}
DECODERS = {
    "bahdanau": {
        "_target_": "seq2seq.models.decoders.bahdanau.BahdanauDecoder",
        "embed_dim": 6,
        "hidden_dim": 6,
        "attention_dim": 4,
        "maxout_dim": 3,
    },
    # Show-Attend-Tell's options on the attention decoder.
    "sat": {
        "_target_": "seq2seq.models.decoders.bahdanau.BahdanauDecoder",
        "embed_dim": 6,
        "hidden_dim": 6,
        "attention_dim": 4,
        "maxout_dim": 3,
        "gate": True,
        "output_from": "current",
        "maxout_pool": 1,
        "doubly_stochastic": 1.0,
    },
    "cho": {
        "_target_": "seq2seq.models.decoders.context.ContextDecoder",
        "embed_dim": 6,
        "hidden_dim": 6,
        "maxout_dim": 3,
    },
    # Show-and-Tell as Vinyals et al. feed it: the image (here the summary) once, at the start.
    "nic": {
        "_target_": "seq2seq.models.decoders.context.ContextDecoder",
        "embed_dim": 6,
        "hidden_dim": 6,
        "maxout_dim": 3,
        "context_at": "start",
    },
}
COMBOS = list(itertools.product(ENCODERS, DECODERS, ["gru", "lstm"], ["bahdanau", "pytorch"]))
SRC_V, TGT_V = 17, 13


def make(encoder: str, decoder: str, cell: str, init: str = "pytorch") -> EncoderDecoder:
    torch.manual_seed(0)
    cfg = {
        "encoder": ENCODERS[encoder],
        "decoder": {**DECODERS[decoder], "cell": cell},
        "init": init,
    }
    return build_model(cfg, SRC_V, TGT_V)


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([6, 3, 1])
    src = torch.randint(4, SRC_V, (3, 6), generator=g)
    src[torch.arange(6)[None] >= lengths[:, None]] = 0
    prev = torch.randint(4, TGT_V, (3, 5), generator=g)
    prev[:, 0] = 2
    return src, lengths, prev


@pytest.mark.parametrize(("encoder", "decoder", "cell", "init"), COMBOS)
def test_shapes_padding_and_gradients(encoder: str, decoder: str, cell: str, init: str) -> None:
    model = make(encoder, decoder, cell, init)
    src, lengths, prev = batch()
    enc = model.encode(src, lengths)
    assert enc.annotations.shape == (3, 6, model.encoder.output_dim)
    assert enc.summary.shape == (3, model.encoder.summary_dim)
    assert enc.annotations[~enc.mask].abs().max() == 0
    out = model(src, lengths, prev)
    assert out.logits.shape == (3, 5, TGT_V)
    if out.attention is not None:
        assert out.attention.shape == (3, 5, 6)
        assert out.attention[~enc.mask[:, None, :].expand(-1, 5, -1)].abs().max() == 0
        torch.testing.assert_close(out.attention.sum(-1), torch.ones(3, 5))
    if init == "bahdanau" and decoder in ("bahdanau", "sat"):
        # v_a starts at zero (uniform attention), which stops the gradient into W_a and U_a
        # until v_a has moved; move it so that every path is exercised.
        torch.nn.init.normal_(model.decoder.attention.v.weight)
    out = model(src, lengths, prev)
    out.logits.logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    # Every decoder parameter must learn. The encoder may have unused parts: a fixed-vector
    # decoder over the bidirectional encoder reads only bwd_1, not the forward GRU.
    assert not [n for n in missing if n.startswith("decoder.")], missing
    assert model.encoder.embedding.weight.grad.any()


@pytest.mark.parametrize(("encoder", "decoder", "cell", "init"), COMBOS)
def test_step_by_step_equals_teacher_forced(
    encoder: str, decoder: str, cell: str, init: str
) -> None:
    model = make(encoder, decoder, cell, init).eval()
    src, lengths, prev = batch()
    with torch.no_grad():
        full = model(src, lengths, prev)
        enc = model.encode(src, lengths)
        state = model.decoder.init_state(enc)
        logits, attention = [], []
        for t in range(prev.size(1)):
            step = model.decoder.step(prev[:, t], state, enc)
            state = step.state
            logits.append(step.logits)
            attention.append(step.attention)
    torch.testing.assert_close(torch.stack(logits, 1), full.logits, rtol=1e-5, atol=1e-5)
    if full.attention is not None:
        torch.testing.assert_close(torch.stack(attention, 1), full.attention)


@pytest.mark.parametrize(("encoder", "decoder"), list(itertools.product(ENCODERS, DECODERS)))
def test_padding_does_not_change_results(encoder: str, decoder: str) -> None:
    """A sentence decodes the same alone as padded in a batch with a longer one."""
    model = make(encoder, decoder, "gru").eval()
    src, lengths, prev = batch()
    with torch.no_grad():
        batched = model(src, lengths, prev).logits[1]
        alone = model(src[1:2, :3], lengths[1:2], prev[1:2]).logits[0]
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-5)


def test_reorder_state_selects_rows() -> None:
    model = make("bigru", "bahdanau", "lstm").eval()
    src, lengths, _ = batch()
    state = model.decoder.init_state(model.encode(src, lengths))
    order = torch.tensor([2, 2, 0])
    reordered = model.decoder.reorder_state(state, order)
    assert set(reordered) == set(state)
    for name in state:
        torch.testing.assert_close(reordered[name], state[name][order])


def test_unknown_cell_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cell must be one of"):
        make("bigru", "bahdanau", "rnn")


def test_config_cannot_name_code_outside_the_package() -> None:
    cfg = {"encoder": {"_target_": "os.system", "_partial_": True}, "decoder": DECODERS["cho"]}
    with pytest.raises(ValueError, match="only classes of the seq2seq package"):
        build_model(cfg, SRC_V, TGT_V)
