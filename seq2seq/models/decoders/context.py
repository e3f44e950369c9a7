"""The decoder of the RNN encoder-decoder of Cho et al. (2014), Appendix A.1.2.

The encoder's fixed context ``c`` conditions every step:

- ``h'(0) = tanh(V' c)``;
- ``z' = σ(W'_z e(y_{t-1}) + U'_z h'_{t-1} + C_z c)``,
  ``r' = σ(W'_r e(y_{t-1}) + U'_r h'_{t-1} + C_r c)``,
  ``h~' = tanh(W' e(y_{t-1}) + r' ⊙ (U' h'_{t-1} + C c))``,
  ``h'_t = z' ⊙ h'_{t-1} + (1 - z') ⊙ h~'``;
- output: ``s' = O_h h'_t + O_y e(y_{t-1}) + O_c c``, maxout over pairs, softmax of ``G s``.

With ``cell: lstm`` and the image vector as ``c`` it is a Show-and-Tell (NIC) decoder fed
the image at every step. ``context_at: start`` is Vinyals et al.'s own set-up (Sec. 3.1): the
state starts at zero, the image is the input of one step before the first word,
``x_{-1} = W_e' CNN(I)`` mapped into the word-embedding space, and later steps and the output
``p_t = softmax(W h_t)`` never see it again ("feeding the image at each time step ... yielded
inferior results, as the network can explicitly exploit noise in the image and overfits").
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
from seq2seq.models.kernels.gru import CONTEXT_GRU_SUPPORT as CONTEXT_GRU
from seq2seq.models.kernels.gru import GRULayerLoop
from seq2seq.models.kernels.lstm import SUPPORT as CONTEXT_LSTM
from seq2seq.models.kernels.lstm import LSTMLoop
from seq2seq.models.kernels.support import KernelChoice, KernelSupport
from seq2seq.models.modules.cells import ChoGRUCell, ContextLSTMCell

CELLS = {"gru": ChoGRUCell, "lstm": ContextLSTMCell}
CONTEXT_AT = ("every_step", "start")


class ContextDecoder(RecurrentDecoder):
    """Fixed-vector decoder: reads only the encoder's summary ``c``.

    Args:
        vocab_size: target vocabulary size.
        summary_dim: encoder ``summary_dim``, the size of ``c``.
        embed_dim: target embedding size.
        hidden_dim: decoder state size.
        maxout_dim: maxout units.
        cell: ``gru`` (the paper) or ``lstm``.
        dropout: dropout on embeddings and maxout units.
        pad_id: padding token id.
        context_at: ``every_step`` (Cho et al.: ``c`` enters every step and the output, and
            sets the initial state) or ``start`` (Vinyals et al.: ``c`` is the input of one
            step before the first word, and nowhere else).
        maxout_pool: pieces per maxout unit; 1 gives a linear output layer (NIC's
            ``softmax(W h_t)`` behind one hidden layer).
        forget_bias: added to an LSTM's forget-gate bias after initialisation.
        fused: run the teacher-forced loop as one autograd function
            (:mod:`seq2seq.models.kernels.gru` for the GRU, :mod:`~seq2seq.models.kernels.lstm`
            for the LSTM: same results, faster on the CPU). Each kernel states the options it
            supports (its ``SUPPORT``); anything else, and autocast, uses the plain loop.
    """

    def __init__(
        self,
        vocab_size: int,
        summary_dim: int,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        maxout_dim: int = 256,
        cell: str = "gru",
        dropout: float = 0.0,
        pad_id: int = 0,
        context_at: str = "every_step",
        maxout_pool: int = 2,
        forget_bias: float = 0.0,
        fused: bool = True,
    ) -> None:
        if context_at not in CONTEXT_AT:
            raise ValueError(f"context_at must be one of {CONTEXT_AT}, got {context_at!r}")
        at_start = context_at == "start"
        super().__init__(
            vocab_size=vocab_size,
            context_dim=0 if at_start else summary_dim,
            summary_dim=summary_dim,
            cells=CELLS,
            cell=cell,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            maxout_dim=maxout_dim,
            dropout=dropout,
            pad_id=pad_id,
            init_from_summary=not at_start,
            maxout_pool=maxout_pool,
            forget_bias=forget_bias,
        )
        self.context_at = context_at
        self.fused = fused
        self.kernels = KernelChoice(
            type(self).__name__,
            (CONTEXT_GRU, CONTEXT_LSTM),
            {
                "cell": cell,
                "context_at": context_at,
                "maxout_pool": maxout_pool,
                "forget_bias": forget_bias,
                "dropout": dropout,
            },
        )
        # W_e': the image into the word-embedding space, read once as the input x_{-1}.
        self.image_proj = nn.Linear(summary_dim, embed_dim) if at_start else None

    @classmethod
    def from_encoder(cls, encoder: Encoder, vocab: Vocabularies, **options: Any) -> Decoder:
        """Sized from the encoder's summary, the only thing this decoder reads."""
        return cls(
            vocab_size=vocab.target, summary_dim=encoder.summary_dim, pad_id=vocab.pad_id, **options
        )

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        """``h'(0)`` and the context term ``C c`` of every step (``context_keys``,
        ``(B, G*H)``), computed once per batch; with ``context_at: start`` the state after the
        image step, and a zero context term."""
        state = self.initial_cell_state(enc.summary)
        if self.image_proj is None:
            state["context_keys"] = self.context_proj(enc.summary)
            return state
        image_input = self.input_proj(self.dropout(self.image_proj(enc.summary)))
        state["context_keys"] = torch.zeros_like(image_input)
        return self._advance(image_input, state)

    def _output_context(self, summary: Tensor) -> Tensor | None:
        return None if self.image_proj is not None else summary

    def _advance(self, x: Tensor, state: DecoderState) -> DecoderState:
        new_state = self.cell(x, state["context_keys"], self.cell_state(state))
        new_state["context_keys"] = state["context_keys"]
        return new_state

    def can_fuse(self, device_type: str) -> bool:
        """Whether :meth:`forward` takes a fused kernel (see ``fused`` and :attr:`kernels`)."""
        return self.kernels.use(device_type, self.fused) is not None

    def _states_fused(self, kernel: KernelSupport, x: Tensor, state: DecoderState) -> Tensor:
        """``h'_1 .. h'_T`` ``(B, T, H)`` from the input projections ``x`` ``(B, T, G*H)``.

        The LSTM adds its constant context term to every step's input projection.

        Cho's cell is PyTorch's GRU with the context term ``C c`` where PyTorch has its
        recurrent biases (``C_h c`` inside the reset product, as ``b_hn`` is) and the
        gates in the order ``z, r, h`` rather than ``r, z, n``.
        """
        if kernel is CONTEXT_LSTM:
            gi = x + state["context_keys"].unsqueeze(1)
            return LSTMLoop.apply(gi, state["h"], state["memory"], self.cell.recurrent.weight)
        hidden = self.hidden_dim
        order = torch.cat(
            [
                torch.arange(hidden, 2 * hidden),
                torch.arange(hidden),
                torch.arange(2 * hidden, 3 * hidden),
            ]
        ).to(x.device)
        keys = state["context_keys"]
        gate_keys = torch.cat([keys[:, : 2 * hidden], torch.zeros_like(keys[:, 2 * hidden :])], 1)
        candidate_keys = torch.cat(
            [torch.zeros_like(keys[:, : 2 * hidden]), keys[:, 2 * hidden :]], 1
        )
        gi = (x + gate_keys.unsqueeze(1)).index_select(2, order)
        w_hh = self.cell.recurrent.weight.index_select(0, order)
        steps = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        outputs, _ = GRULayerLoop.apply(
            gi.unsqueeze(0),
            state["h"].unsqueeze(0),
            steps,
            w_hh.unsqueeze(0),
            candidate_keys.index_select(1, order).unsqueeze(0),
        )
        return outputs[0]

    def step(self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput) -> StepOutput:
        embedded, x = self.embed(prev_tokens)
        new_state = self._advance(x, state)
        logits = self.output(new_state["h"], embedded, self._output_context(enc.summary))
        return StepOutput(logits, new_state, None)

    def forward(
        self, prev_tokens: Tensor, enc: EncoderOutput, target_mask: Tensor | None = None
    ) -> DecoderOutput:
        embedded, x = self.embed(prev_tokens)
        state = self.init_state(enc)
        kernel = self.kernels.use(x.device.type, self.fused)
        if kernel is not None:
            states = self._states_fused(kernel, x, state)
        else:
            steps = []
            for t in range(prev_tokens.size(1)):
                state = self._advance(x[:, t], state)
                steps.append(state["h"])
            states = torch.stack(steps, 1)
        context = self._output_context(enc.summary)
        if context is not None:
            context = context.unsqueeze(1).expand(-1, prev_tokens.size(1), -1)
        logits = self.project(states, embedded, context, target_mask)
        return DecoderOutput(logits, None)
