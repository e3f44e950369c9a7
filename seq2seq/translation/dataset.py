"""Sentence pairs encoded once into token ids, and their collation into padded batches.

Encoding happens at construction so that workers and epochs only slice tensors. The ids of
all sentences live in one flat tensor plus offsets rather than one tensor per sentence:
millions of small tensors cost memory, and DataLoader workers would touch (and copy) every
one of their reference counts.
"""

from __future__ import annotations

import array
import itertools
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from seq2seq.data.padding import pad_targets
from seq2seq.data.progress import Progress
from seq2seq.data.tokenizer import PAD, Tokenizer


class Example(NamedTuple):
    """One encoded pair.

    Attributes:
        index: position of the pair in the texts the dataset was built from.
        src: ``(N,)`` int64 source ids, no BOS/EOS.
        tgt: ``(T,)`` int64 target ids, no BOS/EOS; None for source-only datasets.
    """

    index: int
    src: Tensor
    tgt: Tensor | None


class Batch(NamedTuple):
    """Padded examples; Lightning moves it to the device like any tuple of tensors.

    Attributes:
        src: ``(B, N)`` int64 source ids, padded with PAD.
        src_lengths: ``(B,)`` int64 real source lengths.
        tgt_in: ``(B, T)`` int64 decoder input, BOS followed by the target, padded with PAD.
        tgt_out: ``(B, T)`` int64 decoder output, the target followed by EOS, padded with PAD.
        tgt_lengths: ``(B,)`` int64 real lengths of ``tgt_in``/``tgt_out`` (target + 1).
        indices: ``(B,)`` int64 ``Example.index`` of each row, to put outputs back in order.
    """

    src: Tensor
    src_lengths: Tensor
    tgt_in: Tensor | None
    tgt_out: Tensor | None
    tgt_lengths: Tensor | None
    indices: Tensor

    def to(self, device: torch.device | str, non_blocking: bool | None = None) -> Batch:
        """Copy every tensor to ``device``.

        ``non_blocking`` defaults to True for accelerators: a host-to-device copy is ordered
        before later kernels on the same stream, so it is safe and overlaps with compute.
        """
        device = torch.device(device)
        if non_blocking is None:
            non_blocking = device.type not in ("cpu", "mps")
        return Batch(
            *(None if t is None else t.to(device, non_blocking=non_blocking) for t in self)
        )


class _Packed:
    """Variable-length id sequences stored as one flat tensor plus offsets."""

    def __init__(self, sequences: Sequence[Sequence[int]]) -> None:
        lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
        self.lengths = lengths  # (num,)
        self.offsets = torch.zeros(len(sequences) + 1, dtype=torch.long)  # (num + 1,)
        torch.cumsum(lengths, dim=0, out=self.offsets[1:])
        # An int64 array packs the ids without a temporary list of Python ints (28 bytes each).
        flat = array.array("q", itertools.chain.from_iterable(sequences))
        self.flat = torch.frombuffer(flat, dtype=torch.long) if flat else torch.zeros(0).long()

    def __getitem__(self, i: int) -> Tensor:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]


class TranslationDataset(Dataset[Example]):
    """Encoded sentence pairs, or source sentences alone for translating new input.

    Pairs whose source or target is longer than ``max_len`` tokens are dropped, and so are
    those encoding to no token on either side (an encoder cannot read an empty sequence).
    ``indices`` maps each kept example back to its position in the input texts.

    Args:
        src_texts: source sentences.
        tgt_texts: target sentences aligned with ``src_texts``, or None (source only).
        src_tok: tokenizer of the source.
        tgt_tok: tokenizer of the target; unused (may be None) when ``tgt_texts`` is None.
        max_len: longest kept sequence in tokens, BOS/EOS not counted; None keeps all.

    Attributes:
        indices: ``(num,)`` int64 position in the input texts of each kept example.
        dropped_too_long: pairs dropped for exceeding ``max_len``.
        dropped_empty: pairs dropped because a side encoded to no token.
    """

    def __init__(
        self,
        src_texts: Sequence[str],
        tgt_texts: Sequence[str] | None,
        src_tok: Tokenizer,
        tgt_tok: Tokenizer | None,
        max_len: int | None = None,
    ) -> None:
        if tgt_texts is not None and len(tgt_texts) != len(src_texts):
            raise ValueError(
                f"{len(src_texts)} source texts but {len(tgt_texts)} target texts; "
                "they must be aligned"
            )
        if tgt_texts is not None and tgt_tok is None:
            raise ValueError("tgt_tok is required when tgt_texts is given")
        if max_len is not None and max_len < 1:
            raise ValueError(f"max_len must be >= 1 or None, got {max_len}")
        src_ids = _encode(src_tok, src_texts, "source")
        tgt_ids = None if tgt_texts is None else _encode(tgt_tok, tgt_texts, "target")

        keep: list[int] = []
        self.dropped_too_long = self.dropped_empty = 0
        for i, src in enumerate(src_ids):
            # Source-only: the source stands in for the target in the checks.
            tgt = src if tgt_ids is None else tgt_ids[i]
            if max_len is not None and max(len(src), len(tgt)) > max_len:
                self.dropped_too_long += 1
            elif not src or not tgt:
                self.dropped_empty += 1
            else:
                keep.append(i)
        self.indices = torch.tensor(keep, dtype=torch.long)
        self._src = _Packed([src_ids[i] for i in keep])
        self._tgt = None if tgt_ids is None else _Packed([tgt_ids[i] for i in keep])

    @property
    def has_target(self) -> bool:
        """Whether examples carry a target."""
        return self._tgt is not None

    @property
    def src_lengths(self) -> Tensor:
        """``(num,)`` int64 source lengths in tokens."""
        return self._src.lengths

    @property
    def tgt_lengths(self) -> Tensor | None:
        """``(num,)`` int64 target lengths in tokens (BOS/EOS not counted), or None."""
        return None if self._tgt is None else self._tgt.lengths

    @property
    def lengths(self) -> Tensor:
        """``(num,)`` int64 padded cost of each example, for bucketing by length.

        The longer of the source and of the decoder sequence (target + 1, for BOS or EOS).
        """
        if self._tgt is None:
            return self._src.lengths
        return torch.maximum(self._src.lengths, self._tgt.lengths + 1)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Example:
        tgt = None if self._tgt is None else self._tgt[i]
        return Example(int(self.indices[i]), self._src[i], tgt)


#: Sentences encoded per call: large enough for SentencePiece's threads, small enough for the
#: progress display to move.
ENCODE_CHUNK = 20_000


def _encode(tokenizer: Tokenizer, texts: Sequence[str], side: str) -> list[list[int]]:
    """Token ids of ``texts``, chunk by chunk, with progress shown for a large corpus."""
    ids: list[list[int]] = []
    with Progress(f"encoding the {side} sentences", total=len(texts), unit="sentences") as shown:
        for start in range(0, len(texts), ENCODE_CHUNK):
            chunk = texts[start : start + ENCODE_CHUNK]
            ids.extend(tokenizer.encode_batch(chunk))
            shown.update(len(chunk))
    return ids


def collate(examples: Sequence[Example]) -> Batch:
    """Pad examples into a :class:`Batch` (see its attributes for the shapes)."""
    src = [e.src for e in examples]
    src_lengths = torch.tensor([len(s) for s in src], dtype=torch.long)
    indices = torch.tensor([e.index for e in examples], dtype=torch.long)
    src_padded = pad_sequence(src, batch_first=True, padding_value=PAD)  # (B, N)
    if examples[0].tgt is None:
        return Batch(src_padded, src_lengths, None, None, None, indices)

    tgt_in, tgt_out, tgt_lengths = pad_targets([e.tgt for e in examples])
    return Batch(src_padded, src_lengths, tgt_in, tgt_out, tgt_lengths, indices)
