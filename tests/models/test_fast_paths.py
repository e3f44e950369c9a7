"""The fast paths give what the plain ones give: outputs and every gradient, to 1e-5.

- the fused attention-GRU loop (hand-written backward) against the decoder's autograd loop;
- the fused CPU GRU (both directions in one loop, masked, hand-written backward) against
  ``nn.GRU`` over packed sequences, for one and two directions and stacked layers;
- logits at the real target positions only (``target_mask``) against the full logits.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.core import EncoderOutput, lengths_to_mask
from seq2seq.models.decoders.bahdanau import BahdanauDecoder
from seq2seq.models.decoders.context import ContextDecoder
from seq2seq.models.encoders.rnn import BiGRUEncoder, GRUEncoder
from seq2seq.models.kernels.gru import fused_gru, reverse_within_lengths

LENGTHS = torch.tensor([6, 3, 1, 5, 6])


def grads(module: nn.Module, *tensors: Tensor) -> dict[str, Tensor]:
    """Gradients of every parameter of ``module`` and of ``tensors`` (as ``input{i}``)."""
    out = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
    out.update({f"input{i}": t.grad.clone() for i, t in enumerate(tensors)})
    return out


def assert_close_dicts(a: dict[str, Tensor], b: dict[str, Tensor], atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=1e-5, msg=name)


ATTENTION_DECODERS = {
    "gru previous": dict(output_from="previous"),
    "gru current": dict(output_from="current"),
    "lstm gated (Show, Attend and Tell)": dict(
        cell="lstm", gate=True, output_from="current", maxout_pool=1
    ),
    "lstm": dict(cell="lstm"),
}


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("options", list(ATTENTION_DECODERS))
def test_fused_attention_loop_equals_plain_loop(dtype, atol, options) -> None:
    torch.manual_seed(0)
    decoder = BahdanauDecoder(
        50, 12, 6, embed_dim=8, hidden_dim=10, attention_dim=7, maxout_dim=5,
        **ATTENTION_DECODERS[options],
    ).to(dtype)  # fmt: skip
    mask = lengths_to_mask(LENGTHS, 6)
    annotations = (torch.randn(5, 6, 12, dtype=dtype) * mask[..., None]).requires_grad_()
    summary = torch.randn(5, 6, dtype=dtype, requires_grad=True)
    tokens = torch.randint(0, 50, (5, 7))
    results = []
    for fused in (False, True):
        decoder.fused = fused
        assert decoder.can_fuse("cpu") == fused
        decoder.zero_grad()
        annotations.grad = summary.grad = None
        out = decoder(tokens, EncoderOutput(annotations, mask, summary))
        weights = torch.randn(out.logits.shape, generator=torch.Generator().manual_seed(1))
        attn_w = torch.randn(out.attention.shape, generator=torch.Generator().manual_seed(2))
        (
            (out.logits * weights.to(dtype)).sum() + (out.attention * attn_w.to(dtype)).sum()
        ).backward()
        results.append(
            (out.logits.detach(), out.attention.detach(), grads(decoder, annotations, summary))
        )
    (logits_a, attn_a, grads_a), (logits_b, attn_b, grads_b) = results
    torch.testing.assert_close(logits_a, logits_b, atol=atol, rtol=1e-5)
    torch.testing.assert_close(attn_a, attn_b, atol=atol, rtol=1e-5)
    assert (attn_b[~mask.unsqueeze(1).expand_as(attn_b)] == 0).all()
    assert_close_dicts(grads_a, grads_b, atol)


def test_gated_gru_and_autocast_take_the_plain_loop() -> None:
    assert not BahdanauDecoder(9, 4, 4, gate=True).can_fuse("cpu")
    assert BahdanauDecoder(9, 4, 4, cell="lstm", gate=True).can_fuse("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not BahdanauDecoder(9, 4, 4).can_fuse("cpu")


def packed_gru(gru: nn.GRU, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    outputs, final = gru(packed)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.size(1))
    return outputs, final


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("layers,bidirectional", [(1, True), (2, True), (1, False), (2, False)])
def test_fused_gru_equals_packed_gru(dtype, atol, layers, bidirectional) -> None:
    torch.manual_seed(0)
    gru = nn.GRU(5, 7, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    gru = gru.to(dtype)
    x = torch.randn(5, 6, 5, dtype=dtype, requires_grad=True)
    results = []
    for run in (packed_gru, fused_gru):
        gru.zero_grad()
        x.grad = None
        outputs, final = run(gru, x, LENGTHS)
        weights = torch.randn(outputs.shape, generator=torch.Generator().manual_seed(1))
        final_w = torch.randn(final.shape, generator=torch.Generator().manual_seed(2))
        ((outputs * weights.to(dtype)).sum() + (final * final_w.to(dtype)).sum()).backward()
        results.append((outputs.detach(), final.detach(), grads(gru, x)))
    (out_a, final_a, grads_a), (out_b, final_b, grads_b) = results
    torch.testing.assert_close(out_a, out_b, atol=atol, rtol=1e-5)
    torch.testing.assert_close(final_a, final_b, atol=atol, rtol=1e-5)
    assert (out_b[~lengths_to_mask(LENGTHS, 6)] == 0).all()  # zero past each end
    assert_close_dicts(grads_a, grads_b, atol)


def test_encoders_fused_flag_selects_the_path_with_same_results() -> None:
    torch.manual_seed(0)
    src = torch.randint(1, 30, (5, 6)) * lengths_to_mask(LENGTHS, 6)
    for encoder in (BiGRUEncoder(30, 8, 6), GRUEncoder(30, 8, 6)):
        encoder.fused = False
        plain = encoder(src, LENGTHS)
        encoder.fused = True
        fused = encoder(src, LENGTHS)
        torch.testing.assert_close(plain.annotations, fused.annotations, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(plain.summary, fused.summary, atol=1e-6, rtol=1e-5)


def test_reverse_within_lengths_is_an_involution_that_keeps_padding() -> None:
    x = torch.arange(1, 7).repeat(3, 1) * lengths_to_mask(torch.tensor([6, 3, 1]), 6)
    rev = reverse_within_lengths(x, torch.tensor([6, 3, 1]))
    assert rev.tolist() == [[6, 5, 4, 3, 2, 1], [3, 2, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
    assert torch.equal(reverse_within_lengths(rev, torch.tensor([6, 3, 1])), x)


def test_target_mask_gives_the_logits_of_the_real_positions() -> None:
    torch.manual_seed(0)
    decoder = BahdanauDecoder(20, 12, 6, embed_dim=8, hidden_dim=10).eval()
    mask = lengths_to_mask(LENGTHS, 6)
    enc = EncoderOutput(torch.randn(5, 6, 12) * mask[..., None], mask, torch.randn(5, 6))
    tokens = torch.randint(1, 20, (5, 4))
    target_mask = lengths_to_mask(torch.tensor([4, 1, 2, 4, 3]), 4)
    full = decoder(tokens, enc).logits
    selected = decoder(tokens, enc, target_mask).logits
    assert selected.shape == (int(target_mask.sum()), 20)
    torch.testing.assert_close(selected, full[target_mask])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("context_at", ["every_step", "start"])
def test_fused_context_decoder_loop_equals_plain_loop(context_at, cell) -> None:
    torch.manual_seed(0)
    decoder = ContextDecoder(
        40, 6, embed_dim=8, hidden_dim=10, maxout_dim=5, context_at=context_at, cell=cell
    ).double()
    mask = lengths_to_mask(LENGTHS, 6)
    summary = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    enc = EncoderOutput(torch.zeros(5, 6, 12, dtype=torch.float64), mask, summary)
    tokens = torch.randint(0, 40, (5, 7))
    results = []
    for fused in (False, True):
        decoder.fused = fused
        assert decoder.can_fuse("cpu") == fused
        decoder.zero_grad()
        summary.grad = None
        logits = decoder(tokens, enc).logits
        weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(1))
        (logits * weights.double()).sum().backward()
        results.append((logits.detach(), grads(decoder, summary)))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-12, rtol=1e-7)
    assert_close_dicts(results[0][1], results[1][1], 1e-12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not ContextDecoder(9, 4, cell="lstm").can_fuse("cpu")


@pytest.mark.parametrize("decoder", ["bahdanau", "cho"])
def test_every_ablation_variant_gives_the_same_loss_and_gradients(decoder) -> None:
    from seq2seq.bench.ablation import VARIANTS, variant
    from seq2seq.data.tokenizer import WordTokenizer
    from seq2seq.translation.dataset import Example, collate
    from seq2seq.translation.module import TranslationModule
    from tests.models.test_contracts import DECODERS, ENCODERS

    torch.manual_seed(0)
    tok = WordTokenizer([f"w{i}" for i in range(30)])
    encoder = "bigru" if decoder == "bahdanau" else "gru"
    cfg = {"encoder": ENCODERS[encoder], "decoder": DECODERS[decoder], "init": "pytorch"}
    module = TranslationModule(cfg, tok, tok, torch.optim.Adam).double()
    batch = collate(
        [
            Example(i, torch.randint(4, 34, (n,)), torch.randint(4, 34, (m,)))
            for i, (n, m) in enumerate([(5, 3), (2, 6), (7, 7), (1, 1)])
        ]
    )
    results = []
    for flags in VARIANTS.values():
        with variant(module, *flags):
            module.zero_grad()
            total, tokens = module.loss(batch)
            total.backward()
            results.append((total.detach(), grads(module)))
        assert module.model.encoder.fused and module.model.decoder.fused  # restored
    for total, grad in results[1:]:
        torch.testing.assert_close(total, results[0][0], atol=1e-10, rtol=1e-10)
        assert_close_dicts(grad, results[0][1], 1e-10)
