"""Batched beam search over sentences and beams.

Layout. The active batch holds ``A * K`` rows: the ``K`` beams of each of the ``A`` sentences
still being decoded, sentence-major (rows ``a*K .. a*K+K-1`` belong to sentence ``a``). The
encoder output and the decoder state are expanded to beams once, then every step reorders the
rows (beams follow their parents) and drops the rows of finished sentences, so the cost of a
step is proportional to the unfinished sentences. There are no backpointers: the token history
``(A*K, t)`` (and, when requested, the attention history ``(A*K, t, N)``) is reordered with the
beams.

Scores. A beam's score is the sum of ``log_softmax`` of the decoder's logits over its tokens.
Beams are pruned on this raw sum; finished hypotheses are ranked by
``score / length ** length_penalty``, where ``length`` counts the generated tokens including EOS.

Each step, for every sentence, the ``2K`` best (beam, token) extensions are taken. The EOS
extensions among the ``K`` best become finished hypotheses (as in fairseq: an EOS ranked below
``K`` other candidates would not have survived a width-``K`` beam, and accepting it would let
poor hypotheses fill the finished pool; this also makes ``beam_size = 1`` exactly greedy
search). The ``K`` best non-EOS extensions, of which there are always at least ``K`` among
``2K`` since each beam has a single EOS extension, continue.

Stopping criterion. A sentence is done, and leaves the batch, as soon as

- it has at least ``beam_size`` finished hypotheses (the live beams are discarded; like
  fairseq this does not prove that a live beam could not overtake them once length-normalised,
  but it is the usual trade-off), or
- it has generated its ``max_len`` tokens: its live beams are then finalised as unfinished
  hypotheses (no EOS, length ``max_len``) and compete with the finished ones on their
  normalised score, so every sentence returns ``nbest`` hypotheses whenever ``nbest``
  distinct ones exist.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seq2seq.core import Decoder, EncoderOutput
from seq2seq.search.hypothesis import Hypothesis, expand_max_len, normalize_score


@torch.no_grad()
def beam_search(
    decoder: Decoder,
    enc: EncoderOutput,
    *,
    beam_size: int,
    bos_id: int,
    eos_id: int,
    max_len: Tensor | int,
    length_penalty: float = 1.0,
    nbest: int = 1,
    return_attention: bool = False,
    unk_id: int | None = None,
) -> list[list[Hypothesis]]:
    """Beam search for every example of a batch (see the module docstring for the criterion).

    Args:
        decoder: the decoder; only ``init_state``, ``step`` and ``reorder_state`` are used.
        enc: encoder output for ``B`` examples.
        beam_size: number of beams ``K`` kept per sentence.
        bos_id: token fed at the first step.
        eos_id: token that ends a sentence.
        max_len: maximum number of generated tokens (EOS included), an int or a ``(B,)`` tensor.
        length_penalty: exponent of the length in the ranking score ``score / length ** lp``;
            0 ranks by the raw log-probability, 1 by its per-token average.
        nbest: number of hypotheses returned per example, ``1 <= nbest <= beam_size``.
        return_attention: keep the ``(L, N)`` attention rows of every hypothesis.
        unk_id: when given, this token (the unknown word) is never generated: its
            log-probability is set to -inf before the extensions are ranked (the other
            tokens keep the model's log-probabilities; nothing is renormalised).

    Returns:
        For each example, in input order, up to ``nbest`` hypotheses sorted by decreasing
        ``normalized_score`` (fewer only when fewer distinct hypotheses exist, e.g. with a
        tiny vocabulary or ``max_len <= 0``).

    Raises:
        ValueError: when ``beam_size < 1`` or ``nbest`` is not in ``[1, beam_size]``.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not 1 <= nbest <= beam_size:
        raise ValueError(f"nbest must be in [1, beam_size={beam_size}], got {nbest}")

    k = beam_size
    device = enc.annotations.device
    batch_size = enc.annotations.size(0)
    # Bookkeeping (which sentences are active, their limits) lives on the host: it is read by
    # Python every step and must not force a device synchronisation.
    max_lens: list[int] = expand_max_len(max_len, batch_size, torch.device("cpu")).tolist()
    finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]

    # A sentence allowed no token at all gets the empty hypothesis and never enters the loop.
    active: list[int] = []
    for s in range(batch_size):
        if max_lens[s] <= 0:
            finished[s].append(Hypothesis(tokens=[], score=0.0, normalized_score=0.0))
        else:
            active.append(s)
    if not active:
        return [hyps[:nbest] for hyps in finished]

    # Expand to beams once: rows a*K .. a*K+K-1 are copies of sentence a.
    state = decoder.init_state(enc)
    rows = torch.tensor(active, device=device).repeat_interleave(k)
    enc = enc.index_select(rows)
    state = decoder.reorder_state(state, rows)

    # Only the first beam of each sentence is live at the start; the others, at -inf, would
    # otherwise produce K copies of every first-step candidate.
    beam_scores = torch.full((len(active), k), float("-inf"), device=device)
    beam_scores[:, 0] = 0.0
    history = torch.empty(len(active) * k, 0, dtype=torch.long, device=device)
    attn_history: Tensor | None = None
    prev = torch.full((len(active) * k,), bos_id, dtype=torch.long, device=device)

    t = 0  # tokens generated so far by every live beam
    while True:
        n_active = len(active)
        out = decoder.step(prev, state, enc)
        log_probs = torch.log_softmax(out.logits.float(), dim=-1)  # (A*K, V)
        if unk_id is not None:
            log_probs[:, unk_id] = float("-inf")
        vocab = log_probs.size(-1)
        track_attention = return_attention and out.attention is not None
        if track_attention and attn_history is None:
            attn_history = out.attention.new_zeros(n_active * k, 0, out.attention.size(-1))

        # Scores of every (beam, token) extension, flattened per sentence: (A, K*V).
        candidates = (beam_scores.reshape(-1, 1) + log_probs).view(n_active, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)  # (A, 2K)
        top_beam = top_index // vocab
        top_token = top_index % vocab
        is_eos = top_token == eos_id

        # Finished hypotheses: EOS extensions among the K best, from live (finite) beams. Only
        # those few are handled in Python.
        finish = is_eos[:, :k] & (top_scores[:, :k] > float("-inf"))
        if bool(finish.any()):
            sent_idx, cand_idx = finish.nonzero(as_tuple=True)
            parent = sent_idx * k + top_beam[sent_idx, cand_idx]
            eos_attention = None
            if track_attention:
                eos_attention = torch.cat(
                    [attn_history[parent], out.attention[parent].unsqueeze(1)], dim=1
                )
            for j, (a, tokens, score) in enumerate(
                zip(
                    sent_idx.tolist(),
                    history[parent].tolist(),
                    top_scores[sent_idx, cand_idx].tolist(),
                    strict=True,
                )
            ):
                finished[active[a]].append(
                    Hypothesis(
                        tokens=tokens,
                        score=score,
                        normalized_score=normalize_score(score, t + 1, length_penalty),
                        attention=None if eos_attention is None else eos_attention[j].clone(),
                    )
                )

        # Continuing beams: the K best non-EOS extensions. A stable sort on the EOS flag moves
        # them to the front while keeping their rank order.
        _, cont = is_eos.to(torch.uint8).sort(dim=1, stable=True)
        cont = cont[:, :k]  # (A, K)
        new_scores = top_scores.gather(1, cont)
        # Only possible with a vocabulary of fewer than two tokens: never continue after EOS.
        new_scores = new_scores.masked_fill(is_eos.gather(1, cont), float("-inf"))
        new_token = top_token.gather(1, cont)
        # Row of each new beam's parent in the current batch.
        order = (
            torch.arange(n_active, device=device).unsqueeze(1) * k + top_beam.gather(1, cont)
        ).view(-1)
        t += 1
        new_history = torch.cat([history[order], new_token.view(-1, 1)], dim=1)  # (A*K, t)
        new_attn = None
        if track_attention:
            new_attn = torch.cat([attn_history[order], out.attention[order].unsqueeze(1)], dim=1)

        reached = [max_lens[s] <= t for s in active]
        if any(reached):
            # Out of length: the live beams become unfinished hypotheses (no EOS).
            idx = [a for a, r in enumerate(reached) if r]
            idx_t = torch.tensor(idx, device=device)
            live_scores = new_scores[idx_t].tolist()
            live_rows = (idx_t.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            live_tokens = new_history[live_rows].tolist()
            for i, a in enumerate(idx):
                for b in range(k):
                    score = live_scores[i][b]
                    if score == float("-inf"):
                        continue
                    finished[active[a]].append(
                        Hypothesis(
                            tokens=live_tokens[i * k + b],
                            score=score,
                            normalized_score=normalize_score(score, t, length_penalty),
                            attention=None if new_attn is None else new_attn[a * k + b].clone(),
                        )
                    )

        keep = [
            a
            for a, (s, r) in enumerate(zip(active, reached, strict=True))
            if not r and len(finished[s]) < k
        ]
        if not keep:
            break
        if len(keep) < n_active:
            # Drop finished sentences; the drop is folded into the beam reordering so the state
            # is gathered once per step.
            keep_t = torch.tensor(keep, device=device)
            rows = (keep_t.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            order = order[rows]
            new_history = new_history[rows]
            new_attn = None if new_attn is None else new_attn[rows]
            new_scores = new_scores[keep_t]
            new_token = new_token[keep_t]
            enc = enc.index_select(rows)
            active = [active[a] for a in keep]

        state = decoder.reorder_state(out.state, order)
        history = new_history
        attn_history = new_attn
        beam_scores = new_scores
        prev = new_token.view(-1)

    results = []
    for hyps in finished:
        # sorted() is stable: ties keep the order in which hypotheses finished.
        results.append(sorted(hyps, key=lambda h: h.normalized_score, reverse=True)[:nbest])
    return results
