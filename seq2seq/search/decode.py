"""One entry point from a model and a batch of sources to hypotheses (greedy or beam)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.core import Decoder, EncoderOutput
from seq2seq.data.tokenizer import UNK
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
        suppress_unk: never generate the unknown token (``suppress_UNK`` of ruotianluo's
            self-critical.pytorch): a caption or translation then never shows ``<unk>``,
            at the price of the next best word where the model would have put it.
    """

    beam_size: int = 5
    nbest: int = 1
    length_penalty: float = 1.0
    max_len_ratio: float = 2.0
    max_len_offset: int = 10
    max_len_cap: int = 300
    return_attention: bool = False
    suppress_unk: bool = False

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
    unk_id: int = UNK,
) -> list[list[Hypothesis]]:
    """Decode ``src`` ``(B, N)``; returns ``config.nbest`` hypotheses per sentence, best first
    (``unk_id``: see :func:`decode_encoded`)."""
    enc = model.encode(src, src_lengths)
    limits = max_lengths(
        src_lengths.to(src.device), config.max_len_ratio, config.max_len_offset, config.max_len_cap
    )
    return decode_encoded(
        model.decoder, enc, limits, config, bos_id=bos_id, eos_id=eos_id, unk_id=unk_id
    )


@torch.no_grad()
def decode_encoded(
    decoder: Decoder,
    enc: EncoderOutput,
    max_len: Tensor | int,
    config: DecodeConfig,
    *,
    bos_id: int,
    eos_id: int,
    unk_id: int = UNK,
) -> list[list[Hypothesis]]:
    """Decode from an encoder output (images have no source length to scale ``max_len`` by).

    Args:
        decoder: any decoder.
        enc: the encoder output of ``B`` inputs.
        max_len: ``(B,)`` or one limit on the generated tokens.
        config: search settings (``max_len_*`` are not used here).
        bos_id: token fed at the first step.
        eos_id: token that ends an output.
        unk_id: the token ``config.suppress_unk`` forbids; the id every tokenizer reserves
            for unknown words by default.

    Returns:
        ``config.nbest`` hypotheses per input, best first.
    """
    forbidden = unk_id if config.suppress_unk else None
    if config.beam_size == 1:
        hyps = greedy_search(
            decoder,
            enc,
            bos_id=bos_id,
            eos_id=eos_id,
            max_len=max_len,
            return_attention=config.return_attention,
            unk_id=forbidden,
        )
        return [[h] for h in hyps]
    return beam_search(
        decoder,
        enc,
        beam_size=config.beam_size,
        bos_id=bos_id,
        eos_id=eos_id,
        max_len=max_len,
        length_penalty=config.length_penalty,
        nbest=config.nbest,
        return_attention=config.return_attention,
        unk_id=forbidden,
    )
