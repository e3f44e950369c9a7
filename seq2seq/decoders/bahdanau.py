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
ordering); this one follows the paper. With ``cell: lstm`` the same attention drives an
LSTM, the Show-Attend-Tell decoder (Xu et al. 2015).
"""

from __future__ import annotations

import torch
from torch import Tensor

from seq2seq.core import DecoderOutput, DecoderState, EncoderOutput, StepOutput
from seq2seq.decoders.recurrent import RecurrentDecoder
from seq2seq.modules.attention import AdditiveAttention
from seq2seq.modules.cells import BahdanauGRUCell, ContextLSTMCell

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
    ) -> None:
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
        )
        self.attention = AdditiveAttention(hidden_dim, annotation_dim, attention_dim)

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        """``s_0`` and ``U_a h_j`` (``keys``, ``(B, N, A)``), computed once per batch."""
        state = self.initial_cell_state(enc.summary)
        state["keys"] = self.attention.project_keys(enc.annotations)
        return state

    def _advance(
        self, x: Tensor, state: DecoderState, enc: EncoderOutput
    ) -> tuple[DecoderState, Tensor, Tensor]:
        """Attend from ``s_{i-1}`` and update the state; ``x`` ``(B, 3H)`` is ``W E y_{i-1}``.

        Returns the new state, the context ``c_i`` ``(B, D)`` and ``α_i`` ``(B, N)``.
        """
        context, weights = self.attention(state["h"], state["keys"], enc.annotations, enc.mask)
        new_state = self.cell(x, self.context_proj(context), self.cell_state(state))
        new_state["keys"] = state["keys"]
        return new_state, context, weights

    def step(self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput) -> StepOutput:
        embedded, x = self.embed(prev_tokens)
        new_state, context, weights = self._advance(x, state, enc)
        logits = self.output(state["h"], embedded, context)  # reads s_{i-1}, not s_i
        return StepOutput(logits, new_state, weights)

    def forward(self, prev_tokens: Tensor, enc: EncoderOutput) -> DecoderOutput:
        embedded, x = self.embed(prev_tokens)
        state = self.init_state(enc)
        keys = state.pop("keys")
        # C c_i = C Σ_j α_ij h_j = Σ_j α_ij (C h_j): projecting the annotations once per batch
        # leaves only a (B, N) x (N, 3H) product per step instead of a (D, 3H) matrix product,
        # and the contexts themselves are needed only by the output layer, after the loop.
        context_gates = self.context_proj(enc.annotations)
        prev_states, weights = [], []
        for t in range(prev_tokens.size(1)):
            prev_states.append(state["h"])
            alpha = self.attention.weights(state["h"], keys, enc.mask)
            k = torch.bmm(alpha.unsqueeze(1), context_gates).squeeze(1)
            state = self.cell(x[:, t], k, state)
            weights.append(alpha)
        alphas = torch.stack(weights, 1)
        contexts = torch.bmm(alphas, enc.annotations)
        logits = self.output(torch.stack(prev_states, 1), embedded, contexts)
        return DecoderOutput(logits, alphas)
