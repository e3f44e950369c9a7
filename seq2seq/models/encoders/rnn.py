"""Recurrent text encoders.

- :class:`BiGRUEncoder` (Bahdanau et al. 2015, Sec. 3.2): a forward and a backward GRU read
  the source; the annotation of word ``j`` is ``h_j = [fwd_j; bwd_j]``. The summary is
  ``bwd_1``, the backward state at the first word, from which the decoder's initial state
  ``s_0 = tanh(W_s bwd_1)`` is computed.
- :class:`GRUEncoder` (Cho et al. 2014, Sec. 2.2): one GRU reads the source and its last
  state ``h_N`` is compressed into the fixed context ``c = tanh(V h_N)``.

Padding never enters a recurrence: the annotations at padded positions are exactly zero and
the summaries come from the last real word of each sentence. On GPUs the GRUs run as cuDNN
kernels over packed sequences; on the CPU (``fused``) as
:func:`~seq2seq.models.kernels.gru.fused_gru`, both directions in one loop with a hand-written
backward: the same results from the same parameters in much less time.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.core import Encoder, EncoderOutput, Vocabularies, lengths_to_mask
from seq2seq.models.kernels.gru import fused_gru


class _RecurrentEncoder(Encoder):
    """Embeddings and a (bi)directional GRU over packed sequences, shared by both encoders."""

    @classmethod
    def from_config(cls, vocab: Vocabularies, **options: Any) -> Encoder:
        """An encoder of text embeds the source vocabulary, with its padding id."""
        return cls(vocab_size=vocab.source, pad_id=vocab.pad_id, **options)

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        dropout: float,
        pad_id: int,
        bidirectional: bool,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.fused = fused
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(
            embed_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    def run(self, src: Tensor, src_lengths: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Embed and run the GRU over ``src`` ``(B, N)`` with true lengths ``(B,)``.

        Returns:
            outputs ``(B, N, dirs*H)`` (zero at padding), final states ``(layers*dirs, B, H)``
            taken at each sentence's last real word, and the mask ``(B, N)``.
        """
        if src_lengths is None:
            src_lengths = torch.full((src.size(0),), src.size(1), device=src.device)
        embedded = self.dropout(self.embedding(src))
        mask = lengths_to_mask(src_lengths.to(src.device), src.size(1))
        if self.fused and src.device.type == "cpu" and not torch.is_autocast_enabled("cpu"):
            outputs, final = fused_gru(self.rnn, embedded, src_lengths)
            return outputs, final, mask
        packed = pack_padded_sequence(
            embedded, src_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, final = self.rnn(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.size(1))
        return outputs, final, mask


class BiGRUEncoder(_RecurrentEncoder):
    """Bidirectional GRU encoder of RNNsearch.

    Args:
        vocab_size: source vocabulary size.
        embed_dim: word embedding size (620 in the paper).
        hidden_dim: units per direction (1000 in the paper); annotations have ``2*hidden_dim``.
        num_layers: stacked layers (the paper uses 1).
        dropout: dropout on embeddings and between layers.
        pad_id: padding token id.
        fused: on the CPU, run the GRU as :func:`~seq2seq.models.kernels.gru.fused_gru`.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
        fused: bool = True,
    ) -> None:
        super().__init__(
            vocab_size, embed_dim, hidden_dim, num_layers, dropout, pad_id, True, fused
        )
        self.output_dim = 2 * hidden_dim
        self.summary_dim = hidden_dim

    def forward(self, src: Tensor, src_lengths: Tensor | None = None) -> EncoderOutput:
        """Encode ``src`` ``(B, N)`` token ids with lengths ``(B,)``.

        Returns:
            annotations ``(B, N, 2H)``, mask ``(B, N)``, summary ``bwd_1`` ``(B, H)``.
        """
        annotations, final, mask = self.run(src, src_lengths)
        # final[-1] is the top layer's backward direction after it has read the whole
        # sentence right to left, i.e. its state at word 1: the paper's bwd_1.
        return EncoderOutput(annotations=annotations, mask=mask, summary=final[-1])


class GRUEncoder(_RecurrentEncoder):
    """Unidirectional GRU encoder of the RNN encoder-decoder, with ``c = tanh(V h_N)``.

    Args:
        vocab_size: source vocabulary size.
        embed_dim: word embedding size.
        hidden_dim: GRU units; also the size of ``c`` unless ``context_dim`` is given.
        num_layers: stacked layers.
        dropout: dropout on embeddings and between layers.
        pad_id: padding token id.
        context_dim: size of the summary ``c``.
        fused: on the CPU, run the GRU as :func:`~seq2seq.models.kernels.gru.fused_gru`.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
        context_dim: int | None = None,
        fused: bool = True,
    ) -> None:
        super().__init__(
            vocab_size, embed_dim, hidden_dim, num_layers, dropout, pad_id, False, fused
        )
        context_dim = context_dim or hidden_dim
        self.to_context = nn.Linear(hidden_dim, context_dim)  # V
        self.output_dim = hidden_dim
        self.summary_dim = context_dim

    def forward(self, src: Tensor, src_lengths: Tensor | None = None) -> EncoderOutput:
        """Encode ``src`` ``(B, N)``; returns annotations ``(B, N, H)`` and ``c`` ``(B, C)``."""
        annotations, final, mask = self.run(src, src_lengths)
        summary = torch.tanh(self.to_context(final[-1]))
        return EncoderOutput(annotations=annotations, mask=mask, summary=summary)
