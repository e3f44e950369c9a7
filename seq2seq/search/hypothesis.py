"""The result type shared by greedy and beam search, and helpers for target lengths and scores."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Hypothesis:
    """One decoded target sentence.

    Attributes:
        tokens: generated ids, without BOS and without the final EOS.
        score: total log-probability: the sum over the generated tokens, EOS included when it
            was generated (a hypothesis cut at its maximum length has no EOS).
        normalized_score: the score used for ranking, after length normalisation
            (see :func:`normalize_score`).
        attention: ``(L, N)`` attention row of every generated token, where ``L`` is
            ``len(tokens) + 1`` when EOS was generated and ``len(tokens)`` otherwise, and ``N``
            the (padded) source length of the batch; None when not requested or when the
            decoder gives no attention.
    """

    tokens: list[int]
    score: float
    normalized_score: float
    attention: Tensor | None = None


def normalize_score(score: float, length: int, length_penalty: float) -> float:
    """Length-normalised score ``score / length ** length_penalty``.

    ``length_penalty = 0`` ranks by the raw sum of log-probabilities (which favours short
    outputs, every token costing a negative log-probability), ``1`` by the per-token average.

    Args:
        score: total log-probability of the hypothesis.
        length: number of generated tokens, EOS included when generated. An empty hypothesis
            (length 0) is treated as length 1 so the score stays finite.
        length_penalty: exponent of the length.

    Returns:
        The normalised score.
    """
    return score / math.pow(max(length, 1), length_penalty)


def max_lengths(src_lengths: Tensor, ratio: float, offset: int, cap: int) -> Tensor:
    """Per-sentence maximum target length ``min(cap, floor(ratio * src_len) + offset)``.

    Args:
        src_lengths: ``(B,)`` number of real source positions of each example.
        ratio: target/source length ratio allowed.
        offset: tokens allowed on top of the ratio (lets very short sources still produce
            a few tokens).
        cap: absolute maximum.

    Returns:
        ``(B,)`` int64 maximum target lengths (EOS counts as a token), on the device of
        ``src_lengths``.
    """
    # float64 so that e.g. 1.2 * 5 floors to 6 and not to 5 through a float32 rounding error.
    scaled = torch.floor(src_lengths.to(torch.float64) * ratio).to(torch.long)
    return torch.clamp(scaled + offset, max=cap)


def expand_max_len(max_len: Tensor | int, batch_size: int, device: torch.device) -> Tensor:
    """Broadcast a scalar or per-sentence maximum length to a ``(B,)`` int64 tensor.

    Args:
        max_len: an int, a 0-d tensor or a ``(B,)`` tensor.
        batch_size: B.
        device: where the result lives.

    Returns:
        ``(B,)`` int64 tensor on ``device``.

    Raises:
        ValueError: when a tensor ``max_len`` does not hold one value per example.
    """
    if isinstance(max_len, Tensor):
        lengths = max_len.to(device=device, dtype=torch.long).reshape(-1)
        if lengths.numel() == 1:
            return lengths.expand(batch_size).clone()
        if lengths.numel() != batch_size:
            raise ValueError(f"max_len has {lengths.numel()} values for a batch of {batch_size}")
        return lengths
    return torch.full((batch_size,), int(max_len), dtype=torch.long, device=device)
