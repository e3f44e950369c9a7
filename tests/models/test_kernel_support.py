"""Kernels declare what they support, and every combination of decoder options trains alike.

Each combination of the options a decoder has runs through the plain loop and through
whatever its kernel statement picks; the loss (token loss plus the attention regulariser)
and every gradient must agree. A kernel that ignored an option it claims to support would
fail here; an option a kernel does not name takes the plain path.
"""

from __future__ import annotations

import copy
import itertools
import logging

import pytest
import torch
import torch.nn.functional as F

from seq2seq.core import EncoderOutput, lengths_to_mask
from seq2seq.models.decoders.bahdanau import BahdanauDecoder
from seq2seq.models.decoders.context import ContextDecoder
from seq2seq.models.kernels.attention_gru import SUPPORT as ATTENTION_GRU
from seq2seq.models.kernels.attention_lstm import SUPPORT as ATTENTION_LSTM
from seq2seq.models.kernels.gru import CONTEXT_GRU_SUPPORT
from seq2seq.models.kernels.lstm import SUPPORT as CONTEXT_LSTM
from seq2seq.models.kernels.support import ANY, KernelChoice, KernelSupport, values
from tests.models.test_fast_paths import assert_close_dicts, grads

LENGTHS = torch.tensor([5, 2, 4])

BAHDANAU_OPTIONS = {
    "cell": ["gru", "lstm"],
    "gate": [False, True],
    "output_from": ["previous", "current"],
    "maxout_pool": [1, 2],
    "doubly_stochastic": [0.0, 0.5],
    "init_from_summary": [True, False],
}
CONTEXT_OPTIONS = {
    "cell": ["gru", "lstm"],
    "context_at": ["every_step", "start"],
    "maxout_pool": [1, 2],
    "forget_bias": [0.0, 1.0],
}


def combinations(grid: dict[str, list]) -> list[dict]:
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


def loss_and_grads(decoder, enc: EncoderOutput, tokens: torch.Tensor, fused: bool):
    decoder.fused = fused
    decoder.zero_grad()
    enc.annotations.grad = enc.summary.grad = None
    target_mask = torch.ones_like(tokens, dtype=torch.bool)
    out = decoder(tokens, enc, target_mask)
    loss = F.cross_entropy(out.logits, tokens.roll(-1, 1)[target_mask], reduction="sum")
    aux = decoder.auxiliary_loss(out.attention, target_mask, enc.mask)
    if aux is not None:
        loss = loss + aux
    loss.backward()
    for tensor in (enc.annotations, enc.summary):  # unread without init_from_summary
        if tensor.grad is None:
            tensor.grad = torch.zeros_like(tensor)
    return loss.detach(), grads(decoder, enc.annotations, enc.summary)


def encoder_output(dim: int) -> EncoderOutput:
    mask = lengths_to_mask(LENGTHS, 5)
    annotations = (torch.randn(3, 5, dim, dtype=torch.float64) * mask[..., None]).requires_grad_()
    summary = torch.randn(3, dim, dtype=torch.float64, requires_grad=True)
    return EncoderOutput(annotations, mask, summary)


def check_both_paths(decoder, enc: EncoderOutput) -> None:
    tokens = torch.randint(0, decoder.vocab_size, (3, 6))
    plain_loss, plain_grads = loss_and_grads(decoder, enc, tokens, fused=False)
    fast_loss, fast_grads = loss_and_grads(decoder, enc, tokens, fused=True)
    torch.testing.assert_close(plain_loss, fast_loss, atol=1e-10, rtol=1e-10)
    assert_close_dicts(plain_grads, fast_grads, atol=1e-10)


@pytest.mark.parametrize("options", combinations(BAHDANAU_OPTIONS), ids=str)
def test_every_attention_decoder_option_trains_alike_on_both_paths(options) -> None:
    torch.manual_seed(0)
    decoder = BahdanauDecoder(
        17, 6, 6, embed_dim=5, hidden_dim=4, attention_dim=3, maxout_dim=4, **options
    ).double()
    expected = ATTENTION_LSTM if options["cell"] == "lstm" else None
    if options["cell"] == "gru" and not options["gate"]:
        expected = ATTENTION_GRU
    assert decoder.kernels.kernel is expected  # the statements pick as documented
    check_both_paths(decoder, encoder_output(6))


@pytest.mark.parametrize("options", combinations(CONTEXT_OPTIONS), ids=str)
def test_every_context_decoder_option_trains_alike_on_both_paths(options) -> None:
    torch.manual_seed(0)
    decoder = ContextDecoder(17, 6, embed_dim=5, hidden_dim=4, maxout_dim=4, **options).double()
    expected = CONTEXT_LSTM if options["cell"] == "lstm" else CONTEXT_GRU_SUPPORT
    assert decoder.kernels.kernel is expected
    check_both_paths(decoder, encoder_output(6))


def test_an_option_a_kernel_does_not_name_takes_the_plain_path() -> None:
    kernel = KernelSupport("toy", {"cell": values("gru"), "dropout": ANY})
    assert kernel.refusal({"cell": "gru", "dropout": 0.3}) is None
    assert "'gate'" in kernel.refusal({"cell": "gru", "dropout": 0.0, "gate": True})
    assert "not 'lstm'" in kernel.refusal({"cell": "lstm", "dropout": 0.0})
    choice = KernelChoice("ToyDecoder", [kernel], {"cell": "gru", "new_option": 1})
    assert choice.kernel is None and "new_option" in choice.why_plain


def test_the_path_is_logged_once(caplog) -> None:
    decoder = BahdanauDecoder(9, 4, 4, gate=True)
    with caplog.at_level(logging.INFO, logger="seq2seq.models.kernels.support"):
        for _ in range(3):
            decoder.can_fuse("cpu")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "BahdanauDecoder trains with the plain loop (attention-GRU: it supports gate=['False'], "
        "not True; attention-LSTM: it supports cell=[\"'lstm'\"], not 'gru')"
    ]


def test_a_copied_decoder_still_finds_its_kernel() -> None:
    decoder = copy.deepcopy(BahdanauDecoder(9, 4, 4, cell="lstm", gate=True))
    assert decoder.kernels.kernel is ATTENTION_LSTM
    enc = encoder_output(4)
    check_both_paths(decoder.double(), enc)


def test_autocast_and_fused_false_take_the_plain_loop() -> None:
    decoder = BahdanauDecoder(9, 4, 4)
    assert decoder.can_fuse("cpu")
    decoder.fused = False
    assert not decoder.can_fuse("cpu")
    decoder.fused = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not decoder.can_fuse("cpu")
