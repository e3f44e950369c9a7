"""Additive attention of Bahdanau et al. (2015), Sec. 3.1 and Appendix A.1.2.

``e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j)``, ``α_ij = softmax_j(e_ij)`` over the real
positions only, ``c_i = Σ_j α_ij h_j``. ``U_a h_j`` does not depend on the decoder state, so
:meth:`AdditiveAttention.project_keys` computes it once per batch, outside the time loop.

This is the equation as the paper writes it. The fused training kernels
(:mod:`seq2seq.models.kernels.attention_steps`) compute the same weights through an identity
that is faster on CPUs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AdditiveAttention(nn.Module):
    """Args:
    query_dim: size of the decoder state ``s``.
    key_dim: size of the annotations ``h_j``.
    attention_dim: size of the alignment MLP's hidden layer (``n'`` in the paper).
    """

    def __init__(self, query_dim: int, key_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, attention_dim, bias=False)  # W_a
        self.key = nn.Linear(key_dim, attention_dim, bias=False)  # U_a
        self.v = nn.Linear(attention_dim, 1, bias=False)  # v_a

    def project_keys(self, annotations: Tensor) -> Tensor:
        """``U_a h_j`` for all positions: ``(B, N, D)`` to ``(B, N, A)``."""
        return self.key(annotations)

    def weights(self, query: Tensor, keys: Tensor, mask: Tensor) -> Tensor:
        """``α`` ``(B, N)`` for ``query`` ``(B, Q)`` over projected ``keys`` ``(B, N, A)``;
        ``mask`` ``(B, N)`` is True at real positions, and ``α`` is exactly zero elsewhere."""
        energies = self.v(torch.tanh(keys + self.query(query).unsqueeze(1))).squeeze(2)
        energies = energies.masked_fill(~mask, float("-inf"))
        return torch.softmax(energies, dim=1)

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Attend from ``query`` ``(B, Q)`` over ``keys`` ``(B, N, A)`` (projected).

        Args:
            values: ``(B, N, D)`` the annotations.
            mask: ``(B, N)`` True at real positions.

        Returns:
            context ``(B, D)`` and weights ``α`` ``(B, N)``.
        """
        weights = self.weights(query, keys, mask)
        return torch.bmm(weights.unsqueeze(1), values).squeeze(1), weights
