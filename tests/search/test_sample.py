"""Multinomial sampling against a scripted decoder whose next-token distribution is a fixed
table of the previous token, so that every drawn path's log-probability is known."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from seq2seq.core import Decoder, DecoderOutput, DecoderState, EncoderOutput, StepOutput
from seq2seq.search.sample import sample

PAD, UNK, BOS, EOS = 0, 1, 2, 3
A, B = 4, 5
VOCAB = 6
#: P(next | previous): BOS -> A or B (or UNK), A -> B or EOS, B -> A or EOS.
TABLE = {
    BOS: {A: 0.5, B: 0.3, UNK: 0.2},
    A: {B: 0.6, EOS: 0.4},
    B: {A: 0.7, EOS: 0.3},
    UNK: {EOS: 1.0},
}


def probabilities(prev: int) -> Tensor:
    row = torch.full((VOCAB,), 1e-12)
    for token, p in TABLE.get(prev, {EOS: 1.0}).items():
        row[token] = p
    return row / row.sum()


class TableDecoder(Decoder):
    """Logits are the log of :data:`TABLE`'s row for the previous token; the state carries a
    per-example marker, to check that it follows the right example through the shrinks."""

    vocab_size = VOCAB

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        return {"marker": enc.summary.clone()}

    def step(self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput) -> StepOutput:
        assert torch.equal(state["marker"], enc.summary), "state and encoder rows disagree"
        logits = torch.stack([probabilities(int(t)).log() for t in prev_tokens])
        return StepOutput(logits, state, None)

    def forward(
        self, prev_tokens: Tensor, enc: EncoderOutput, target_mask: Tensor | None = None
    ) -> DecoderOutput:
        raise NotImplementedError


def encoder_output(batch: int) -> EncoderOutput:
    summary = torch.arange(batch, dtype=torch.float32)[:, None]  # a marker per example
    return EncoderOutput(torch.zeros(batch, 1, 1), torch.ones(batch, 1, dtype=torch.bool), summary)


def path_log_prob(tokens: list[int]) -> float:
    prev, total = BOS, 0.0
    for token in tokens:
        total += math.log(probabilities(prev)[token].item())
        prev = token
    return total


def draw(seed: int, batch: int = 3, samples: int = 4, **options):  # type: ignore[no-untyped-def]
    generator = torch.Generator().manual_seed(seed)
    options = {"max_len": 6, **options}
    return sample(
        TableDecoder(), encoder_output(batch), bos_id=BOS, eos_id=EOS, samples=samples,
        generator=generator, pad_id=PAD, **options,
    )  # fmt: skip


def test_reproducible_under_a_seed() -> None:
    first, again = draw(7), draw(7)
    assert torch.equal(first.tokens, again.tokens)
    assert torch.equal(first.log_probs, again.log_probs)
    assert not torch.equal(draw(7, samples=32).tokens, draw(8, samples=32).tokens)


def test_rows_lengths_eos_and_log_probs() -> None:
    drawn = draw(3, batch=3, samples=5, max_len=50)
    assert drawn.rows.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    for row, length, ended, score, output in zip(
        drawn.tokens.tolist(), drawn.lengths.tolist(), drawn.ended.tolist(),
        drawn.log_probs.tolist(), drawn.outputs(), strict=True,
    ):  # fmt: skip
        assert ended  # 50 tokens of a chain that ends with p >= 0.3 per step
        assert row[length - 1] == EOS and EOS not in row[: length - 1]
        assert all(t == PAD for t in row[length:])  # nothing after EOS
        assert output == row[: length - 1]
        assert score == pytest.approx(path_log_prob(row[:length]), abs=1e-5)
    assert drawn.mask.sum(1).tolist() == drawn.lengths.tolist()


def test_max_len_cuts_samples_and_may_differ_per_input() -> None:
    drawn = draw(5, batch=2, samples=50, max_len=torch.tensor([1, 3]))
    lengths = drawn.lengths.view(2, 50)
    assert lengths[0].max() == 1 and lengths[1].max() == 3
    cut = ~drawn.ended & (drawn.lengths == drawn.lengths.new_tensor([1] * 50 + [3] * 50))
    assert cut.any() and (drawn.ended | cut).all()  # every sample ended or was cut
    for output, ended, length in zip(drawn.outputs(), drawn.ended, drawn.lengths, strict=True):
        assert len(output) == int(length) - int(ended)


def test_first_token_follows_the_distribution() -> None:
    drawn = draw(11, batch=1, samples=4000, max_len=1)
    counts = torch.bincount(drawn.tokens[:, 0], minlength=VOCAB).float() / 4000
    for token, p in TABLE[BOS].items():
        assert counts[token].item() == pytest.approx(p, abs=0.03)


def test_suppressed_unknown_is_never_drawn_and_renormalised() -> None:
    drawn = draw(2, batch=1, samples=500, max_len=1, unk_id=UNK)
    assert UNK not in drawn.tokens.tolist()[0] and (drawn.tokens != UNK).all()
    # P(A) becomes 0.5 / 0.8 once UNK's 0.2 is taken out.
    first_a = drawn.log_probs[drawn.tokens[:, 0] == A]
    assert torch.allclose(first_a, torch.full_like(first_a, math.log(0.5 / 0.8)), atol=1e-5)


def test_rejects_no_samples() -> None:
    with pytest.raises(ValueError, match="samples must be >= 1"):
        draw(0, samples=0)
