"""An LSTM decoder's teacher-forced loop as one autograd function (Show and Tell).

The counterpart of :mod:`seq2seq.models.kernels.gru` for the fixed-context LSTM decoder: the
input projections of all steps (with the context term, constant over time, already added)
come in as one tensor, the loop keeps only the gates and memories the backward pass needs,
and the backward pass carries the state and memory gradients through the reversed loop and
computes the recurrent weight gradient in one product after it.

``[i; f; o; g] = x_t + U h``, ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``, as
:class:`~seq2seq.models.modules.cells.ContextLSTMCell` computes it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from seq2seq.models.kernels.support import ANY, KernelSupport, values

#: What this kernel computes as ContextDecoder's plain loop does: the LSTM with its context
#: term (zero for ``context_at: start``) added to every step's input; the image step before
#: the first word, the forget-gate bias, the output layer and dropout act outside the loop.
SUPPORT = KernelSupport(
    "context-LSTM",
    {
        "cell": values("lstm"),
        "context_at": values("every_step", "start"),
        "maxout_pool": ANY,
        "forget_bias": ANY,
        "dropout": ANY,
    },
)


def lstm_step(pre: Tensor, gate: Tensor, memory: Tensor, tanh_out: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step from its pre-activations ``pre`` ``(B, 4H)`` and memory ``(B, H)``.

    Writes ``σ(i), σ(f), σ(o), tanh(g)`` into ``gate`` ``(B, 4H)`` and ``tanh(c')`` into
    ``tanh_out`` ``(B, H)``, both kept for :func:`lstm_step_backward`; returns ``h'`` and
    ``c'``.
    """
    hidden = memory.size(1)
    torch.sigmoid(pre[:, : 3 * hidden], out=gate[:, : 3 * hidden])
    torch.tanh(pre[:, 3 * hidden :], out=gate[:, 3 * hidden :])
    i, f, o, g = gate.split(hidden, dim=1)
    new_memory = torch.addcmul(i * g, f, memory)
    return o * torch.tanh(new_memory, out=tanh_out), new_memory


def lstm_step_backward(
    d_h: Tensor, d_memory: Tensor, gate: Tensor, tanh_memory: Tensor, memory: Tensor,
    d_pre: Tensor,
) -> Tensor:  # fmt: skip
    """Back through one :func:`lstm_step` given ``dL/dh'`` and ``dL/dc'`` from later steps.

    Writes the gradient of the pre-activations into ``d_pre`` ``(B, 4H)`` and returns that of
    the memory the step started from.
    """
    hidden = memory.size(1)
    i, f, o, g = gate.split(hidden, dim=1)
    d_c = d_memory + d_h * o * (1 - tanh_memory * tanh_memory)
    torch.mul(d_c * g * i, 1 - i, out=d_pre[:, :hidden])
    torch.mul(d_c * memory * f, 1 - f, out=d_pre[:, hidden : 2 * hidden])
    torch.mul(d_h * tanh_memory * o, 1 - o, out=d_pre[:, 2 * hidden : 3 * hidden])
    torch.mul(d_c * i, 1 - g * g, out=d_pre[:, 3 * hidden :])
    return d_c * f


class LSTMLoop(torch.autograd.Function):
    """Whole-sequence LSTM recurrence (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor) -> Tensor:
        """Args:
            x: ``(B, T, 4H)`` input projections of every step, context term included.
            h0, c0: ``(B, H)`` initial state and memory.
            w_hh: ``(4H, H)`` recurrent weights ``U``.

        Returns:
            the states ``(B, T, H)`` after every step (``h_1 .. h_T``).
        """
        batch, steps, four_h = x.shape
        hidden = four_h // 4
        states = x.new_empty(batch, steps + 1, hidden)  # h_0 .. h_T
        states[:, 0] = h0
        memories = x.new_empty(batch, steps + 1, hidden)  # c_0 .. c_T
        memories[:, 0] = c0
        gates = x.new_empty(batch, steps, 4 * hidden)  # σ(i), σ(f), σ(o), tanh(g)
        tanh_memory = x.new_empty(batch, steps, hidden)
        for t in range(steps):
            pre = torch.addmm(x[:, t], states[:, t], w_hh.T)
            states[:, t + 1], memories[:, t + 1] = lstm_step(
                pre, gates[:, t], memories[:, t], tanh_memory[:, t]
            )
        ctx.save_for_backward(states, memories, gates, tanh_memory, w_hh)
        return states[:, 1:]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_out: Tensor) -> tuple[Tensor | None, ...]:
        states, memories, gates, tanh_memory, w_hh = ctx.saved_tensors
        batch, steps, four_h = gates.shape
        hidden = four_h // 4
        d_x = gates.new_empty(batch, steps, four_h)
        grad_h = torch.zeros_like(states[:, 0])  # dL/dh_{t+1} from later steps
        grad_c = torch.zeros_like(grad_h)
        for t in range(steps - 1, -1, -1):
            d_pre = d_x[:, t]
            grad_c = lstm_step_backward(
                grad_h + d_out[:, t], grad_c, gates[:, t], tanh_memory[:, t], memories[:, t], d_pre
            )
            grad_h = d_pre @ w_hh
        prev = states[:, :steps].reshape(-1, hidden)
        d_w_hh = d_x.reshape(-1, four_h).T @ prev
        return d_x, grad_h, grad_c, d_w_hh
