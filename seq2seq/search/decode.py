"""One entry point from a model and a batch of sources to hypotheses (greedy or beam)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.model import EncoderDecoder
from seq2seq.search.beam import beam_search
from seq2seq.search.greedy import greedy_search
from seq2seq.search.hypothesis import Hypothesis, max_lengths


@dataclass
class DecodeConfig:
    """How to decode.

    Attributes:
        beam_size: 1 for greedy search.
        nbest: hypotheses returned per sentence (at most ``beam_size``).
        length_penalty: ranking score is ``log p / length**length_penalty``.
        max_len_ratio: a hypothesis may have at most ``ratio * source length + offset``
            tokens, and never more than ``max_len_cap``.
        max_len_offset: see ``max_len_ratio``.
        max_len_cap: absolute limit on the number of generated tokens.
        return_attention: keep each hypothesis's attention rows.
    """

    beam_size: int = 5
    nbest: int = 1
    length_penalty: float = 1.0
    max_len_ratio: float = 2.0
    max_len_offset: int = 10
    max_len_cap: int = 300
    return_attention: bool = False

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if not 1 <= self.nbest <= self.beam_size:
            raise ValueError(f"nbest must be between 1 and beam_size={self.beam_size}")


@torch.no_grad()
def decode(
    model: EncoderDecoder,
    src: Tensor,
    src_lengths: Tensor,
    config: DecodeConfig,
    *,
    bos_id: int,
    eos_id: int,
) -> list[list[Hypothesis]]:
    """Decode ``src`` ``(B, N)``; returns ``config.nbest`` hypotheses per sentence, best first."""
    enc = model.encode(src, src_lengths)
    limits = max_lengths(
        src_lengths.to(src.device), config.max_len_ratio, config.max_len_offset, config.max_len_cap
    )
    if config.beam_size == 1:
        hyps = greedy_search(
            model.decoder,
            enc,
            bos_id=bos_id,
            eos_id=eos_id,
            max_len=limits,
            return_attention=config.return_attention,
        )
        return [[h] for h in hyps]
    return beam_search(
        model.decoder,
        enc,
        beam_size=config.beam_size,
        bos_id=bos_id,
        eos_id=eos_id,
        max_len=limits,
        length_penalty=config.length_penalty,
        nbest=config.nbest,
        return_attention=config.return_attention,
    )
