"""The RNNsearch decoder's time loop as one autograd function with a hand-written backward.

Run through autograd, every step of the attention GRU records a dozen small operations, and
the backward pass then pays for them twice: once for the per-step gradient kernels, once for
adding the gradients of the tensors read at every step (the projected keys ``U_a h_j``, the
projected annotations ``C h_j``, the recurrent matrices) into their accumulators, step after
step. This function runs the same recurrence, keeps what the backward needs, and in the
backward pass

- carries only the gradient of the state through the reversed loop;
- defers every weight gradient to one large matrix product over all steps after the loop
  (``dW = Σ_t dpre_t^T s_{t-1}`` is one ``(T·B, ·)^T (T·B, H)`` product), and the
  gradient of the projected annotations to one batched product ``α^T dK``;
- turns the saved ``σ(2(W_a s + U_a h_j))`` (the tanh through the sigmoid, as
  :mod:`seq2seq.models.modules.attention` computes it) into its own gradient in place, and sums the
  gradients of the keys over all steps once at the end.

The recurrence, for step ``t`` with previous state ``s`` (Bahdanau et al. 2015, A.2.2):
``α = softmax(v_a^T tanh(W_a s + U_a h_j))`` over real positions, ``k = Σ_j α_j (C h_j)``,
``[z; r] = σ(x_{zr} + k_{zr} + [U_z; U_r] s)``, ``s~ = tanh(x_h + k_h + U (r ⊙ s))``,
``s' = s + z ⊙ (s~ - s)``. It matches :class:`~seq2seq.models.decoders.bahdanau.BahdanauDecoder`'s
plain loop (``fused: false``) to rounding; the tests check outputs and gradients.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from seq2seq.models.kernels.attention_steps import attend, attend_backward
from seq2seq.models.kernels.support import ANY, KernelSupport, values

#: What this kernel computes as BahdanauDecoder's plain loop does: the GRU of RNNsearch
#: without Xu et al.'s gate; the output layer, dropout, the initial state and the attention
#: regulariser act outside the loop.
SUPPORT = KernelSupport(
    "attention-GRU",
    {
        "cell": values("gru"),
        "gate": values(False),
        "output_from": ANY,
        "maxout_pool": ANY,
        "doubly_stochastic": ANY,
        "init_from_summary": ANY,
        "dropout": ANY,
    },
)


class AttentionGRULoop(torch.autograd.Function):
    """Whole-sequence attention GRU recurrence (see the module docstring)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        s0: Tensor,
        keys: Tensor,
        values: Tensor,
        mask: Tensor,
        w_query: Tensor,
        w_gates: Tensor,
        w_candidate: Tensor,
        v: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Args:
            x: ``(B, T, 3H)`` input projections ``W E y_{t-1} + b`` of every step.
            s0: ``(B, H)`` initial state.
            keys: ``(B, N, A)`` projected annotations ``U_a h_j``.
            values: ``(B, N, 3H)`` annotations projected into the gates, ``C h_j``.
            mask: ``(B, N)`` bool, True at real source positions.
            w_query: ``(A, H)`` ``W_a``.
            w_gates: ``(2H, H)`` ``[U_z; U_r]``.
            w_candidate: ``(H, H)`` ``U``.
            v: ``(A,)`` ``v_a``.

        Returns:
            states ``(B, T+1, H)`` (``s_0 .. s_T``) and attention weights ``(B, T, N)``.
        """
        batch, steps, _ = x.shape
        hidden = s0.size(1)
        attn_dim = keys.size(2)
        # One product with the previous state per step for both W_a s and [U_z; U_r] s.
        w_state = torch.cat([w_query, w_gates], dim=0)  # (A+2H, H)
        states = x.new_empty(batch, steps + 1, hidden)
        states[:, 0] = s0
        alphas = x.new_empty(batch, steps, keys.size(1))
        squashed = x.new_empty(steps, *keys.shape)  # σ(2(W_a s + U_a h_j)) of every step
        v2 = 2 * v
        gates = x.new_empty(batch, steps, 3 * hidden)  # z, r and s~ of every step
        blocked = ~mask
        for t in range(steps):
            s = states[:, t]
            query, recurrent = (s @ w_state.T).split((attn_dim, 2 * hidden), dim=1)
            alpha = attend(keys, query, squashed[t], v2, blocked)
            alphas[:, t] = alpha
            xk = torch.baddbmm(x[:, t].unsqueeze(1), alpha.unsqueeze(1), values).squeeze(1)
            zr = torch.sigmoid_(xk[:, : 2 * hidden] + recurrent)
            z, r = zr.chunk(2, dim=1)
            candidate = torch.addmm(xk[:, 2 * hidden :], r * s, w_candidate.T).tanh_()
            states[:, t + 1] = torch.lerp(s, candidate, z)
            gates[:, t, : 2 * hidden] = zr
            gates[:, t, 2 * hidden :] = candidate
        ctx.save_for_backward(states, alphas, squashed, gates, values, w_state, w_candidate, v)
        ctx.attn_dim = attn_dim
        return states, alphas

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_states: Tensor, d_alphas: Tensor) -> tuple[Tensor | None, ...]:
        states, alphas, squashed, gates, values, w_state, w_candidate, v = ctx.saved_tensors
        attn_dim = ctx.attn_dim
        batch, steps, _ = alphas.shape
        hidden = states.size(2)
        d_x = states.new_empty(batch, steps, 3 * hidden)  # also dk: x and k enter alike
        d_state_proj = states.new_empty(batch, steps, attn_dim + 2 * hidden)  # [dq, da_zr]
        d_v = v.new_zeros(attn_dim)
        outer = torch.empty_like(squashed[0])  # dE ⊗ 4v of one step
        v4 = 4 * v
        grad = d_states[:, steps].clone()  # dL/ds_t, carried backwards
        for t in range(steps - 1, -1, -1):
            s = states[:, t]
            z, r, candidate = gates[:, t].split(hidden, dim=1)
            # s' = s + z (s~ - s)
            d_candidate = grad * z
            d_s = grad - d_candidate
            d_z = grad * (candidate - s)
            d_pre_h = d_candidate * (1 - candidate * candidate)
            d_rs = d_pre_h @ w_candidate
            d_s += d_rs * r
            d_pre = d_x[:, t]
            torch.mul(d_z * z, 1 - z, out=d_pre[:, :hidden])
            torch.mul(d_rs * s * r, 1 - r, out=d_pre[:, hidden : 2 * hidden])
            d_pre[:, 2 * hidden :] = d_pre_h
            # k = α^T (C h): dα_j = (C h_j) · dk, plus what the caller's use of α brings.
            # As a row vector times the transposed values: the same numbers as
            # bmm(values, dk), an order of magnitude faster on MKL.
            d_alpha = torch.bmm(d_pre.unsqueeze(1), values.transpose(1, 2)).squeeze(1)
            d_alpha += d_alphas[:, t]
            d_proj = d_state_proj[:, t]
            attend_backward(
                d_alpha, alphas[:, t], squashed[t], v4, outer, d_v, d_proj[:, :attn_dim]
            )
            d_proj[:, attn_dim:] = d_pre[:, : 2 * hidden]
            d_s += d_proj @ w_state
            grad = d_s + d_states[:, t]

        prev = states[:, :steps].reshape(-1, hidden)  # s_{t-1} of every step
        d_w_state = d_state_proj.reshape(-1, attn_dim + 2 * hidden).T @ prev
        r_prev = gates[:, :, hidden : 2 * hidden].reshape(-1, hidden) * prev
        d_w_candidate = d_x[:, :, 2 * hidden :].reshape(-1, hidden).T @ r_prev
        d_values = torch.bmm(alphas.transpose(1, 2), d_x)
        d_keys = squashed.sum(dim=0)
        return (
            d_x,
            grad,
            d_keys,
            d_values,
            None,
            d_w_state[:attn_dim],
            d_w_state[attn_dim:],
            d_w_candidate,
            d_v.reshape(v.shape),
        )
