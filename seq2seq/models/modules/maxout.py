"""The deep output layer with a maxout hidden layer (Goodfellow et al. 2013), as used by
Cho et al. (2014, Appendix A.1.2) and Bahdanau et al. (2015, Appendix A.2.2):

``t~ = U_o s + V_o E y_{i-1} + C_o c``, ``t_j = max(t~_{2j-1}, t~_{2j})``,
``p(y_i) ∝ exp(y_i^T W_o t)``.

It has no recurrence, so a decoder applies it to all time steps at once after its loop.
"""

from __future__ import annotations

from torch import Tensor, nn


class MaxoutOutput(nn.Module):
    """Args:
    state_dim: size of the decoder state fed in (``s_{i-1}`` or ``h'_t``).
    embed_dim: size of the previous word's embedding.
    context_dim: size of the context ``c``; 0 for a decoder whose output never reads one
        (Show-and-Tell fed the image only at the start).
    maxout_dim: units after pooling (``l``; 500 in the papers).
    vocab_size: target vocabulary size.
    pool: pieces per maxout unit (2 in the papers).
    dropout: dropout on the maxout units, before ``W_o``.
    """

    def __init__(
        self,
        state_dim: int,
        embed_dim: int,
        context_dim: int,
        maxout_dim: int,
        vocab_size: int,
        pool: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.from_state = nn.Linear(state_dim, pool * maxout_dim)  # U_o (+ bias)
        self.from_embedding = nn.Linear(embed_dim, pool * maxout_dim, bias=False)  # V_o
        self.from_context = (
            nn.Linear(context_dim, pool * maxout_dim, bias=False) if context_dim else None
        )  # C_o
        self.dropout = nn.Dropout(dropout)
        self.vocab = nn.Linear(maxout_dim, vocab_size)  # W_o

    def forward(self, state: Tensor, embedded: Tensor, context: Tensor | None) -> Tensor:
        """Inputs ``(..., state_dim)``, ``(..., embed_dim)``, ``(..., context_dim)`` (None
        without a context) with the same leading dimensions (``(B,)`` for one step, ``(B, T)``
        for all); returns logits ``(..., V)``."""
        pre = self.from_state(state) + self.from_embedding(embedded)
        if self.from_context is not None and context is not None:
            pre = pre + self.from_context(context)
        # Adjacent pairs pooled, as t_j = max(t~_{2j-1}, t~_{2j}).
        pooled = pre.unflatten(-1, (-1, self.pool)).amax(dim=-1)
        return self.vocab(self.dropout(pooled))
