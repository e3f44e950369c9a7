"""Several trained models decoding as one: an ensemble is itself an encoder and a decoder.

Every member encodes the same input and keeps its own decoder state; at each step the
members' next-token distributions are averaged and the search (greedy or beam,
:mod:`seq2seq.search`) sees one model. It drives the ensemble through the contract of
:mod:`seq2seq.core` alone, so there is no second search:

- :class:`EnsembleEncoderOutput` packs the members' encoder outputs; ``index_select``
  selects, repeats or reorders the examples of every member at once. Its own
  ``annotations``, ``mask`` and ``summary`` are the first member's, which is what search reads
  them for (the batch size, the device, the source lengths).
- :class:`EnsembleDecoder` keeps each member's state under its member's number
  (``"0.hidden"``, ``"1.hidden"``, ...), so a beam reordering reorders every member's state
  through that member's own ``reorder_state``.

Combination: the log of the mean probability, ``log (1/M) sum_m p_m(y)`` (fairseq's
ensemble). It is a distribution again (no renormalising), so the search's ``log_softmax``
leaves it unchanged and hypothesis scores are the ensemble's log-probabilities. The mean of
log-probabilities (a renormalised geometric mean) would let one member that gives a word
almost no probability veto it for all; the mixture only lowers it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from seq2seq.core import (
    Decoder,
    DecoderOutput,
    DecoderState,
    Encoder,
    EncoderOutput,
    StepOutput,
)


@dataclass
class EnsembleEncoderOutput(EncoderOutput):
    """The encoder outputs of every member of an ensemble, for the same ``B`` inputs.

    ``annotations`` ``(B, N, D)``, ``mask`` ``(B, N)``, ``summary`` ``(B, S)`` and ``grid`` are
    the first member's; ``members`` holds each member's own output (sizes may differ between
    members, the batch does not).
    """

    members: tuple[EncoderOutput, ...] = field(default=())

    @classmethod
    def pack(cls, members: Sequence[EncoderOutput]) -> EnsembleEncoderOutput:
        """Pack ``members`` (at least one, all with the same batch size)."""
        if not members:
            raise ValueError("an ensemble needs at least one encoder output")
        sizes = {m.annotations.size(0) for m in members}
        if len(sizes) != 1:
            raise ValueError(f"the members encoded different batch sizes: {sorted(sizes)}")
        first = members[0]
        return cls(
            annotations=first.annotations,
            mask=first.mask,
            summary=first.summary,
            grid=first.grid,
            members=tuple(members),
        )

    def index_select(self, order: Tensor) -> EnsembleEncoderOutput:
        """Pick, repeat or reorder examples of every member: ``order`` is ``(B',)``."""
        return self.pack([m.index_select(order) for m in self.members])


class EnsembleEncoder(Encoder):
    """Runs every member's encoder on the same input.

    Args:
        encoders: the members' encoders (at least one).
    """

    def __init__(self, encoders: Sequence[Encoder]) -> None:
        super().__init__()
        if not encoders:
            raise ValueError("an ensemble needs at least one model")
        self.members = nn.ModuleList(encoders)
        self.output_dim = encoders[0].output_dim
        self.summary_dim = encoders[0].summary_dim

    def forward(self, src: Tensor, src_lengths: Tensor | None = None) -> EnsembleEncoderOutput:
        """Encode ``src`` ``(B, N)`` token ids or ``(B, 3, H, W)`` images with every member."""
        return EnsembleEncoderOutput.pack([enc(src, src_lengths) for enc in self.members])


def mean_attention(attentions: Sequence[Tensor | None]) -> Tensor | None:
    """The mean of the members' attention when all have one of the same shape, else None
    (a member without attention, or grids of different sizes, have nothing to average)."""
    if not attentions or any(a is None for a in attentions):
        return None
    shapes = {tuple(a.shape) for a in attentions}  # type: ignore[union-attr]
    if len(shapes) != 1:
        return None
    return torch.stack(list(attentions)).mean(dim=0)  # type: ignore[arg-type]


def combine_log_probs(logits: Sequence[Tensor]) -> Tensor:
    """``log (1/M) sum_m softmax(logits_m)``: the log of the members' mean probability.

    Args:
        logits: ``M`` tensors ``(..., V)`` of unnormalised scores.

    Returns:
        ``(..., V)`` float32 (or wider) log-probabilities.
    """
    log_probs = torch.stack([torch.log_softmax(x.float(), dim=-1) for x in logits])
    if len(logits) == 1:
        return log_probs[0]
    return torch.logsumexp(log_probs, dim=0) - math.log(len(logits))


class EnsembleDecoder(Decoder):
    """Steps every member's decoder and averages their next-token distributions.

    The "logits" it returns are already the ensemble's log-probabilities (see the module
    docstring), which ``log_softmax`` leaves unchanged.

    Args:
        decoders: the members' decoders, all over the same target vocabulary.

    Raises:
        ValueError: no decoder, or target vocabularies of different sizes.
    """

    def __init__(self, decoders: Sequence[Decoder]) -> None:
        super().__init__()
        if not decoders:
            raise ValueError("an ensemble needs at least one model")
        sizes = [d.vocab_size for d in decoders]
        if len(set(sizes)) != 1:
            raise ValueError(f"the members' target vocabularies differ in size: {sizes}")
        self.members = nn.ModuleList(decoders)
        self.vocab_size = sizes[0]

    # The state of member i is kept under "i.<name>": one flat dict of tensors, as the
    # contract wants, that still says whose each tensor is.
    @staticmethod
    def _split(state: DecoderState, count: int) -> list[DecoderState]:
        parts: list[DecoderState] = [{} for _ in range(count)]
        for key, value in state.items():
            index, name = key.split(".", 1)
            parts[int(index)][name] = value
        return parts

    @staticmethod
    def _join(parts: Sequence[DecoderState]) -> DecoderState:
        return {
            f"{i}.{name}": value for i, part in enumerate(parts) for name, value in part.items()
        }

    @staticmethod
    def _members_of(enc: EncoderOutput, count: int) -> tuple[EncoderOutput, ...]:
        if not isinstance(enc, EnsembleEncoderOutput) or len(enc.members) != count:
            raise TypeError(
                f"an ensemble of {count} decoders needs the EnsembleEncoderOutput of its "
                f"{count} encoders, got {type(enc).__name__}"
            )
        return enc.members

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        members = self._members_of(enc, len(self.members))
        return self._join([d.init_state(e) for d, e in zip(self.members, members, strict=True)])

    def step(self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput) -> StepOutput:
        """One step of every member for ``prev_tokens`` ``(B,)``; logits ``(B, V)`` are the
        ensemble's log-probabilities, attention ``(B, N)`` the members' mean (or None)."""
        members = self._members_of(enc, len(self.members))
        states = self._split(state, len(self.members))
        outs = [
            d.step(prev_tokens, s, e) for d, s, e in zip(self.members, states, members, strict=True)
        ]
        return StepOutput(
            logits=combine_log_probs([o.logits for o in outs]),
            state=self._join([o.state for o in outs]),
            attention=mean_attention([o.attention for o in outs]),
        )

    def reorder_state(self, state: DecoderState, order: Tensor) -> DecoderState:
        """Every member's state follows ``order`` ``(B',)``, through its own reorder."""
        parts = self._split(state, len(self.members))
        return self._join(
            [d.reorder_state(s, order) for d, s in zip(self.members, parts, strict=True)]
        )

    def forward(
        self, prev_tokens: Tensor, enc: EncoderOutput, target_mask: Tensor | None = None
    ) -> DecoderOutput:
        """Teacher-forced ensemble log-probabilities ``(B, T, V)`` (or ``(n, V)`` under
        ``target_mask``) and mean attention ``(B, T, N)`` or None."""
        members = self._members_of(enc, len(self.members))
        outs = [d(prev_tokens, e, target_mask) for d, e in zip(self.members, members, strict=True)]
        return DecoderOutput(
            logits=combine_log_probs([o.logits for o in outs]),
            attention=mean_attention([o.attention for o in outs]),
        )
