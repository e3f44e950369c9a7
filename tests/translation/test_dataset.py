"""Encoded datasets and collation: shapes, BOS/EOS placement, padding and dropped pairs."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from seq2seq.data.tokenizer import BOS, EOS, PAD, UNK, WordTokenizer
from seq2seq.translation.dataset import Batch, Example, TranslationDataset, collate

SRC = ["a b c", "a", "b c d e f", "c b", "d d d d"]
TGT = ["x y", "y z w", "x", "z z z z z z", "w"]


@pytest.fixture()
def toks() -> tuple[WordTokenizer, WordTokenizer]:
    return WordTokenizer.build(SRC), WordTokenizer.build(TGT)


def test_examples_hold_encoded_ids(toks: tuple[WordTokenizer, WordTokenizer]) -> None:
    src_tok, tgt_tok = toks
    data = TranslationDataset(SRC, TGT, src_tok, tgt_tok, max_len=None)
    assert len(data) == 5 and data.dropped_too_long == 0
    example = data[2]
    assert isinstance(example, Example)
    assert example.index == 2
    assert example.src.dtype == torch.long
    assert example.src.tolist() == src_tok.encode(SRC[2])
    assert example.tgt.tolist() == tgt_tok.encode(TGT[2])
    assert data.src_lengths.tolist() == [3, 1, 5, 2, 4]
    assert data.tgt_lengths.tolist() == [2, 3, 1, 6, 1]
    # Padded cost: the longer of the source and the target plus BOS/EOS.
    assert data.lengths.tolist() == [3, 4, 5, 7, 4]


def test_max_len_drops_and_keeps_indices(toks: tuple[WordTokenizer, WordTokenizer]) -> None:
    src_tok, tgt_tok = toks
    data = TranslationDataset(SRC, TGT, src_tok, tgt_tok, max_len=4)
    # Line 2 has a 5-token source, line 3 a 6-token target.
    assert data.dropped_too_long == 2
    assert data.indices.tolist() == [0, 1, 4]
    assert len(data) == 3
    assert [data[i].index for i in range(3)] == [0, 1, 4]
    assert data[2].src.tolist() == src_tok.encode(SRC[4])


def test_empty_encodings_dropped(toks: tuple[WordTokenizer, WordTokenizer]) -> None:
    src_tok, tgt_tok = toks
    data = TranslationDataset(["a", "  ", "b"], ["x", "y", ""], src_tok, tgt_tok)
    assert data.indices.tolist() == [0]
    assert data.dropped_empty == 2 and data.dropped_too_long == 0


def test_collate_shapes_bos_eos_and_padding(toks: tuple[WordTokenizer, WordTokenizer]) -> None:
    src_tok, tgt_tok = toks
    data = TranslationDataset(SRC, TGT, src_tok, tgt_tok)
    batch = collate([data[0], data[3], data[4]])
    assert isinstance(batch, Batch)
    assert batch.src.shape == (3, 4) and batch.src.dtype == torch.long
    assert batch.src_lengths.tolist() == [3, 2, 4]
    assert batch.src[1, 2:].tolist() == [PAD, PAD]
    assert batch.indices.tolist() == [0, 3, 4]

    # Longest target has 6 tokens, so decoder sequences have 7 positions.
    assert batch.tgt_in.shape == batch.tgt_out.shape == (3, 7)
    assert batch.tgt_lengths.tolist() == [3, 7, 2]
    assert (batch.tgt_in[:, 0] == BOS).all()
    t0 = tgt_tok.encode(TGT[0])
    assert batch.tgt_in[0].tolist() == [BOS, *t0, PAD, PAD, PAD, PAD]
    assert batch.tgt_out[0].tolist() == [*t0, EOS, PAD, PAD, PAD, PAD]
    t3 = tgt_tok.encode(TGT[3])
    assert batch.tgt_out[1].tolist() == [*t3, EOS]
    # Teacher forcing: the input is the output shifted right by one.
    assert torch.equal(
        batch.tgt_in[:, 1:], torch.where(batch.tgt_out == EOS, PAD, batch.tgt_out)[:, :-1]
    )
    # Real positions of tgt_out are exactly tgt_lengths.
    assert ((batch.tgt_out != PAD).sum(1) == batch.tgt_lengths).all()


def test_source_only_dataset(toks: tuple[WordTokenizer, WordTokenizer]) -> None:
    src_tok, _ = toks
    data = TranslationDataset(["a b", "c zebra a"], None, src_tok, None, max_len=10)
    assert not data.has_target and data.tgt_lengths is None
    assert data.lengths.tolist() == [2, 3]
    assert data[1].tgt is None
    batch = collate([data[0], data[1]])
    assert batch.src.shape == (2, 3)
    assert batch.src[1, 1] == UNK and batch.src[0, 2] == PAD
    assert batch.tgt_in is None and batch.tgt_out is None and batch.tgt_lengths is None


def test_batch_to_device_and_dataloader(toks: tuple[WordTokenizer, WordTokenizer]) -> None:
    src_tok, tgt_tok = toks
    data = TranslationDataset(SRC, TGT, src_tok, tgt_tok)
    loader = DataLoader(data, batch_size=2, collate_fn=collate)
    batches = list(loader)
    assert [b.indices.tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    moved = batches[0].to("cpu")
    assert isinstance(moved, Batch) and torch.equal(moved.src, batches[0].src)
    source_only = collate([TranslationDataset(["a"], None, src_tok, None)[0]]).to("cpu")
    assert source_only.tgt_in is None


def test_misaligned_texts_rejected(toks: tuple[WordTokenizer, WordTokenizer]) -> None:
    src_tok, tgt_tok = toks
    with pytest.raises(ValueError, match="aligned"):
        TranslationDataset(SRC, TGT[:-1], src_tok, tgt_tok)
