"""One step of additive attention, forward and backward, for the fused decoder loops.

Shared by :mod:`seq2seq.models.kernels.attention_gru` and
:mod:`seq2seq.models.kernels.attention_lstm`. The paper's energies
``e_j = v_a^T tanh(p_j)``, ``p_j = W_a s + U_a h_j`` (:mod:`seq2seq.models.modules.attention`)
are computed through ``tanh(p) = 2σ(2p) - 1``: with ``σ = σ(2p)``, ``e_j = 2 v_a^T σ - Σ v_a``,
and the last term, the same for every ``j``, leaves the softmax unchanged, so
``α = softmax_j(2 v_a^T σ(2 p_j))``. The weights are the paper's to rounding; the point is
speed: on CPUs PyTorch's sigmoid runs several times faster than its tanh (1.57 ms against
0.19 ms on a ``100 x 36 x 256`` tensor, docs/benchmarks.md), and this is the largest
elementwise operation of a step (``B x N x A`` values).
"""

from __future__ import annotations

import torch
from torch import Tensor


def attend(keys: Tensor, query: Tensor, squashed: Tensor, v2: Tensor, blocked: Tensor) -> Tensor:
    """Attention weights ``α`` ``(B, N)`` of one step.

    Args:
        keys: ``(B, N, A)`` ``U_a h_j``; query: ``(B, A)`` ``W_a s``.
        squashed: ``(B, N, A)`` buffer that receives ``σ(2(W_a s + U_a h_j))``, kept for
            :func:`attend_backward`.
        v2: ``(A,)`` ``2 v_a``.
        blocked: ``(B, N)`` True at padding.
    """
    sig = torch.add(keys, query.unsqueeze(1), out=squashed).mul_(2).sigmoid_()
    return torch.softmax((sig @ v2).masked_fill_(blocked, float("-inf")), dim=1)


def attend_backward(
    d_alpha: Tensor, alpha: Tensor, squashed: Tensor, v4: Tensor, outer: Tensor, d_v: Tensor,
    d_query: Tensor,
) -> None:  # fmt: skip
    """Back through one :func:`attend` given ``dα`` ``(B, N)``.

    Adds to ``d_v`` ``(A,)``, writes ``dq = Σ_j dp_j`` into ``d_query`` ``(B, A)``, and turns
    ``squashed`` into ``dp = d(W_a s + U_a h_j)`` in place (the caller sums it over the steps
    for the keys' gradient). ``v4`` is ``4 v_a``; ``outer`` a ``(B, N, A)`` scratch buffer.
    """
    d_energy = alpha * (d_alpha - (alpha * d_alpha).sum(dim=1, keepdim=True))
    # dv = Σ dE tanh(p) = 2 Σ dE σ - Σ dE.
    d_v.addmv_(squashed.reshape(-1, squashed.size(2)).T, d_energy.reshape(-1), alpha=2)
    d_v -= d_energy.sum()
    # dp = 4 σ (1 - σ) ⊙ (dE ⊗ v): one pass of the sigmoid's own backward kernel, in place.
    torch.ops.aten.sigmoid_backward.grad_input(
        torch.mul(d_energy.unsqueeze(2), v4, out=outer), squashed, grad_input=squashed
    )
    torch.sum(squashed, dim=1, out=d_query)
