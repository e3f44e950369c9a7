"""The contracts every encoder and decoder keeps, so that one search serves every model.

An encoder turns a batch of inputs (token ids, images) into an :class:`EncoderOutput`:
one annotation per source position (a word, or a cell of a CNN's grid), a mask saying which
positions are real, and one summary vector per example.

A decoder offers three things and search touches nothing else:

- :meth:`Decoder.init_state` builds the state before the first target token;
- :meth:`Decoder.step` consumes one token per hypothesis and returns next-token logits;
- :meth:`Decoder.reorder_state` follows beams as they are reordered, shrunk or expanded.

The teacher-forced :meth:`Decoder.forward` must give the same logits as running ``step`` over
the target one token at a time (the contract tests check this for every decoder).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

#: A decoder's recurrent state: named tensors whose first dimension is the batch.
DecoderState = dict[str, Tensor]


@dataclass
class EncoderOutput:
    """What an encoder hands to a decoder.

    Attributes:
        annotations: ``(B, N, D)`` one vector per source position; zero at padding.
        mask: ``(B, N)`` bool, True at real positions.
        summary: ``(B, S)`` one fixed vector per example (Cho's ``c``, Bahdanau's backward
            state at position 1, NIC's pooled image vector).
        grid: ``(H, W)`` when the positions are the cells of an image grid (``N = H*W``).
    """

    annotations: Tensor
    mask: Tensor
    summary: Tensor
    grid: tuple[int, int] | None = field(default=None)

    def index_select(self, order: Tensor) -> EncoderOutput:
        """Pick, repeat or reorder examples: ``order`` is ``(B',)`` indices into the batch."""
        return EncoderOutput(
            annotations=self.annotations.index_select(0, order),
            mask=self.mask.index_select(0, order),
            summary=self.summary.index_select(0, order),
            grid=self.grid,
        )

    @property
    def lengths(self) -> Tensor:
        """``(B,)`` number of real positions of each example."""
        return self.mask.sum(dim=1)


@dataclass(frozen=True)
class Vocabularies:
    """What the model builder knows besides the config: the vocabularies' sizes.

    Attributes:
        source: source vocabulary size; 0 when the source is not text (images).
        target: target vocabulary size.
        pad_id: the padding token id, shared by both.
    """

    source: int
    target: int
    pad_id: int = 0


class Encoder(nn.Module, ABC):
    """Base class of encoders; subclasses set ``output_dim`` and ``summary_dim``.

    :meth:`from_config` is how :func:`seq2seq.model.build_model` builds every encoder: from
    its config options and the :class:`Vocabularies`, of which each class reads what it needs
    (an encoder of text its source vocabulary, a CNN nothing).
    """

    #: Size D of each annotation.
    output_dim: int
    #: Size S of the summary vector.
    summary_dim: int

    @classmethod
    def from_config(cls, vocab: Vocabularies, **options: Any) -> Encoder:
        """Build from the config's ``options``; the default reads nothing of ``vocab``."""
        return cls(**options)

    @abstractmethod
    def forward(self, src: Tensor, src_lengths: Tensor | None = None) -> EncoderOutput:
        """Encode a batch; ``src`` is ``(B, N)`` token ids or ``(B, 3, H, W)`` images."""


class StepOutput(NamedTuple):
    """One decoding step for a batch of hypotheses.

    Attributes:
        logits: ``(B, V)`` unnormalised scores of the next token.
        state: the state after consuming the token.
        attention: ``(B, N)`` attention weights used for this step, or None for decoders
            that read only the summary.
    """

    logits: Tensor
    state: DecoderState
    attention: Tensor | None


class DecoderOutput(NamedTuple):
    """Teacher-forced decoding of a whole target.

    Attributes:
        logits: ``(B, T, V)``, or ``(n, V)`` at the positions of a ``target_mask``.
        attention: ``(B, T, N)`` or None.
    """

    logits: Tensor
    attention: Tensor | None


class Decoder(nn.Module, ABC):
    """Base class of decoders; subclasses set ``vocab_size``.

    :meth:`from_encoder` is how :func:`seq2seq.model.build_model` builds every decoder: from
    its config options, the built encoder (whose sizes it reads, so no size is written twice)
    and the :class:`Vocabularies`.
    """

    vocab_size: int

    @classmethod
    def from_encoder(cls, encoder: Encoder, vocab: Vocabularies, **options: Any) -> Decoder:
        """Build for ``encoder``'s outputs; the default passes the target vocabulary size and
        the padding id (``vocab_size``, ``pad_id``) and reads nothing of the encoder."""
        return cls(vocab_size=vocab.target, pad_id=vocab.pad_id, **options)

    @abstractmethod
    def init_state(self, enc: EncoderOutput) -> DecoderState:
        """State before the first target token (from the summary and/or annotations)."""

    @abstractmethod
    def step(self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput) -> StepOutput:
        """Consume ``prev_tokens`` ``(B,)`` and score the next token."""

    @abstractmethod
    def forward(
        self, prev_tokens: Tensor, enc: EncoderOutput, target_mask: Tensor | None = None
    ) -> DecoderOutput:
        """Teacher-forced pass: ``prev_tokens`` ``(B, T)`` is BOS followed by the target
        without its last token; returns logits ``(B, T, V)`` for the target, or, given
        ``target_mask`` ``(B, T)``, logits ``(n, V)`` for its ``n`` True positions in row-major
        order (the loss then skips the output layer at padding)."""

    def reorder_state(self, state: DecoderState, order: Tensor) -> DecoderState:
        """Select hypotheses ``order`` ``(B',)`` from every tensor of the state."""
        return {name: value.index_select(0, order) for name, value in state.items()}

    def auxiliary_loss(
        self, attention: Tensor | None, target_mask: Tensor, source_mask: Tensor
    ) -> Tensor | None:
        """An extra training loss (summed, like the token loss) computed from the attention
        ``(B, T, N)``, with masks of the real target steps ``(B, T)`` and source positions
        ``(B, N)`` (Xu et al.'s doubly stochastic regulariser); None when there is none."""
        return None


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """``(B,)`` lengths to a ``(B, max_len)`` bool mask, True at real positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
