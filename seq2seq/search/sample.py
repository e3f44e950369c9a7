"""Batched multinomial sampling: ``K`` outputs per input drawn from the model's distribution.

Sequence-level training (self-critical training, minimum risk training) scores several
outputs of each input against its references; this draws them. Like greedy search it uses
only ``Decoder.init_state``, ``step`` and ``reorder_state`` and ``EncoderOutput.index_select``,
so it serves every decoder, and finished samples leave the active batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.core import Decoder, EncoderOutput
from seq2seq.search.hypothesis import expand_max_len


@dataclass
class Samples:
    """``N = B * K`` sampled outputs, the ``K`` of input ``b`` in rows ``b*K .. b*K+K-1``.

    Attributes:
        tokens: ``(N, L)`` int64 generated ids, the EOS included where one was drawn, then
            ``pad_id``; ``L`` is the longest sample.
        lengths: ``(N,)`` int64 generated tokens of each sample, its EOS included.
        ended: ``(N,)`` bool, whether the sample ended with EOS (else it was cut at its
            maximum length).
        log_probs: ``(N,)`` float32 log-probability of each sample under the distribution it
            was drawn from, without gradient.
        rows: ``(N,)`` int64 the input each sample belongs to (``b`` repeated ``K`` times).
    """

    tokens: Tensor
    lengths: Tensor
    ended: Tensor
    log_probs: Tensor
    rows: Tensor

    def outputs(self) -> list[list[int]]:
        """Each sample's ids without the final EOS, as the searches' hypotheses hold them."""
        kept = (self.lengths - self.ended.long()).tolist()
        return [row[:n] for row, n in zip(self.tokens.tolist(), kept, strict=True)]

    @property
    def mask(self) -> Tensor:
        """``(N, L)`` bool, True at the generated tokens (EOS included)."""
        steps = torch.arange(self.tokens.size(1), device=self.tokens.device)
        return steps[None, :] < self.lengths[:, None]


@torch.no_grad()
def sample(
    decoder: Decoder,
    enc: EncoderOutput,
    *,
    bos_id: int,
    eos_id: int,
    max_len: Tensor | int,
    samples: int = 1,
    generator: torch.Generator | None = None,
    unk_id: int | None = None,
    pad_id: int = 0,
) -> Samples:
    """Draw ``samples`` outputs for every input of a batch, token by token.

    A sample stops when it draws EOS or when it reaches its ``max_len`` generated tokens (EOS
    included); one cut at ``max_len`` has no EOS.

    Args:
        decoder: the decoder; only ``init_state``, ``step`` and ``reorder_state`` are used.
        enc: encoder output for ``B`` inputs.
        bos_id: token fed at the first step.
        eos_id: token that ends a sample.
        max_len: most generated tokens, an int or a ``(B,)`` tensor (per input).
        samples: ``K``, outputs drawn per input.
        generator: the random generator of the draws (on ``enc``'s device); the same
            generator state gives the same samples.
        unk_id: when given, this token is never drawn: the distribution is renormalised
            without it (as greedy and beam search suppress it).
        pad_id: what fills ``tokens`` after each sample's end.

    Returns:
        The :class:`Samples`, ``N = B * K`` of them.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    device = enc.annotations.device
    batch_size = enc.annotations.size(0)
    rows = torch.arange(batch_size, device=device).repeat_interleave(samples)
    n = rows.numel()
    max_lens = expand_max_len(max_len, batch_size, device)[rows]  # (N,)
    steps_cap = max(int(max_lens.max()), 0) if n else 0

    # Full-size buffers indexed by sample id, as in greedy search: no mapping back needed.
    tokens = torch.full((n, steps_cap), pad_id, dtype=torch.long, device=device)
    log_probs = torch.zeros(n, dtype=torch.float32, device=device)
    lengths = torch.zeros(n, dtype=torch.long, device=device)
    ended = torch.zeros(n, dtype=torch.bool, device=device)

    active = torch.arange(n, device=device)
    enc = enc.index_select(rows)
    state = decoder.init_state(enc)
    if steps_cap > 0 and bool((max_lens <= 0).any()):
        keep = (max_lens > 0).nonzero().squeeze(1)
        active, enc = active[keep], enc.index_select(keep)
        state = decoder.reorder_state(state, keep)
    prev = torch.full((active.numel(),), bos_id, dtype=torch.long, device=device)

    for t in range(steps_cap):
        out = decoder.step(prev, state, enc)
        step_log_probs = torch.log_softmax(out.logits.float(), dim=-1)  # (A, V)
        if unk_id is not None:
            step_log_probs[:, unk_id] = float("-inf")
            step_log_probs = torch.log_softmax(step_log_probs, dim=-1)
        drawn = torch.multinomial(step_log_probs.exp(), 1, generator=generator).squeeze(1)

        tokens[active, t] = drawn
        log_probs[active] += step_log_probs.gather(1, drawn[:, None]).squeeze(1)
        is_eos = drawn == eos_id
        done = is_eos | (max_lens[active] <= t + 1)
        lengths[active] = t + 1
        ended[active] = is_eos

        keep = (~done).nonzero().squeeze(1)
        if keep.numel() == 0:
            break
        state, prev = out.state, drawn
        if keep.numel() < active.numel():
            active = active[keep]
            enc = enc.index_select(keep)
            state = decoder.reorder_state(state, keep)
            prev = prev[keep]

    width = int(lengths.max()) if n else 0
    return Samples(tokens[:, :width], lengths, ended, log_probs, rows)
