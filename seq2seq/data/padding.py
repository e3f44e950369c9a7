"""Teacher-forcing inputs and outputs of padded target batches, shared by both tasks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn.functional import pad
from torch.nn.utils.rnn import pad_sequence

from seq2seq.data.tokenizer import BOS, EOS, PAD


def pad_targets(targets: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Decoder input and output of ``B`` target id sequences (no BOS/EOS).

    Returns:
        ``tgt_in`` ``(B, T)``: BOS then the target; ``tgt_out`` ``(B, T)``: the target then
        EOS; both padded with PAD; and their real lengths ``(B,)`` (target length + 1).
    """
    lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    padded = pad_sequence(list(targets), batch_first=True, padding_value=PAD)  # (B, T - 1)
    tgt_in = pad(padded, (1, 0), value=BOS)  # (B, T)
    tgt_out = pad(padded, (0, 1), value=PAD)  # (B, T)
    # EOS goes right after each target, where the padding (or the extra column) starts.
    tgt_out[torch.arange(len(targets)), lengths] = EOS
    return tgt_in, tgt_out, lengths + 1
