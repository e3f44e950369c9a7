"""Greedy and beam search against a scripted decoder whose probabilities are fixed tables.

Every expected score below is written as the sum of the logs of the table's probabilities along
the path, so the tests check the search's arithmetic as well as its choices.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from seq2seq.core import Decoder, DecoderOutput, DecoderState, EncoderOutput, StepOutput
from seq2seq.search.beam import beam_search
from seq2seq.search.greedy import greedy_search
from seq2seq.search.hypothesis import Hypothesis, max_lengths, normalize_score

EOS, BOS = 0, 1
A, B, C, D = 2, 3, 4, 5
VOCAB = 8
#: Probability given to a token a table leaves out. Distinct per token so that the order of
#: the left-out tokens is deterministic (no ties in topk); EOS (id 0) gets the smallest.
FILLER = 1e-9
#: Distribution of a prefix a table does not list (a table may override it under key None).
DEFAULT = {EOS: 1.0}

Table = dict[tuple[int, ...] | None, dict[int, float]]

# T1: greedy takes A (0.6) then C (0.4) -> 0.24; the path B (0.4), C (0.9) -> 0.36 is better.
T1: Table = {
    (): {A: 0.6, B: 0.4},
    (A,): {C: 0.4, A: 0.35, EOS: 0.25},
    (B,): {C: 0.9, EOS: 0.1},
}
# T2: the short [B] (0.55 * 0.9) has the best total, the long [A, C, C] (0.45 * 0.95^3) the
# best per-token average.
T2: Table = {
    (): {B: 0.55, A: 0.45},
    (B,): {EOS: 0.9, C: 0.1},
    (B, C): {D: 1.0},
    (A,): {C: 0.95, D: 0.05},
    (A, C): {C: 0.95, D: 0.05},
    (A, C, C): {EOS: 0.95, D: 0.05},
}
# T3: a long chain, to outlive the others in a batch.
T3: Table = {
    (): {B: 0.8, EOS: 0.2},
    (B,): {C: 0.7, EOS: 0.3},
    (B, C): {D: 0.6, EOS: 0.4},
    (B, C, D): {A: 0.5, D: 0.3, EOS: 0.2},
    (B, C, D, A): {EOS: 0.9, A: 0.1},
}
# T4: never ends by itself (EOS only through the filler), so max_len decides.
T4: Table = {
    None: {D: 0.9, C: 0.1},
    (): {C: 0.5, D: 0.3, A: 0.2},
    (C,): {D: 0.6, C: 0.4},
    (D,): {D: 0.7, C: 0.3},
    (A,): {A: 1.0},
    (C, D): {D: 0.55, A: 0.45},
    (C, C): {C: 0.5, A: 0.5},
}
TABLES = [T1, T2, T3, T4]


def distribution(table: Table, prefix: tuple[int, ...]) -> dict[int, float]:
    return table.get(prefix, table.get(None, DEFAULT))


def log_prob(table: Table, tokens: list[int], eos: bool) -> float:
    """Hand-checkable total log-probability of ``tokens`` (+ EOS) under ``table``."""
    path = list(tokens) + ([EOS] if eos else [])
    return sum(
        math.log(distribution(table, tuple(path[:i])).get(tok, FILLER * (tok + 1)))
        for i, tok in enumerate(path)
    )


class ScriptedDecoder(Decoder):
    """A decoder whose next-token distribution is looked up from the generated prefix.

    The prefix lives in the state (``prefix``, ``(B, max_steps)``), so the distributions are
    right only if search reorders the state exactly as it reorders its own token history. The
    state also carries a step counter ``(B, 1)`` and the example id ``(B, 1)``, checked against
    the encoder output's rows at every step.

    Attention at a step is one-hot on source position ``prev_token % src_len``.
    """

    def __init__(self, tables: list[Table], with_attention: bool = True, max_steps: int = 32):
        super().__init__()
        self.vocab_size = VOCAB
        self.tables = tables
        self.with_attention = with_attention
        self.max_steps = max_steps
        #: Rows of every ``step`` call, to check that finished sentences leave the batch.
        self.batch_sizes: list[int] = []
        #: ``(example, prefix)`` pairs scored by ``step``.
        self.scored: set[tuple[int, tuple[int, ...]]] = set()
        self.reorder_calls = 0

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        n = enc.summary.size(0)
        return {
            "step": torch.zeros(n, 1, dtype=torch.long),
            "example": enc.summary[:, :1].long(),
            "prefix": torch.full((n, self.max_steps), -1, dtype=torch.long),
        }

    def reorder_state(self, state: DecoderState, order: Tensor) -> DecoderState:
        assert order.dtype == torch.long and order.dim() == 1
        assert int(order.min()) >= 0 and int(order.max()) < state["step"].size(0)
        self.reorder_calls += 1
        return super().reorder_state(state, order)

    def step(self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput) -> StepOutput:
        n = prev_tokens.size(0)
        self.batch_sizes.append(n)
        # State rows and encoder rows must describe the same examples.
        assert torch.equal(state["example"][:, 0], enc.summary[:, 0].long())
        assert state["step"].shape == (n, 1) and bool((state["step"] == state["step"][0]).all())
        t = int(state["step"][0])
        prefix = state["prefix"].clone()
        if t == 0:
            assert bool((prev_tokens == BOS).all())
        else:
            prefix[:, t - 1] = prev_tokens

        filler = FILLER * torch.arange(1, VOCAB + 1, dtype=torch.float64)
        logits = torch.empty(n, VOCAB)
        for row in range(n):
            example = int(state["example"][row])
            key = tuple(prefix[row, :t].tolist())
            self.scored.add((example, key))
            probs = filler.clone()
            for tok, p in distribution(self.tables[example], key).items():
                probs[tok] = p
            logits[row] = probs.log().float()

        attention = None
        if self.with_attention:
            position = prev_tokens % enc.lengths
            attention = torch.nn.functional.one_hot(position, enc.mask.size(1)).float()
        new_state = {"step": state["step"] + 1, "example": state["example"], "prefix": prefix}
        return StepOutput(logits, new_state, attention)

    def forward(
        self, prev_tokens: Tensor, enc: EncoderOutput, target_mask: Tensor | None = None
    ) -> DecoderOutput:
        raise NotImplementedError


def make_enc(examples: list[int], src_lengths: list[int] | None = None) -> EncoderOutput:
    """Fake encoder output; ``summary[:, 0]`` holds the example id (the table index)."""
    src_lengths = src_lengths or [3 + e for e in examples]
    n = max(src_lengths)
    lengths = torch.tensor(src_lengths)
    mask = torch.arange(n)[None, :] < lengths[:, None]
    generator = torch.Generator().manual_seed(0)
    annotations = torch.randn(len(examples), n, 4, generator=generator) * mask[..., None]
    summary = torch.zeros(len(examples), 2)
    summary[:, 0] = torch.tensor(examples, dtype=torch.float)
    return EncoderOutput(annotations=annotations, mask=mask, summary=summary)


def approx(x: float) -> object:
    # The filler mass (< 4e-8) shifts log-probabilities negligibly; float32 log_softmax ~1e-7.
    return pytest.approx(x, abs=1e-5)


def check_attention(hyp: Hypothesis, enc: EncoderOutput, row: int, eos: bool) -> None:
    """Attention row i was produced when consuming BOS (i = 0) or ``tokens[i-1]``."""
    assert hyp.attention is not None
    n_rows = len(hyp.tokens) + (1 if eos else 0)
    assert hyp.attention.shape == (n_rows, enc.mask.size(1))
    consumed = [BOS] + hyp.tokens
    src_len = int(enc.lengths[row])
    expected = torch.zeros(n_rows, enc.mask.size(1))
    for i in range(n_rows):
        expected[i, consumed[i] % src_len] = 1.0
    torch.testing.assert_close(hyp.attention, expected)


# --------------------------------------------------------------------------------------------
# helpers


def test_max_lengths() -> None:
    src = torch.tensor([5, 1, 30, 0])
    out = max_lengths(src, ratio=1.2, offset=2, cap=20)
    # floor(1.2*5)+2 = 8 (no float32 5.999..), floor(1.2)+2 = 3, min(20, 38), 0+2.
    assert out.tolist() == [8, 3, 20, 2]
    assert out.dtype == torch.long


def test_normalize_score() -> None:
    assert normalize_score(-6.0, 3, 0.0) == -6.0
    assert normalize_score(-6.0, 3, 1.0) == -2.0
    assert normalize_score(-6.0, 4, 0.5) == -3.0
    assert normalize_score(0.0, 0, 1.0) == 0.0


# --------------------------------------------------------------------------------------------
# greedy


def test_greedy_takes_argmax_and_stops_at_eos() -> None:
    decoder = ScriptedDecoder(TABLES)
    (hyp,) = greedy_search(decoder, make_enc([0]), bos_id=BOS, eos_id=EOS, max_len=10)
    assert hyp.tokens == [A, C]
    expected = math.log(0.6) + math.log(0.4) + math.log(1.0)
    assert hyp.score == approx(expected)
    assert hyp.normalized_score == approx(expected / 3)
    assert hyp.attention is None
    assert decoder.batch_sizes == [1, 1, 1]


def test_greedy_max_len_cuts_without_eos() -> None:
    decoder = ScriptedDecoder(TABLES)
    (hyp,) = greedy_search(decoder, make_enc([3]), bos_id=BOS, eos_id=EOS, max_len=2)
    assert hyp.tokens == [C, D]
    assert hyp.score == approx(math.log(0.5) + math.log(0.6))
    assert hyp.normalized_score == approx((math.log(0.5) + math.log(0.6)) / 2)


def test_greedy_batch_per_sentence_max_len_and_shrinking() -> None:
    decoder = ScriptedDecoder(TABLES)
    enc = make_enc([0, 2, 3])
    hyps = greedy_search(decoder, enc, bos_id=BOS, eos_id=EOS, max_len=torch.tensor([10, 10, 2]))
    # T1 ends after 3 tokens, T4 is cut at 2, T3 runs 5 tokens: [B, C, D, A] + EOS.
    assert [h.tokens for h in hyps] == [[A, C], [B, C, D, A], [C, D]]
    assert hyps[0].score == approx(math.log(0.6 * 0.4))
    assert hyps[1].score == approx(math.log(0.8 * 0.7 * 0.6 * 0.5 * 0.9))
    assert hyps[2].score == approx(math.log(0.5 * 0.6))
    # Finished sentences leave the batch.
    assert decoder.batch_sizes == [3, 3, 2, 1, 1]


def test_greedy_attention() -> None:
    decoder = ScriptedDecoder(TABLES)
    enc = make_enc([0, 3], src_lengths=[3, 5])
    hyps = greedy_search(decoder, enc, bos_id=BOS, eos_id=EOS, max_len=4, return_attention=True)
    check_attention(hyps[0], enc, 0, eos=True)
    check_attention(hyps[1], enc, 1, eos=False)
    assert hyps[1].attention.shape == (4, 5)
    without = greedy_search(
        ScriptedDecoder(TABLES, with_attention=False),
        enc,
        bos_id=BOS,
        eos_id=EOS,
        max_len=4,
        return_attention=True,
    )
    assert all(h.attention is None for h in without)


def test_greedy_zero_max_len() -> None:
    hyps = greedy_search(
        ScriptedDecoder(TABLES),
        make_enc([0, 1]),
        bos_id=BOS,
        eos_id=EOS,
        max_len=torch.tensor([0, 5]),
    )
    assert hyps[0].tokens == [] and hyps[0].score == 0.0
    assert hyps[1].tokens == [B]


# --------------------------------------------------------------------------------------------
# beam


def test_beam_finds_path_greedy_misses() -> None:
    enc = make_enc([0])
    (greedy,) = greedy_search(ScriptedDecoder(TABLES), enc, bos_id=BOS, eos_id=EOS, max_len=10)
    ((best,),) = beam_search(
        ScriptedDecoder(TABLES), enc, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=10
    )
    assert greedy.tokens == [A, C]
    assert best.tokens == [B, C]
    expected = math.log(0.4) + math.log(0.9) + math.log(1.0)
    assert best.score == approx(expected)
    assert best.normalized_score == approx(expected / 3)
    assert best.score > greedy.score


def test_length_penalty_changes_winner() -> None:
    enc = make_enc([1])
    short = math.log(0.55) + math.log(0.9)  # [B] + EOS, 2 tokens: total -0.703, mean -0.352
    long = math.log(0.45) + 3 * math.log(0.95)  # [A, C, C] + EOS, 4 tokens: -0.952, -0.238
    worst = math.log(0.55) + math.log(0.1)  # [B, C, D] + EOS, 4 tokens

    (raw,) = beam_search(
        ScriptedDecoder(TABLES), enc, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=10,
        length_penalty=0.0, nbest=2,
    )  # fmt: skip
    assert [h.tokens for h in raw] == [[B], [A, C, C]]
    assert [h.score for h in raw] == [approx(short), approx(long)]
    assert [h.normalized_score for h in raw] == [approx(short), approx(long)]

    (avg,) = beam_search(
        ScriptedDecoder(TABLES), enc, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=10,
        length_penalty=1.0, nbest=2,
    )  # fmt: skip
    assert [h.tokens for h in avg] == [[A, C, C], [B]]
    assert [h.normalized_score for h in avg] == [approx(long / 4), approx(short / 2)]
    assert worst / 4 < short / 2  # the third finished hypothesis ranks last either way


def test_nbest_sorted_distinct_with_correct_scores() -> None:
    enc = make_enc([0])
    (hyps,) = beam_search(
        ScriptedDecoder(TABLES), enc, beam_size=3, bos_id=BOS, eos_id=EOS, max_len=10, nbest=3
    )
    assert [h.tokens for h in hyps] == [[B, C], [A, C], [A, A]]
    expected = [math.log(0.4 * 0.9), math.log(0.6 * 0.4), math.log(0.6 * 0.35)]
    assert [h.score for h in hyps] == [approx(e) for e in expected]
    assert [h.normalized_score for h in hyps] == [approx(e / 3) for e in expected]
    norm = [h.normalized_score for h in hyps]
    assert norm == sorted(norm, reverse=True)
    assert len({tuple(h.tokens) for h in hyps}) == 3


def test_nbest_larger_than_beam_raises() -> None:
    with pytest.raises(ValueError):
        beam_search(
            ScriptedDecoder(TABLES), make_enc([0]), beam_size=2, bos_id=BOS, eos_id=EOS,
            max_len=5, nbest=3,
        )  # fmt: skip
    with pytest.raises(ValueError):
        beam_search(
            ScriptedDecoder(TABLES), make_enc([0]), beam_size=0, bos_id=BOS, eos_id=EOS, max_len=5
        )


def test_beam_max_len_finalises_live_beams() -> None:
    # T2 cut at 2 tokens: [B] finished with EOS; [A, C] and [B, C] are live and finalised.
    (hyps,) = beam_search(
        ScriptedDecoder(TABLES), make_enc([1]), beam_size=2, bos_id=BOS, eos_id=EOS, max_len=2,
        nbest=2,
    )  # fmt: skip
    assert [h.tokens for h in hyps] == [[B], [A, C]]
    assert hyps[0].normalized_score == approx((math.log(0.55) + math.log(0.9)) / 2)
    assert hyps[1].score == approx(math.log(0.45) + math.log(0.95))
    assert hyps[1].normalized_score == approx((math.log(0.45) + math.log(0.95)) / 2)


def test_beam_size_one_equals_greedy() -> None:
    examples = [0, 1, 2, 3]
    enc = make_enc(examples)
    max_len = torch.tensor([10, 10, 3, 4])
    greedy = greedy_search(
        ScriptedDecoder(TABLES), enc, bos_id=BOS, eos_id=EOS, max_len=max_len,
        return_attention=True,
    )  # fmt: skip
    beam = beam_search(
        ScriptedDecoder(TABLES), enc, beam_size=1, bos_id=BOS, eos_id=EOS, max_len=max_len,
        return_attention=True,
    )  # fmt: skip
    for g, (b,) in zip(greedy, beam, strict=True):
        assert b.tokens == g.tokens
        assert b.score == approx(g.score)
        assert b.normalized_score == approx(g.normalized_score)
        torch.testing.assert_close(b.attention, g.attention)


def test_sentences_independent_and_batch_shrinks() -> None:
    examples = [3, 0, 2, 1]
    max_len = [3, 10, 4, 10]
    decoder = ScriptedDecoder(TABLES)
    enc = make_enc(examples)
    batched = beam_search(
        decoder, enc, beam_size=3, bos_id=BOS, eos_id=EOS, max_len=torch.tensor(max_len),
        nbest=3, length_penalty=0.5,
    )  # fmt: skip
    for i, example in enumerate(examples):
        (alone,) = beam_search(
            ScriptedDecoder(TABLES), make_enc([example]), beam_size=3, bos_id=BOS, eos_id=EOS,
            max_len=max_len[i], nbest=3, length_penalty=0.5,
        )  # fmt: skip
        assert [h.tokens for h in batched[i]] == [h.tokens for h in alone]
        assert [h.score for h in batched[i]] == [approx(h.score) for h in alone]
        assert len(batched[i]) == 3
        for h in batched[i]:
            assert len(h.tokens) <= max_len[i]
    # Rows are sentences x beams. T3 has 3 finished hypotheses after 2 steps ([] and [B] with
    # EOS, plus a filler-token one: its first step offers only two real tokens for 3 beams);
    # T4 (cut at 3) and T1 (3 tokens with EOS) leave after 3 steps; T2 needs 4.
    assert decoder.batch_sizes == [12, 12, 9, 3]


def test_reorder_state_keeps_state_consistent_with_history() -> None:
    # Beams get permuted (in T1 the best continuation at step 2 comes from the second beam)
    # while sentences leave: the decoder's own prefix in the state decides its probabilities,
    # so every total must match the table along the returned tokens.
    examples = [0, 1, 2, 3]
    decoder = ScriptedDecoder(TABLES)
    max_len = 5
    results = beam_search(
        decoder, make_enc(examples), beam_size=3, bos_id=BOS, eos_id=EOS, max_len=max_len,
        nbest=3,
    )  # fmt: skip
    assert decoder.reorder_calls == len(decoder.batch_sizes)  # expansion + one per later step
    for example, hyps in zip(examples, results, strict=True):
        for h in hyps:
            # Only a hypothesis cut at max_len lacks EOS (with EOS it has < max_len tokens).
            eos = len(h.tokens) < max_len
            assert h.score == approx(log_prob(TABLES[example], h.tokens, eos=eos))
            for i in range(len(h.tokens)):
                assert (example, tuple(h.tokens[:i])) in decoder.scored


def test_beam_attention_shapes_and_rows() -> None:
    examples = [0, 3]
    enc = make_enc(examples, src_lengths=[3, 6])
    max_len = 3
    results = beam_search(
        ScriptedDecoder(TABLES), enc, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=max_len,
        nbest=2, return_attention=True,
    )  # fmt: skip
    for row, hyps in enumerate(results):
        for h in hyps:
            check_attention(h, enc, row, eos=len(h.tokens) < max_len)
    # T4 never emits EOS: both hypotheses are cut at 3 tokens, 3 attention rows each.
    assert [h.attention.shape for h in results[1]] == [(3, 6), (3, 6)]
    plain = beam_search(
        ScriptedDecoder(TABLES), enc, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=max_len
    )
    assert all(h.attention is None for hyps in plain for h in hyps)


def test_beam_zero_max_len() -> None:
    results = beam_search(
        ScriptedDecoder(TABLES), make_enc([0, 1]), beam_size=2, bos_id=BOS, eos_id=EOS,
        max_len=torch.tensor([0, 10]),
    )  # fmt: skip
    assert results[0][0].tokens == [] and results[0][0].score == 0.0
    assert results[1][0].tokens == [A, C, C]
