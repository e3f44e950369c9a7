"""The RNNsearch decoder of Bahdanau, Cho and Bengio (2015), Appendix A.2.2.

At target step ``i``, from the *previous* state ``s_{i-1}``:

- alignment: ``e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j)``, ``α_ij = softmax_j(e_ij)``
  (padding masked out), context ``c_i = Σ_j α_ij h_j``;
- state: ``s_i = (1 - z_i) ⊙ s_{i-1} + z_i ⊙ s~_i`` with
  ``s~_i = tanh(W E y_{i-1} + U [r_i ⊙ s_{i-1}] + C c_i)``,
  ``z_i = σ(W_z E y_{i-1} + U_z s_{i-1} + C_z c_i)``,
  ``r_i = σ(W_r E y_{i-1} + U_r s_{i-1} + C_r c_i)``;
- output: ``t~_i = U_o s_{i-1} + V_o E y_{i-1} + C_o c_i``, maxout over pairs,
  ``p(y_i | ...) ∝ exp(y_i^T W_o t_i)``;
- initial state ``s_0 = tanh(W_s bwd_1)`` from the encoder summary.

JoeyNMT and OpenNMT-py attend from the *new* state and have no maxout layer (Luong's
ordering); this one follows the paper.

Show, Attend and Tell (Xu et al. 2015) is the same decoder with ``cell: lstm`` and three
options: ``gate: true`` scales the context by ``β_t = σ(f_β(h_{t-1}))`` (Sec. 4.2.1),
``output_from: current`` with ``maxout_pool: 1`` gives its deep output
``L_o(E y_{t-1} + L_h h_t + L_z ẑ_t)`` (Eq. 7), and ``doubly_stochastic: λ`` adds
``λ Σ_i (1 - Σ_t α_ti)²`` to the loss (Eq. 14).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from seq2seq.core import (
    Decoder,
    DecoderOutput,
    DecoderState,
    Encoder,
    EncoderOutput,
    StepOutput,
    Vocabularies,
)
from seq2seq.models.decoders.recurrent import RecurrentDecoder
from seq2seq.models.kernels.attention_gru import SUPPORT as ATTENTION_GRU
from seq2seq.models.kernels.attention_gru import AttentionGRULoop
from seq2seq.models.kernels.attention_lstm import SUPPORT as ATTENTION_LSTM
from seq2seq.models.kernels.attention_lstm import AttentionLSTMLoop
from seq2seq.models.kernels.support import KernelChoice, KernelSupport
from seq2seq.models.modules.attention import AdditiveAttention
from seq2seq.models.modules.cells import BahdanauGRUCell, ContextLSTMCell

CELLS = {"gru": BahdanauGRUCell, "lstm": ContextLSTMCell}


class BahdanauDecoder(RecurrentDecoder):
    """Attention decoder; sizes of the annotations and summary come from the encoder.

    Args:
        vocab_size: target vocabulary size.
        annotation_dim: encoder ``output_dim`` (``2n`` for the bidirectional encoder).
        summary_dim: encoder ``summary_dim``.
        embed_dim: target embedding size (620 in the paper).
        hidden_dim: decoder state size (1000).
        attention_dim: alignment MLP size (1000).
        maxout_dim: maxout units (500).
        cell: ``gru`` (the paper) or ``lstm``.
        dropout: dropout on embeddings and maxout units.
        pad_id: padding token id.
        gate: scale the context by Xu et al.'s gating scalar ``β = σ(f_β(s_{i-1}))``.
        output_from: the state the output layer reads: ``previous`` (``s_{i-1}``, Bahdanau)
            or ``current`` (``h_t``, Xu et al.).
        maxout_pool: pieces per maxout unit; 1 gives a linear deep output.
        doubly_stochastic: ``λ`` of the attention regulariser (0: off).
        init_from_summary: ``s_0`` from the encoder summary (the papers: ``bwd_1`` for text,
            the mean annotation for images); False starts from zeros, so that everything
            the decoder learns of the input comes through its attention.
        fused: run the teacher-forced loop as one autograd function with a hand-written
            backward (:mod:`seq2seq.models.kernels.attention_gru`, or
            :mod:`~seq2seq.models.kernels.attention_lstm` for the LSTM: same results,
            faster). Each kernel states the options it supports (its ``SUPPORT``); any other
            combination, and autocast, train with the plain loop, and the log says which
            path runs.
    """

    def __init__(
        self,
        vocab_size: int,
        annotation_dim: int,
        summary_dim: int,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        attention_dim: int = 256,
        maxout_dim: int = 256,
        cell: str = "gru",
        dropout: float = 0.0,
        pad_id: int = 0,
        gate: bool = False,
        output_from: str = "previous",
        maxout_pool: int = 2,
        doubly_stochastic: float = 0.0,
        init_from_summary: bool = True,
        fused: bool = True,
    ) -> None:
        if output_from not in ("previous", "current"):
            raise ValueError(f"output_from must be 'previous' or 'current', got {output_from!r}")
        super().__init__(
            vocab_size=vocab_size,
            context_dim=annotation_dim,
            summary_dim=summary_dim,
            cells=CELLS,
            cell=cell,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            maxout_dim=maxout_dim,
            dropout=dropout,
            pad_id=pad_id,
            maxout_pool=maxout_pool,
            init_from_summary=init_from_summary,
        )
        self.attention = AdditiveAttention(hidden_dim, annotation_dim, attention_dim)
        self.gate = nn.Linear(hidden_dim, 1) if gate else None  # f_β
        self.output_from_previous = output_from == "previous"
        self.doubly_stochastic = doubly_stochastic
        self.fused = fused
        self.kernels = KernelChoice(
            type(self).__name__,
            (ATTENTION_GRU, ATTENTION_LSTM),
            {
                "cell": cell,
                "gate": gate,
                "output_from": output_from,
                "maxout_pool": maxout_pool,
                "doubly_stochastic": doubly_stochastic,
                "init_from_summary": init_from_summary,
                "dropout": dropout,
            },
        )

    @classmethod
    def from_encoder(cls, encoder: Encoder, vocab: Vocabularies, **options: Any) -> Decoder:
        """Sized from the encoder's annotations (attended) and summary (initial state)."""
        return cls(
            vocab_size=vocab.target,
            annotation_dim=encoder.output_dim,
            summary_dim=encoder.summary_dim,
            pad_id=vocab.pad_id,
            **options,
        )

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        """``s_0`` and ``U_a h_j`` (``keys``, ``(B, N, A)``), computed once per batch."""
        state = self.initial_cell_state(enc.summary)
        state["keys"] = self.attention.project_keys(enc.annotations)
        return state

    def _gating(self, prev_h: Tensor) -> Tensor | None:
        """``β`` ``(B, 1)`` from ``s_{i-1}``, or None without the gate."""
        return None if self.gate is None else torch.sigmoid(self.gate(prev_h))

    def step(self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput) -> StepOutput:
        embedded, x = self.embed(prev_tokens)
        prev_h = state["h"]
        context, weights = self.attention(prev_h, state["keys"], enc.annotations, enc.mask)
        beta = self._gating(prev_h)
        if beta is not None:
            context = beta * context
        new_state = self.cell(x, self.context_proj(context), self.cell_state(state))
        new_state["keys"] = state["keys"]
        out_h = prev_h if self.output_from_previous else new_state["h"]
        return StepOutput(self.output(out_h, embedded, context), new_state, weights)

    def can_fuse(self, device_type: str) -> bool:
        """Whether :meth:`forward` takes a fused kernel (see ``fused`` and :attr:`kernels`)."""
        return self.kernels.use(device_type, self.fused) is not None

    def forward(
        self, prev_tokens: Tensor, enc: EncoderOutput, target_mask: Tensor | None = None
    ) -> DecoderOutput:
        embedded, x = self.embed(prev_tokens)
        kernel = self.kernels.use(x.device.type, self.fused)
        if kernel is not None:
            return self._forward_fused(kernel, embedded, x, enc, target_mask)
        state = self.init_state(enc)
        keys = state.pop("keys")
        # C c_i = C Σ_j α_ij h_j = Σ_j α_ij (C h_j): projecting the annotations once per batch
        # leaves only a (B, N) x (N, 3H) product per step instead of a (D, 3H) matrix product,
        # and the contexts themselves are needed only by the output layer, after the loop.
        context_gates = self.context_proj(enc.annotations)
        out_states, weights, betas = [], [], []
        for t in range(prev_tokens.size(1)):
            prev_h = state["h"]
            alpha = self.attention.weights(prev_h, keys, enc.mask)
            k = torch.bmm(alpha.unsqueeze(1), context_gates).squeeze(1)
            beta = self._gating(prev_h)
            if beta is not None:
                k = beta * k
                betas.append(beta)
            state = self.cell(x[:, t], k, state)
            out_states.append(prev_h if self.output_from_previous else state["h"])
            weights.append(alpha)
        alphas = torch.stack(weights, 1)
        contexts = torch.bmm(alphas, enc.annotations)
        if betas:
            contexts = contexts * torch.stack(betas, 1)
        logits = self.project(torch.stack(out_states, 1), embedded, contexts, target_mask)
        return DecoderOutput(logits, alphas)

    def _forward_fused(
        self,
        kernel: KernelSupport,
        embedded: Tensor,
        x: Tensor,
        enc: EncoderOutput,
        target_mask: Tensor | None,
    ) -> DecoderOutput:
        """The plain loop of :meth:`forward` as ``kernel``'s autograd function."""
        init = self.initial_cell_state(enc.summary)
        keys = self.attention.project_keys(enc.annotations)
        values = self.context_proj(enc.annotations)
        v = self.attention.v.weight.reshape(-1)
        betas = None
        if kernel is ATTENTION_LSTM:
            gate = self.gate
            states, alphas, betas = AttentionLSTMLoop.apply(
                x,
                init["h"],
                init["memory"],
                keys,
                values,
                enc.mask,
                self.attention.query.weight,
                self.cell.recurrent.weight,
                v,
                None if gate is None else gate.weight,
                None if gate is None else gate.bias,
            )
        else:
            states, alphas = AttentionGRULoop.apply(
                x,
                init["h"],
                keys,
                values,
                enc.mask,
                self.attention.query.weight,
                self.cell.recurrent_gates.weight,
                self.cell.recurrent.weight,
                v,
            )
        out_states = states[:, :-1] if self.output_from_previous else states[:, 1:]
        contexts = torch.bmm(alphas, enc.annotations)
        if self.gate is not None:
            contexts = contexts * betas
        return DecoderOutput(self.project(out_states, embedded, contexts, target_mask), alphas)

    def auxiliary_loss(
        self, attention: Tensor | None, target_mask: Tensor, source_mask: Tensor
    ) -> Tensor | None:
        """Xu et al.'s doubly stochastic regulariser ``λ Σ_i (1 - Σ_t α_ti)²``, summed over
        the batch, real target steps ``t`` and real source positions ``i``."""
        if not self.doubly_stochastic or attention is None:
            return None
        coverage = (attention * target_mask.unsqueeze(-1)).sum(dim=1)  # (B, N)
        penalty = ((1.0 - coverage) ** 2 * source_mask).sum()
        return self.doubly_stochastic * penalty
