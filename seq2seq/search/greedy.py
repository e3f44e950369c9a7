"""Batched greedy decoding: take the most probable token at every step."""

from __future__ import annotations

import torch
from torch import Tensor

from seq2seq.core import Decoder, EncoderOutput
from seq2seq.search.hypothesis import Hypothesis, expand_max_len, normalize_score


@torch.no_grad()
def greedy_search(
    decoder: Decoder,
    enc: EncoderOutput,
    *,
    bos_id: int,
    eos_id: int,
    max_len: Tensor | int,
    return_attention: bool = False,
    unk_id: int | None = None,
) -> list[Hypothesis]:
    """Decode every example of a batch greedily.

    A sentence stops when it generates EOS or when it reaches its ``max_len`` generated tokens
    (EOS included); a sentence cut at ``max_len`` has no EOS. Finished sentences leave the
    active batch (the encoder output and the decoder state are shrunk with
    ``enc.index_select`` / ``decoder.reorder_state``), so every step costs in proportion to the
    sentences still running.

    Args:
        decoder: the decoder; only ``init_state``, ``step`` and ``reorder_state`` are used.
        enc: encoder output for ``B`` examples.
        bos_id: token fed at the first step.
        eos_id: token that ends a sentence.
        max_len: maximum number of generated tokens, an int or a ``(B,)`` tensor.
        return_attention: keep the attention rows of every generated token.
        unk_id: when given, this token (the unknown word) is never generated: its
            log-probability is set to -inf before the best token is taken, so the next best
            is taken instead (scores stay the model's log-probabilities of what was chosen).

    Returns:
        One :class:`Hypothesis` per example, in input order. Its ``normalized_score`` is the
        per-token average log-probability (beam search's default ``length_penalty = 1``).
    """
    device = enc.annotations.device
    batch_size = enc.annotations.size(0)
    max_lens = expand_max_len(max_len, batch_size, device)
    steps_cap = max(int(max_lens.max()), 0) if batch_size else 0

    # Results are written into full-batch buffers indexed by the original example id, so the
    # loop never has to map active rows back through a chain of shrinks.
    tokens = torch.zeros(batch_size, steps_cap, dtype=torch.long, device=device)
    scores = torch.zeros(batch_size, dtype=torch.float32, device=device)
    lengths = torch.zeros(batch_size, dtype=torch.long, device=device)
    ended_with_eos = torch.zeros(batch_size, dtype=torch.bool, device=device)
    attention: Tensor | None = None

    state = decoder.init_state(enc)
    active = torch.arange(batch_size, device=device)
    # Sentences allowed no token at all never enter the loop.
    if steps_cap > 0 and bool((max_lens <= 0).any()):
        keep = (max_lens > 0).nonzero().squeeze(1)
        active, enc, state = (
            active[keep],
            enc.index_select(keep),
            decoder.reorder_state(state, keep),
        )
    prev = torch.full((active.numel(),), bos_id, dtype=torch.long, device=device)

    for t in range(steps_cap):
        out = decoder.step(prev, state, enc)
        log_probs = torch.log_softmax(out.logits.float(), dim=-1)
        if unk_id is not None:
            log_probs[:, unk_id] = float("-inf")
        best_log_prob, best_token = log_probs.max(dim=-1)  # (A,), (A,)

        tokens[active, t] = best_token
        scores[active] += best_log_prob
        if return_attention and out.attention is not None:
            if attention is None:
                attention = out.attention.new_zeros(batch_size, steps_cap, out.attention.size(-1))
            attention[active, t] = out.attention

        is_eos = best_token == eos_id
        done = is_eos | (max_lens[active] <= t + 1)
        lengths[active] = t + 1
        ended_with_eos[active] = is_eos

        # One host synchronisation per step: which rows carry on.
        keep = (~done).nonzero().squeeze(1)
        if keep.numel() == 0:
            break
        state = out.state
        prev = best_token
        if keep.numel() < active.numel():
            active = active[keep]
            enc = enc.index_select(keep)
            state = decoder.reorder_state(state, keep)
            prev = prev[keep]

    hypotheses = []
    tokens_cpu = tokens.cpu()
    for i, (length, eos, score) in enumerate(
        zip(lengths.tolist(), ended_with_eos.tolist(), scores.tolist(), strict=True)
    ):
        n_tokens = length - 1 if eos else length
        hypotheses.append(
            Hypothesis(
                tokens=tokens_cpu[i, :n_tokens].tolist(),
                score=score,
                normalized_score=normalize_score(score, length, 1.0),
                attention=None
                if attention is None or length == 0
                else attention[i, :length].clone(),
            )
        )
    return hypotheses
