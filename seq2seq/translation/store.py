"""Reading a prepared corpus store: its tokenizers, and each split as a data set.

Opening maps the files (:class:`~seq2seq.data.store.ragged.Ragged`); nothing is read until a
batch asks for its rows, so start-up does not grow with the corpus, and every process of a
machine shares the same pages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from seq2seq.data.store.folder import read_manifest
from seq2seq.data.store.ragged import Ragged, TextColumn, map_array
from seq2seq.data.store.tokenizer_files import load_tokenizer
from seq2seq.data.tokenizer import Tokenizer
from seq2seq.translation.dataset import Example


class CorpusStore:
    """A finished store folder (see docs/data_store.md).

    Attributes:
        folder: the store.
        manifest: its ``manifest.json``.
        src_tokenizer: the source tokenizer it was encoded with.
        tgt_tokenizer: the target tokenizer.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        files = self.manifest["tokenizers"]
        self.src_tokenizer = self._tokenizer(files["src"])
        self.tgt_tokenizer = self._tokenizer(files["tgt"])
        self._references: dict[str, TextColumn] = {}

    def _tokenizer(self, name: str) -> Tokenizer:
        return load_tokenizer(self.folder / name)

    def split(self, name: str) -> dict[str, Any]:
        """The manifest entry of split ``name`` (counts, files, arrays)."""
        return self.manifest["splits"][name]

    def pairs(self, split: str, max_len: int | None = None) -> StoredPairs:
        """Split ``split`` as a data set, pairs longer than ``max_len`` tokens left out."""
        return StoredPairs(self.folder / split, self.split(split), max_len)

    def references(self, split: str) -> TextColumn:
        """Target sentences of ``split`` in corpus order (stripped, empty pairs dropped)."""
        if split not in self._references:
            rows = Ragged(self.folder / split, "tgt_text", self.split(split)["tgt_text"])
            self._references[split] = TextColumn(rows)
        return self._references[split]

    def line_numbers(self, split: str) -> np.ndarray:
        """``(pairs,)`` int64 1-based line of each pair in the split's file(s)."""
        entry = self.split(split)
        return map_array(self.folder / split / "lines.values", np.dtype("<i8"), entry["pairs"])


class StoredPairs(Dataset[Example]):
    """The encoded pairs of one split, memory-mapped: the store-backed twin of
    :class:`~seq2seq.translation.dataset.TranslationDataset`, with the same examples, the
    same filtering (pairs longer than ``max_len`` tokens, or encoding to no token on a side,
    are left out) and the same attributes.

    Args:
        folder: the split's folder in a store.
        entry: its manifest entry.
        max_len: longest kept sequence in tokens, BOS/EOS not counted; None keeps all.

    Attributes:
        indices: ``(num,)`` int64 row in the split (the position among its non-empty pairs,
            as in the references) of each kept example.
        dropped_too_long: pairs left out for exceeding ``max_len``.
        dropped_empty: pairs left out because a side encoded to no token.
    """

    def __init__(self, folder: Path, entry: dict[str, Any], max_len: int | None = None) -> None:
        if max_len is not None and max_len < 1:
            raise ValueError(f"max_len must be >= 1 or None, got {max_len}")
        self._src = Ragged(folder, "src", entry["src"])
        self._tgt = Ragged(folder, "tgt", entry["tgt"])
        src_len, tgt_len = self._src.lengths(), self._tgt.lengths()  # int32
        too_long = np.zeros(len(src_len), dtype=bool)
        if max_len is not None:
            too_long = np.maximum(src_len, tgt_len) > max_len
        empty = ~too_long & ((src_len == 0) | (tgt_len == 0))
        self.dropped_too_long = int(too_long.sum())
        self.dropped_empty = int(empty.sum())
        # int32 rows and lengths: at millions of pairs every int64 array costs tens of MB in
        # each process (DDP ranks), and sentences are far shorter than 2^31 tokens.
        rows = np.flatnonzero(~(too_long | empty)).astype(np.int32, copy=False)
        del too_long, empty
        self._rows = rows
        kept_all = len(rows) == len(src_len)
        self._src_len = src_len if kept_all else src_len[rows]
        self._tgt_len = tgt_len if kept_all else tgt_len[rows]

    @property
    def has_target(self) -> bool:
        return True

    @property
    def indices(self) -> Tensor:
        """``(num,)`` int64 row of each kept example in the split."""
        return torch.from_numpy(self._rows.astype(np.int64))

    @property
    def src_lengths(self) -> Tensor:
        """``(num,)`` int64 source lengths in tokens."""
        return torch.from_numpy(self._src_len.astype(np.int64))

    @property
    def tgt_lengths(self) -> Tensor:
        """``(num,)`` int64 target lengths in tokens (BOS/EOS not counted)."""
        return torch.from_numpy(self._tgt_len.astype(np.int64))

    @property
    def lengths(self) -> Tensor:
        """``(num,)`` int32 padded cost of each example, for bucketing: the longer of the
        source and of the decoder sequence (target + 1). int32, not int64 as elsewhere: the
        sampler keeps it, and at millions of pairs that halves it."""
        return torch.from_numpy(np.maximum(self._src_len, self._tgt_len + 1))

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Example:
        row = int(self._rows[i])
        src = torch.from_numpy(self._src[row].astype(np.int64))
        tgt = torch.from_numpy(self._tgt[row].astype(np.int64))
        return Example(row, src, tgt)
