"""The store-formats benchmark reads back exactly the rows it wrote, in every format (its
timings are for the benchmark to report, not for a test to judge)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seq2seq.bench import store_formats

PAIRS = 2_000


def written_rows(source: store_formats.Source) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(s.astype(np.int64), t.astype(np.int64)) for c in source.chunks() for s, t in c.rows()]


def check_format(fmt: str, tmp_path: Path) -> None:
    source = store_formats.Source(PAIRS, seed=3)
    expected = written_rows(source)
    store_formats.WRITERS[fmt](source, tmp_path / fmt)
    reader = store_formats.READERS[fmt](tmp_path / fmt)
    assert len(reader) == PAIRS
    src_len, tgt_len = reader.lengths()
    assert src_len.dtype == tgt_len.dtype == np.int64
    assert src_len.tolist() == [len(s) for s, _ in expected]
    assert tgt_len.tolist() == [len(t) for _, t in expected]
    for i in store_formats.random_indices(PAIRS, 300, seed=1):
        src, tgt = reader.row(i)
        assert src.dtype == np.int64
        np.testing.assert_array_equal(src, expected[i][0])
        np.testing.assert_array_equal(tgt, expected[i][1])
    indices = [5, 0, PAIRS - 1, 5]
    for (src, tgt), i in zip(reader.rows(indices), indices, strict=True):
        np.testing.assert_array_equal(src, expected[i][0])
        np.testing.assert_array_equal(tgt, expected[i][1])


def test_synthetic_pairs_are_deterministic_and_sentence_like() -> None:
    a, b = store_formats.synthetic_chunk(PAIRS, 7), store_formats.synthetic_chunk(PAIRS, 7)
    np.testing.assert_array_equal(a.src, b.src)
    lengths = np.concatenate([a.src_len, a.tgt_len])
    assert lengths.min() >= store_formats.MIN_LEN and lengths.max() <= store_formats.MAX_LEN
    assert 25 < a.src_len.mean() < 35
    assert a.src.max() < store_formats.VOCAB


def test_numpy_layout_reads_back_what_was_written(tmp_path) -> None:
    check_format("numpy", tmp_path)


def test_arrow_reads_back_what_was_written(tmp_path) -> None:
    pytest.importorskip("datasets")
    check_format("arrow", tmp_path)


def test_litdata_reads_back_what_was_written(tmp_path) -> None:
    pytest.importorskip("litdata")
    check_format("litdata", tmp_path)
