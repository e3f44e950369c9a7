"""The decoder of the RNN encoder-decoder of Cho et al. (2014), Appendix A.1.2.

The encoder's fixed context ``c`` conditions every step:

- ``h'(0) = tanh(V' c)``;
- ``z' = σ(W'_z e(y_{t-1}) + U'_z h'_{t-1} + C_z c)``,
  ``r' = σ(W'_r e(y_{t-1}) + U'_r h'_{t-1} + C_r c)``,
  ``h~' = tanh(W' e(y_{t-1}) + r' ⊙ (U' h'_{t-1} + C c))``,
  ``h'_t = z' ⊙ h'_{t-1} + (1 - z') ⊙ h~'``;
- output: ``s' = O_h h'_t + O_y e(y_{t-1}) + O_c c``, maxout over pairs, softmax of ``G s``.

With ``cell: lstm`` and the image vector as ``c`` it is the Show-and-Tell (NIC) decoder fed
the image at every step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seq2seq.core import DecoderOutput, DecoderState, EncoderOutput, StepOutput
from seq2seq.decoders.recurrent import RecurrentDecoder
from seq2seq.modules.cells import ChoGRUCell, ContextLSTMCell

CELLS = {"gru": ChoGRUCell, "lstm": ContextLSTMCell}


class ContextDecoder(RecurrentDecoder):
    """Fixed-vector decoder: reads only the encoder's summary ``c``.

    Args:
        vocab_size: target vocabulary size.
        annotation_dim: encoder ``output_dim`` (unused: this decoder never looks at the
            annotations; accepted so that every decoder is built the same way).
        summary_dim: encoder ``summary_dim``, the size of ``c``.
        embed_dim: target embedding size.
        hidden_dim: decoder state size.
        maxout_dim: maxout units.
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
        maxout_dim: int = 256,
        cell: str = "gru",
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        super().__init__(
            vocab_size=vocab_size,
            context_dim=summary_dim,
            summary_dim=summary_dim,
            cells=CELLS,
            cell=cell,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            maxout_dim=maxout_dim,
            dropout=dropout,
            pad_id=pad_id,
        )

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        """``h'(0)`` and ``C c`` (``context_keys``, ``(B, G*H)``), computed once per batch."""
        state = self.initial_cell_state(enc.summary)
        state["context_keys"] = self.context_proj(enc.summary)
        return state

    def _advance(self, x: Tensor, state: DecoderState) -> DecoderState:
        new_state = self.cell(x, state["context_keys"], self.cell_state(state))
        new_state["context_keys"] = state["context_keys"]
        return new_state

    def step(self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput) -> StepOutput:
        embedded, x = self.embed(prev_tokens)
        new_state = self._advance(x, state)
        logits = self.output(new_state["h"], embedded, enc.summary)  # reads h'_t
        return StepOutput(logits, new_state, None)

    def forward(self, prev_tokens: Tensor, enc: EncoderOutput) -> DecoderOutput:
        embedded, x = self.embed(prev_tokens)
        state = self.init_state(enc)
        states = []
        for t in range(prev_tokens.size(1)):
            state = self._advance(x[:, t], state)
            states.append(state["h"])
        context = enc.summary.unsqueeze(1).expand(-1, prev_tokens.size(1), -1)
        return DecoderOutput(self.output(torch.stack(states, 1), embedded, context), None)
