"""Decoding that forbids the unknown token (``DecodeConfig.suppress_unk``), checked against the
scripted decoder of :mod:`tests.search.test_search` with a table whose best token is UNK."""

from __future__ import annotations

import inspect
import math

import pytest

from seq2seq.data.tokenizer import UNK as TOKENIZER_UNK
from seq2seq.search.beam import beam_search
from seq2seq.search.decode import DecodeConfig, decode_encoded
from seq2seq.search.greedy import greedy_search
from tests.search.test_search import BOS, EOS, A, B, C, ScriptedDecoder, Table, approx, make_enc

#: The scripted vocabulary's unknown token (search only knows it as the id it is given).
UNK = 6

# UNK is the most probable token at every step where it is offered: greedy and beam both
# answer [UNK] unless it is forbidden; without it, greedy takes A then B, and beam finds
# [C, B] (0.25 * 0.95), which beats greedy's [A, B] (0.3 * 0.4 ... then EOS).
T_UNK: Table = {
    (): {UNK: 0.45, A: 0.3, C: 0.25},
    (UNK,): {EOS: 0.9, UNK: 0.1},
    (A,): {UNK: 0.5, B: 0.4, EOS: 0.1},
    (A, B): {EOS: 1.0},
    (C,): {B: 0.95, UNK: 0.05},
    (C, B): {EOS: 1.0},
}


def _tokens(hyps) -> list[list[int]]:
    return [h.tokens for h in hyps]


def test_greedy_emits_unk_unless_suppressed() -> None:
    (plain,) = greedy_search(ScriptedDecoder([T_UNK]), make_enc([0]), bos_id=BOS, eos_id=EOS,
                             max_len=10)  # fmt: skip
    assert plain.tokens == [UNK]
    (hyp,) = greedy_search(ScriptedDecoder([T_UNK]), make_enc([0]), bos_id=BOS, eos_id=EOS,
                           max_len=10, unk_id=UNK)  # fmt: skip
    assert hyp.tokens == [A, B]
    # The score stays the model's log-probability of what was generated (no renormalising).
    assert hyp.score == approx(math.log(0.3) + math.log(0.4) + math.log(1.0))


@pytest.mark.parametrize("beam_size", [2, 3])
def test_beam_emits_unk_unless_suppressed(beam_size: int) -> None:
    (plain,) = beam_search(ScriptedDecoder([T_UNK]), make_enc([0]), beam_size=beam_size,
                           bos_id=BOS, eos_id=EOS, max_len=10, nbest=2)  # fmt: skip
    assert plain[0].tokens == [UNK]
    (hyps,) = beam_search(ScriptedDecoder([T_UNK]), make_enc([0]), beam_size=beam_size,
                          bos_id=BOS, eos_id=EOS, max_len=10, nbest=2, unk_id=UNK)  # fmt: skip
    assert _tokens(hyps) == [[C, B], [A, B]]
    assert hyps[0].score == approx(math.log(0.25) + math.log(0.95))
    assert all(UNK not in h.tokens for h in hyps)


def test_suppressed_unk_never_appears_even_when_cut_at_max_len() -> None:
    # A table that offers UNK as the best token after every prefix and never ends by itself.
    always_unk: Table = {None: {UNK: 0.6, C: 0.3, A: 0.1}}
    for search in (
        lambda **kw: [[h] for h in greedy_search(**kw)],
        lambda **kw: beam_search(beam_size=3, nbest=3, **kw),
    ):
        (hyps,) = search(decoder=ScriptedDecoder([always_unk]), enc=make_enc([0]), bos_id=BOS,
                         eos_id=EOS, max_len=4, unk_id=UNK)  # fmt: skip
        assert hyps and all(len(h.tokens) == 4 and UNK not in h.tokens for h in hyps)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_decode_config_switches_suppression(beam_size: int) -> None:
    def run(suppress: bool) -> list[int]:
        config = DecodeConfig(beam_size=beam_size, suppress_unk=suppress)
        ((best, *_),) = decode_encoded(ScriptedDecoder([T_UNK]), make_enc([0]), 10, config,
                                       bos_id=BOS, eos_id=EOS, unk_id=UNK)  # fmt: skip
        return best.tokens

    assert run(suppress=False) == [UNK]
    assert UNK not in run(suppress=True)
    # Off unless asked for (translation's default); the tokenizers' UNK id by default.
    assert DecodeConfig().suppress_unk is False
    assert inspect.signature(decode_encoded).parameters["unk_id"].default == TOKENIZER_UNK
