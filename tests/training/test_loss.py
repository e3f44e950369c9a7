"""The training loss adds the decoder's auxiliary loss (the doubly stochastic regulariser)."""

from __future__ import annotations

import pytest
import torch

from seq2seq.core import lengths_to_mask
from seq2seq.data.tokenizer import WordTokenizer
from seq2seq.translation.dataset import Example, collate
from seq2seq.translation.module import TranslationModule
from tests.models.test_contracts import DECODERS, ENCODERS


def test_loss_includes_doubly_stochastic_term() -> None:
    tok = WordTokenizer.build(["a b c d e f"])
    cfg = {"encoder": ENCODERS["bigru"], "decoder": DECODERS["sat"], "init": "pytorch"}
    torch.manual_seed(0)
    module = TranslationModule(cfg, tok, tok, torch.optim.Adam).eval()
    batch = collate(
        [
            Example(0, torch.tensor([4, 5, 6]), torch.tensor([7, 8])),
            Example(1, torch.tensor([4]), torch.tensor([5, 6, 7, 8])),
        ]
    )
    with torch.no_grad():
        total, tokens = module.loss(batch)
        out = module.model(batch.src, batch.src_lengths, batch.tgt_in)
        nll = torch.nn.functional.cross_entropy(
            out.logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=0, reduction="sum"
        )
        source_mask = lengths_to_mask(batch.src_lengths, batch.src.size(1))
        coverage = (out.attention * (batch.tgt_out != 0).unsqueeze(-1)).sum(1)
        penalty = ((1 - coverage) ** 2 * source_mask).sum()
    assert tokens.item() == 2 + 1 + 4 + 1
    assert total.item() == pytest.approx((nll + 1.0 * penalty).item(), rel=1e-5)
