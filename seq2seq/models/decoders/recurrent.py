"""What the recurrent decoders share: embeddings, the initial state, the cell and the output.

A subclass says where its context comes from at each step; the word projections of all
steps are computed in one product before the time loop and the deep output over all steps
after it, so only what depends on the previous state runs step by step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2seq.core import Decoder, DecoderState
from seq2seq.models.modules.cells import ContextCell, ContextLSTMCell
from seq2seq.models.modules.maxout import MaxoutOutput


class RecurrentDecoder(Decoder):
    """Base of the context (Cho) and attention (Bahdanau) decoders.

    Args:
        vocab_size: target vocabulary size.
        context_dim: size of the context vector that enters the cell and the output; 0 for
            none (the cell then gets a zero context term).
        summary_dim: size of the encoder summary the initial state is computed from.
        cells: the cell class for each ``cell`` name this decoder accepts.
        cell: which of ``cells`` to use (``gru`` or ``lstm``).
        embed_dim: target word embedding size.
        hidden_dim: decoder state size.
        maxout_dim: units of the maxout output layer.
        maxout_pool: pieces per maxout unit (2 in the papers; 1 makes the deep output the
            linear ``L_o(E y + L_h h + L_z z)`` of Xu et al.).
        dropout: dropout on embeddings and on the maxout units.
        pad_id: padding token id.
        init_from_summary: ``h(0) = tanh(W_s summary)``; False starts from zeros (a
            subclass then feeds the summary some other way).
        forget_bias: added to the LSTM forget gate's bias after initialisation (1 is the
            usual choice of TensorFlow's LSTM cells, Jozefowicz et al. 2015: the memory
            starts out kept rather than halved at every step); ignored by GRUs.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        context_dim: int,
        summary_dim: int,
        cells: dict[str, type[ContextCell]],
        cell: str,
        embed_dim: int,
        hidden_dim: int,
        maxout_dim: int,
        dropout: float,
        pad_id: int,
        maxout_pool: int = 2,
        init_from_summary: bool = True,
        forget_bias: float = 0.0,
    ) -> None:
        super().__init__()
        self.forget_bias = forget_bias
        if cell not in cells:
            raise ValueError(f"cell must be one of {sorted(cells)}, got {cell!r}")
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.cell = cells[cell](hidden_dim)
        gate_dim = self.cell.gates * hidden_dim
        self.input_proj = nn.Linear(embed_dim, gate_dim)  # W e(y), with the cell's biases
        self.context_proj = (
            nn.Linear(context_dim, gate_dim, bias=False) if context_dim else None
        )  # C c
        self.init_proj = (
            nn.Linear(summary_dim, self.cell.init_parts * hidden_dim) if init_from_summary else None
        )
        self.output = MaxoutOutput(
            hidden_dim,
            embed_dim,
            context_dim,
            maxout_dim,
            vocab_size,
            pool=maxout_pool,
            dropout=dropout,
        )

    @torch.no_grad()
    def after_init_(self) -> None:
        """Add ``forget_bias`` to the forget gate's bias (the LSTM's second block)."""
        if self.forget_bias and isinstance(self.cell, ContextLSTMCell):
            hidden = self.hidden_dim
            self.input_proj.bias[hidden : 2 * hidden] += self.forget_bias

    def initial_cell_state(self, summary: Tensor) -> DecoderState:
        """``h(0) = tanh(W_s summary)`` (zeros without ``init_from_summary``): ``(B, S)`` to
        the cell's state."""
        if self.init_proj is None:
            parts = self.cell.init_parts * self.hidden_dim
            return self.cell.initial(summary.new_zeros(summary.size(0), parts))
        return self.cell.initial(self.init_proj(summary).tanh())

    def embed(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Embeddings ``E y`` and their cell-input projections ``W E y`` of ``tokens``
        ``(...)``: ``(..., E)`` and ``(..., G*H)``."""
        embedded = self.dropout(self.embedding(tokens))
        return embedded, self.input_proj(embedded)

    def project(
        self,
        states: Tensor,
        embedded: Tensor,
        contexts: Tensor | None,
        target_mask: Tensor | None,
    ) -> Tensor:
        """The deep output of all steps: ``(B, T, ·)`` inputs to logits ``(B, T, V)``, or to
        ``(n, V)`` for the True positions of ``target_mask`` ``(B, T)`` only."""
        if target_mask is not None:
            states, embedded = states[target_mask], embedded[target_mask]
            contexts = None if contexts is None else contexts[target_mask]
        return self.output(states, embedded, contexts)

    @staticmethod
    def cell_state(state: DecoderState) -> DecoderState:
        """The cell's part of a decoder state (the rest is per-batch memory)."""
        return {name: value for name, value in state.items() if name in ("h", "memory")}
