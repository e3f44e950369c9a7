"""Reading parallel corpora: content, counts, and error messages that locate the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from seq2seq.translation.corpus import Corpus, CorpusError, read_parallel, read_tsv


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_reads_aligned_files_with_crlf_and_no_final_newline(tmp_path: Path) -> None:
    src = write(tmp_path / "train.en", b"Hello world\r\n  the cat \r\nlast line")
    tgt = write(tmp_path / "train.fr", "Bonjour le monde\n le chat\nderni\u00e8re".encode())
    corpus = read_parallel(src, tgt)
    assert isinstance(corpus, Corpus)
    assert corpus.src == ["Hello world", "the cat", "last line"]
    assert corpus.tgt == ["Bonjour le monde", "le chat", "derni\u00e8re"]
    assert corpus.dropped_empty == 0
    assert corpus.replaced_lines == 0
    assert corpus.line_numbers == [1, 2, 3]
    assert str(src) in corpus.source and str(tgt) in corpus.source


def test_final_newline_is_not_an_extra_line(tmp_path: Path) -> None:
    # One file ends with a newline, the other does not: still the same number of lines.
    src = write(tmp_path / "a.src", b"a\nb\n")
    tgt = write(tmp_path / "a.tgt", b"x\ny")
    assert len(read_parallel(src, tgt)) == 2


def test_unicode_line_separators_do_not_split_lines(tmp_path: Path) -> None:
    src = write(tmp_path / "s", "one\u2028still one\x0cand one\ntwo\n".encode())
    tgt = write(tmp_path / "t", b"1\n2\n")
    corpus = read_parallel(src, tgt)
    assert corpus.src == ["one\u2028still one\x0cand one", "two"]


def test_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    src = write(tmp_path / "s", b"\xef\xbb\xbfword\n")
    tgt = write(tmp_path / "t", b"mot\n")
    assert read_parallel(src, tgt).src == ["word"]


def test_empty_pairs_dropped_and_counted(tmp_path: Path) -> None:
    src = write(tmp_path / "s", b"a\n\nc\n   \ne\n")
    tgt = write(tmp_path / "t", b"A\nB\n\t\nD\nE\n")
    corpus = read_parallel(src, tgt)
    assert corpus.src == ["a", "e"]
    assert corpus.tgt == ["A", "E"]
    assert corpus.dropped_empty == 3
    assert corpus.line_numbers == [1, 5]


def test_missing_file_names_path(tmp_path: Path) -> None:
    src = write(tmp_path / "train.en", b"a\n")
    missing = tmp_path / "train.fr"
    with pytest.raises(CorpusError, match="not found") as info:
        read_parallel(src, missing)
    assert str(missing) in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    src = write(tmp_path / "train.en", b"a\n")
    with pytest.raises(CorpusError) as info:
        read_parallel(src, tmp_path)
    assert str(tmp_path) in str(info.value)


def test_line_count_mismatch_names_both_files_and_counts(tmp_path: Path) -> None:
    src = write(tmp_path / "train.en", b"a\nb\nc\n")
    tgt = write(tmp_path / "train.fr", b"x\ny\n")
    with pytest.raises(CorpusError) as info:
        read_parallel(src, tgt)
    message = str(info.value)
    assert str(src) in message and str(tgt) in message
    assert "3" in message and "2" in message


def test_invalid_utf8_names_file_line_and_bytes(tmp_path: Path) -> None:
    src = write(tmp_path / "train.en", b"fine\nalso fine\n")
    tgt = write(tmp_path / "train.fr", b"bien\nmal \xff\xfe ici\n")
    with pytest.raises(CorpusError) as info:
        read_parallel(src, tgt)
    message = str(info.value)
    assert f"{tgt}:2:" in message
    assert "\\xff" in message
    assert "UTF-8" in message


def test_invalid_utf8_replace_mode_counts_lines(tmp_path: Path) -> None:
    src = write(tmp_path / "s", b"ok\nbad \xff\nbad \xc3 too\nok\n")
    tgt = write(tmp_path / "t", b"1\n2\n3\n4 \x80\n")
    corpus = read_parallel(src, tgt, errors="replace")
    assert corpus.replaced_lines == 3
    assert corpus.src[1] == "bad \ufffd"
    assert corpus.src[2] == "bad \ufffd too"
    assert corpus.tgt[3] == "4 \ufffd"
    assert len(corpus) == 4


def test_invalid_errors_option(tmp_path: Path) -> None:
    src = write(tmp_path / "s", b"a\n")
    with pytest.raises(ValueError, match="errors"):
        read_parallel(src, src, errors="ignore")  # type: ignore[arg-type]


def test_tsv_reads_chosen_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.tsv", b'id1\t"Hi" there\tSalut\r\nid2\tcat\tchat\n\nid3\tx\t \n')
    corpus = read_tsv(path, src_col=1, tgt_col=2)
    assert corpus.src == ['"Hi" there', "cat"]
    assert corpus.tgt == ["Salut", "chat"]
    assert corpus.dropped_empty == 2  # the blank line and the empty target
    assert corpus.line_numbers == [1, 2]
    assert str(path) in corpus.source


def test_tsv_too_few_columns_names_file_line_and_counts(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.tsv", b"a\tb\tc\nd\te\n")
    with pytest.raises(CorpusError) as info:
        read_tsv(path, src_col=0, tgt_col=2)
    message = str(info.value)
    assert f"{path}:2:" in message
    assert "at least 3" in message and "found 2" in message


def test_tsv_invalid_utf8_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.tsv", b"a\tb\nc\t\xffd\n")
    with pytest.raises(CorpusError, match=r"pairs\.tsv:2:"):
        read_tsv(path)
    assert read_tsv(path, errors="replace").replaced_lines == 1
    with pytest.raises(CorpusError, match="nope.tsv"):
        read_tsv(tmp_path / "nope.tsv")


def test_tsv_negative_column_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "p.tsv", b"a\tb\n")
    with pytest.raises(ValueError, match="column"):
        read_tsv(path, src_col=-1)
