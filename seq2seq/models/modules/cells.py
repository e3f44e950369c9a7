"""Recurrent cells that read a context vector besides the previous word and state.

Every cell takes the projection of the previous word ``x = W e(y_{t-1}) + b`` and of the
context ``k = C c`` as ready-made ``(B, G*H)`` tensors, so a decoder can compute the word
projections of all steps in one matrix product before its time loop, and the context
projection once per batch when the context is fixed (Cho, NIC). Only the products with the
previous state remain inside the loop.

- :class:`ChoGRUCell` (Cho et al. 2014, Appendix A.1.2): the context enters all three parts,
  and the reset gate scales it with the recurrent term:
  ``z = σ(x_z + U_z h + k_z)``, ``r = σ(x_r + U_r h + k_r)``,
  ``h~ = tanh(x_h + r ⊙ (U h + k_h))``, ``h' = z ⊙ h + (1 - z) ⊙ h~``.
- :class:`BahdanauGRUCell` (Bahdanau et al. 2015, Appendix A.2.2): the reset gate scales the
  state *before* its product, ``s~ = tanh(x_h + U (r ⊙ s) + k_h)``, and the update gate
  weighs the candidate: ``s' = (1 - z) ⊙ s + z ⊙ s~``.
- :class:`ContextLSTMCell` (Xu et al. 2015, Eq. 1): ``i, f, o, g`` from ``x + U h + k``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2seq.core import DecoderState


class ContextCell(nn.Module):
    """Interface of the cells: ``gates`` blocks of ``hidden_dim`` per input projection."""

    gates: int
    #: How many ``hidden_dim`` vectors the initial state is made of (h, or h and memory).
    init_parts: int = 1
    #: Parameters that are recurrent matrices of ``gates`` square blocks (orthogonal init).
    orthogonal: tuple[str, ...] = ()

    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim

    def initial(self, init: Tensor) -> DecoderState:
        """State from ``init`` ``(B, init_parts*H)``."""
        return {"h": init}

    def forward(self, x: Tensor, k: Tensor, state: DecoderState) -> DecoderState:
        """Advance one step: ``x``, ``k`` ``(B, gates*H)``; returns the new state."""
        raise NotImplementedError


class ChoGRUCell(ContextCell):
    """Cho et al.'s decoder GRU: the context enters the gates and the candidate."""

    gates = 3
    orthogonal = ("recurrent.weight",)

    def __init__(self, hidden_dim: int) -> None:
        super().__init__(hidden_dim)
        self.recurrent = nn.Linear(hidden_dim, 3 * hidden_dim, bias=False)

    def forward(self, x: Tensor, k: Tensor, state: DecoderState) -> DecoderState:
        h = state["h"]
        hidden = self.hidden_dim
        uz_ur, uh = self.recurrent(h).split((2 * hidden, hidden), dim=1)
        z, r = torch.sigmoid(x[:, : 2 * hidden] + k[:, : 2 * hidden] + uz_ur).chunk(2, dim=1)
        candidate = torch.tanh(x[:, 2 * hidden :] + r * (uh + k[:, 2 * hidden :]))
        # z ⊙ h + (1 - z) ⊙ h~ in one fused op.
        return {"h": torch.lerp(candidate, h, z)}


class BahdanauGRUCell(ContextCell):
    """RNNsearch's decoder GRU: reset applied to the state before ``U``."""

    gates = 3
    orthogonal = ("recurrent_gates.weight", "recurrent.weight")

    def __init__(self, hidden_dim: int) -> None:
        super().__init__(hidden_dim)
        self.recurrent_gates = nn.Linear(hidden_dim, 2 * hidden_dim, bias=False)  # U_z; U_r
        self.recurrent = nn.Linear(hidden_dim, hidden_dim, bias=False)  # U

    def forward(self, x: Tensor, k: Tensor, state: DecoderState) -> DecoderState:
        s = state["h"]
        xk = x + k  # the word and context terms enter every part alike
        hidden = self.hidden_dim
        z, r = torch.sigmoid(xk[:, : 2 * hidden] + self.recurrent_gates(s)).chunk(2, dim=1)
        candidate = torch.tanh(xk[:, 2 * hidden :] + self.recurrent(r * s))
        # (1 - z) ⊙ s + z ⊙ s~ in one fused op.
        return {"h": torch.lerp(s, candidate, z)}


class ContextLSTMCell(ContextCell):
    """LSTM whose gates also read the context (Show-and-Tell, Show-Attend-Tell)."""

    gates = 4
    init_parts = 2
    orthogonal = ("recurrent.weight",)

    def __init__(self, hidden_dim: int) -> None:
        super().__init__(hidden_dim)
        self.recurrent = nn.Linear(hidden_dim, 4 * hidden_dim, bias=False)

    def initial(self, init: Tensor) -> DecoderState:
        h, memory = init.chunk(2, dim=1)
        return {"h": h, "memory": memory}

    def forward(self, x: Tensor, k: Tensor, state: DecoderState) -> DecoderState:
        pre = x + k + self.recurrent(state["h"])
        i, f, o, g = pre.chunk(4, dim=1)
        memory = torch.sigmoid(f) * state["memory"] + torch.sigmoid(i) * torch.tanh(g)
        return {"h": torch.sigmoid(o) * torch.tanh(memory), "memory": memory}
