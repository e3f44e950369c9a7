"""Show, Attend and Tell's decoder loop (attention LSTM) as one autograd function.

The LSTM counterpart of :mod:`seq2seq.models.kernels.attention_gru`, with the same devices:
one product with the previous state per step for the query, the recurrent term and the
gating scalar; the attention's ``σ(2(W_a h + U_a a_i))`` saved once and turned into its own
gradient in place; weight gradients deferred to single products after the reversed loop.

The recurrence for step ``t`` from ``(h, c)`` (Xu et al. 2015, Eq. 1-5 and Sec. 4.2.1):
``α = softmax(v_a^T tanh(W_a h + U_a a_i))`` over the real cells, ``β = σ(f_β h + b_β)``
(1 without the gate), ``k = β Σ_i α_i (C a_i)``, ``[i; f; o; g] = x_t + k + U h``,
``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from seq2seq.models.kernels.attention_steps import attend, attend_backward
from seq2seq.models.kernels.lstm import lstm_step, lstm_step_backward
from seq2seq.models.kernels.support import ANY, KernelSupport, values

#: What this kernel computes as BahdanauDecoder's plain loop does: Show, Attend and Tell's
#: LSTM with or without the gating scalar; the rest acts outside the loop.
SUPPORT = KernelSupport(
    "attention-LSTM",
    {
        "cell": values("lstm"),
        "gate": values(True, False),
        "output_from": ANY,
        "maxout_pool": ANY,
        "doubly_stochastic": ANY,
        "init_from_summary": ANY,
        "dropout": ANY,
    },
)


class AttentionLSTMLoop(torch.autograd.Function):
    """Whole-sequence attention LSTM recurrence (see the module docstring)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        h0: Tensor,
        c0: Tensor,
        keys: Tensor,
        values: Tensor,
        mask: Tensor,
        w_query: Tensor,
        w_recurrent: Tensor,
        v: Tensor,
        w_gate: Tensor | None,
        b_gate: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Args:
            x: ``(B, T, 4H)`` input projections of every step (with the cell's biases).
            h0, c0: ``(B, H)`` initial state and memory.
            keys: ``(B, N, A)`` ``U_a a_i``; values: ``(B, N, 4H)`` ``C a_i``.
            mask: ``(B, N)`` bool, True at real positions.
            w_query: ``(A, H)``; w_recurrent: ``(4H, H)``; v: ``(A,)``.
            w_gate, b_gate: ``(1, H)`` and ``(1,)`` of ``f_β``, or None without the gate.

        Returns:
            states ``(B, T+1, H)`` (``h_0 .. h_T``), attention ``(B, T, N)`` and the gating
            scalars ``(B, T, 1)`` (ones without the gate).
        """
        batch, steps, four_h = x.shape
        hidden = four_h // 4
        attn_dim = keys.size(2)
        gated = w_gate is not None
        parts = [w_query, w_recurrent] + ([w_gate] if gated else [])
        w_state = torch.cat(parts, dim=0)  # (A + 4H (+1), H)
        states = x.new_empty(batch, steps + 1, hidden)
        states[:, 0] = h0
        memories = x.new_empty(batch, steps + 1, hidden)
        memories[:, 0] = c0
        alphas = x.new_empty(batch, steps, keys.size(1))
        betas = x.new_ones(batch, steps, 1)
        squashed = x.new_empty(steps, *keys.shape)  # σ(2(W_a h + U_a a_i)) of every step
        gates = x.new_empty(batch, steps, 4 * hidden)  # σ(i), σ(f), σ(o), tanh(g)
        read = x.new_empty(batch, steps, 4 * hidden)  # Σ α C a, before β
        tanh_memory = x.new_empty(batch, steps, hidden)
        v2 = 2 * v
        blocked = ~mask
        for t in range(steps):
            h = states[:, t]
            proj = h @ w_state.T
            query, recurrent = proj[:, :attn_dim], proj[:, attn_dim : attn_dim + 4 * hidden]
            alpha = attend(keys, query, squashed[t], v2, blocked)
            alphas[:, t] = alpha
            k = torch.bmm(alpha.unsqueeze(1), values).squeeze(1)
            read[:, t] = k
            if gated:
                beta = torch.sigmoid(proj[:, -1:] + b_gate)
                betas[:, t] = beta
                k = beta * k
            states[:, t + 1], memories[:, t + 1] = lstm_step(
                x[:, t] + k + recurrent, gates[:, t], memories[:, t], tanh_memory[:, t]
            )
        ctx.save_for_backward(
            states, memories, alphas, betas, squashed, gates, read, tanh_memory, values, w_state, v
        )
        ctx.attn_dim = attn_dim
        ctx.gated = gated
        return states, alphas, betas

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, d_states: Tensor, d_alphas: Tensor, d_betas: Tensor
    ) -> tuple[Tensor | None, ...]:
        (
            states,
            memories,
            alphas,
            betas,
            squashed,
            gates,
            read,
            tanh_memory,
            values,
            w_state,
            v,
        ) = ctx.saved_tensors
        attn_dim, gated = ctx.attn_dim, ctx.gated
        batch, steps, _ = alphas.shape
        hidden = states.size(2)
        width = w_state.size(0)
        d_x = states.new_empty(batch, steps, 4 * hidden)
        d_read = states.new_empty(batch, steps, 4 * hidden)  # β dk: the gradient of Σ α C a
        d_proj_all = states.new_zeros(batch, steps, width)
        d_v = v.new_zeros(v.shape)
        outer = torch.empty_like(squashed[0])
        v4 = 4 * v
        grad_h = d_states[:, steps].clone()
        grad_c = torch.zeros_like(grad_h)
        for t in range(steps - 1, -1, -1):
            d_pre = d_x[:, t]
            grad_c = lstm_step_backward(
                grad_h, grad_c, gates[:, t], tanh_memory[:, t], memories[:, t], d_pre
            )
            beta = betas[:, t]
            d_k = torch.mul(d_pre, beta, out=d_read[:, t])
            d_proj = d_proj_all[:, t]
            if gated:
                d_beta = (d_pre * read[:, t]).sum(dim=1, keepdim=True) + d_betas[:, t]
                d_proj[:, -1:] = d_beta * beta * (1 - beta)
            # dα as a row vector times the transposed values (fast on MKL, see the GRU loop).
            d_alpha = torch.bmm(d_k.unsqueeze(1), values.transpose(1, 2)).squeeze(1)
            d_alpha += d_alphas[:, t]
            attend_backward(
                d_alpha, alphas[:, t], squashed[t], v4, outer, d_v, d_proj[:, :attn_dim]
            )
            d_proj[:, attn_dim : attn_dim + 4 * hidden] = d_pre
            grad_h = d_proj @ w_state + d_states[:, t]

        prev = states[:, :steps].reshape(-1, hidden)
        d_w_state = d_proj_all.reshape(-1, width).T @ prev
        d_values = torch.bmm(alphas.transpose(1, 2), d_read)
        d_keys = squashed.sum(dim=0)
        d_w_gate = d_w_state[attn_dim + 4 * hidden :] if gated else None
        d_b_gate = d_proj_all[..., -1].sum().reshape(1) if gated else None
        return (
            d_x,
            grad_h,
            grad_c,
            d_keys,
            d_values,
            None,
            d_w_state[:attn_dim],
            d_w_state[attn_dim : attn_dim + 4 * hidden],
            d_v,
            d_w_gate,
            d_b_gate,
        )
