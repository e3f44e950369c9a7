"""A (bi)directional GRU layer over padded batches, as one autograd function.

On the CPU, ``nn.GRU`` over a packed batch records a graph of small operations per step and
per direction, and its backward pass walks that graph: for the text encoder of the
Bible-size models that backward alone took over a third of a training step. This function
runs both directions of a layer in the same loop (their recurrent products batched as one
``(2, B, H) x (2, H, 3H)`` product), masks the steps past each sentence's end instead of
packing, and has a hand-written backward that carries only the state gradient through the
reversed loop and computes the recurrent weight gradients in one product after it.

The equations are PyTorch's (so the parameters of an ``nn.GRU`` are used as they are and
checkpoints do not change): ``r = σ(W_ir x + b_ir + W_hr h + b_hr)``,
``z = σ(W_iz x + b_iz + W_hz h + b_hz)``, ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``,
``h' = (1 - z) ⊙ n + z ⊙ h``. A direction that reads right to left is given its sentences
reversed within their lengths, so for every direction the real steps come first; past a
sentence's end the state is carried unchanged and the output is zero, exactly as with
``pack_padded_sequence``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from seq2seq.models.kernels.support import ANY, KernelSupport, values

#: What :class:`GRULayerLoop` computes as ContextDecoder's plain loop does: Cho's GRU, its
#: context term where PyTorch's GRU has its recurrent biases (see ContextDecoder); the output
#: layer, dropout and the initial state act outside the loop. (The encoders' use of this
#: module, :func:`fused_gru`, runs an ``nn.GRU``'s own parameters and has no options.)
CONTEXT_GRU_SUPPORT = KernelSupport(
    "context-GRU",
    {
        "cell": values("gru"),
        "context_at": values("every_step", "start"),
        "maxout_pool": ANY,
        "forget_bias": ANY,
        "dropout": ANY,
    },
)


class GRULayerLoop(torch.autograd.Function):
    """The recurrence of one GRU layer, all directions at once (see the module docstring)."""

    @staticmethod
    def forward(
        ctx: Any, gi: Tensor, h0: Tensor, mask: Tensor, w_hh: Tensor, b_hh: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Args:
            gi: ``(D, B, N, 3H)`` input projections ``W_i x + b_i`` per direction, each
                direction's sentences in its reading order with real steps first.
            h0: ``(D, B, H)`` initial states.
            mask: ``(B, N)`` bool, True at real steps.
            w_hh: ``(D, 3H, H)`` recurrent weights ``[W_hr; W_hz; W_hn]``.
            b_hh: ``(D, 3H)`` recurrent biases, or ``(D, B, 3H)`` one per sentence (Cho et
                al.'s decoder adds its context term ``C c`` where PyTorch has ``b_hn``).

        Returns:
            outputs ``(D, B, N, H)`` (zero past each sentence's end) and the final states
            ``(D, B, H)`` (the state after each sentence's last real step).
        """
        dirs, batch, steps, three_h = gi.shape
        hidden = three_h // 3
        w_t = w_hh.transpose(1, 2)  # (D, H, 3H)
        bias = b_hh.unsqueeze(1) if b_hh.dim() == 2 else b_hh  # (D, 1 or B, 3H)
        keep = mask.to(gi.dtype).unsqueeze(0).unsqueeze(-1)  # (1, B, N, 1)
        outputs = gi.new_empty(dirs, batch, steps, hidden)
        saved = gi.new_empty(dirs, batch, steps, 4 * hidden)  # r, z, n, W_hn h + b_hn
        h = h0
        for t in range(steps):
            gh = torch.baddbmm(bias, h, w_t)  # (D, B, 3H)
            rz = torch.sigmoid_(gi[:, :, t, : 2 * hidden] + gh[..., : 2 * hidden])
            r, z = rz.chunk(2, dim=-1)
            gh_n = gh[..., 2 * hidden :]
            n = torch.addcmul(gi[:, :, t, 2 * hidden :], r, gh_n).tanh_()
            out = torch.lerp(n, h, z).mul_(keep[:, :, t])  # zero past the end
            outputs[:, :, t] = out
            # Past the end the state is carried: h <- h + m (h' - h) with h' m = out.
            h = torch.addcmul(out, h, 1 - keep[:, :, t])
            saved[:, :, t, : 2 * hidden] = rz
            saved[:, :, t, 2 * hidden : 3 * hidden] = n
            saved[:, :, t, 3 * hidden :] = gh_n
        ctx.save_for_backward(h0, outputs, saved, keep, w_hh)
        ctx.bias_per_sentence = b_hh.dim() == 3
        return outputs, h

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_outputs: Tensor, d_final: Tensor) -> tuple[Tensor | None, ...]:
        h0, outputs, saved, keep, w_hh = ctx.saved_tensors
        dirs, batch, steps, hidden = outputs.shape
        d_gi = outputs.new_empty(dirs, batch, steps, 3 * hidden)
        d_gh = outputs.new_empty(dirs, batch, steps, 3 * hidden)
        # The state each step started from: h0, then the previous step's output (real steps
        # come first; a step past the end gets no gradient, so what it reads is moot).
        prev = torch.empty_like(outputs)
        prev[:, :, 0] = h0
        prev[:, :, 1:] = outputs[:, :, :-1]
        grad = d_final.clone()  # dL/dh after step t, carried backwards
        for t in range(steps - 1, -1, -1):
            m = keep[:, :, t]  # (1, B, 1)
            h = prev[:, :, t]
            r, z, n, gh_n = saved[:, :, t].split(hidden, dim=-1)
            total = (grad + d_outputs[:, :, t]) * m  # the step's own share of the gradient
            d_n = total * (1 - z)
            d_h = total * z
            d_pre_n = d_n * (1 - n * n)
            d_gi[:, :, t, 2 * hidden :] = d_pre_n
            torch.mul(d_pre_n, r, out=d_gh[:, :, t, 2 * hidden :])
            d_r = d_pre_n * gh_n
            torch.mul(d_r * r, 1 - r, out=d_gi[:, :, t, :hidden])
            torch.mul(total * (h - n) * z, 1 - z, out=d_gi[:, :, t, hidden : 2 * hidden])
            d_gh[:, :, t, : 2 * hidden] = d_gi[:, :, t, : 2 * hidden]
            d_h += torch.bmm(d_gh[:, :, t], w_hh)
            # Past the end the state was carried through unchanged.
            grad = d_h + grad * (1 - m)
        d_w_hh = torch.bmm(
            d_gh.reshape(dirs, -1, 3 * hidden).transpose(1, 2), prev.reshape(dirs, -1, hidden)
        )
        d_b_hh = d_gh.sum(dim=2) if ctx.bias_per_sentence else d_gh.sum(dim=(1, 2))
        return d_gi, grad, None, d_w_hh, d_b_hh


def reverse_within_lengths(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row of ``x`` ``(B, N, ...)`` within its length ``(B,)``, leaving the
    padding in place; applying it twice gives ``x`` back."""
    steps = x.size(1)
    positions = torch.arange(steps, device=x.device).unsqueeze(0)  # (1, N)
    lengths = lengths.to(x.device).unsqueeze(1)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)  # (B, N)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


def fused_gru(gru: nn.GRU, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Run ``gru`` (``batch_first``, one or two directions, any number of layers) over the
    padded batch ``x`` ``(B, N, E)`` with true ``lengths`` ``(B,)``.

    Returns the same as ``nn.GRU`` over the packed batch, unpacked: outputs
    ``(B, N, dirs*H)``, zero past each sentence's end, and final states
    ``(layers*dirs, B, H)``.
    """
    dirs = 2 if gru.bidirectional else 1
    mask = torch.arange(x.size(1), device=x.device).unsqueeze(0) < lengths.to(x.device)[:, None]
    finals = []
    layer_input = x
    for layer in range(gru.num_layers):
        suffixes = [f"_l{layer}", f"_l{layer}_reverse"][:dirs]
        w_ih = [getattr(gru, f"weight_ih{s}") for s in suffixes]
        b_ih = [getattr(gru, f"bias_ih{s}") for s in suffixes]
        inputs = [layer_input]
        if dirs == 2:
            inputs.append(reverse_within_lengths(layer_input, lengths))
        gi = torch.stack(
            [nn.functional.linear(inp, w, b) for inp, w, b in zip(inputs, w_ih, b_ih, strict=True)]
        )
        w_hh = torch.stack([getattr(gru, f"weight_hh{s}") for s in suffixes])
        b_hh = torch.stack([getattr(gru, f"bias_hh{s}") for s in suffixes])
        h0 = x.new_zeros(dirs, x.size(0), gru.hidden_size)
        outputs, final = GRULayerLoop.apply(gi, h0, mask, w_hh, b_hh)
        per_direction = [outputs[0]]
        if dirs == 2:
            per_direction.append(reverse_within_lengths(outputs[1], lengths))
        layer_input = torch.cat(per_direction, dim=-1)
        finals.append(final)
        if gru.dropout and gru.training and layer < gru.num_layers - 1:
            layer_input = nn.functional.dropout(layer_input, gru.dropout, training=True)
    return layer_input, torch.cat(finals, dim=0)
