"""``seq2seq-translate`` streams: a real process answers a line before its stdin is closed,
chunks keep the input order, empty lines stay, and long-line warnings count from the file's
start."""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from seq2seq.cli import translate as translate_cli
from seq2seq.search.decode import DecodeConfig
from seq2seq.translation.translator import Translator
from tests.models.test_ensemble import model, write_checkpoint

#: Ten lines of different lengths (words of the tiny vocabulary), two of them empty.
LINES = [
    "a",
    "b c d e f",
    "",
    "g h",
    "i a b c d e f g h",
    "c",
    "",
    "d e f",
    "h g f e d c b a",
    "b b",
]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return write_checkpoint(tmp_path / "model.ckpt", model(3))


def one_by_one(checkpoint: Path) -> list[str]:
    """Each line translated alone: what any chunking must reproduce, line for line."""
    translator = Translator.from_checkpoint(checkpoint, decode_config=DecodeConfig(beam_size=2))
    return [translator.translate([line])[0] for line in LINES]


def test_output_order_equals_input_order_across_chunks(checkpoint: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    translate_cli.main(
        [str(checkpoint), "-i", str(source), "-o", str(out), "--beam", "2", "--chunk-size", "3"]
    )
    outputs = out.read_text(encoding="utf-8").split("\n")[:-1]
    expected = one_by_one(checkpoint)
    assert len(set(expected)) >= 6  # distinct enough that a reordering would show
    assert outputs == expected
    assert outputs[2] == outputs[6] == ""  # empty lines kept


def test_nbest_numbers_and_warnings_count_from_the_start(
    checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(LINES), encoding="utf-8")  # no final newline
    out = tmp_path / "out.txt"
    args = [str(checkpoint), "-i", str(source), "-o", str(out), "--chunk-size", "3"]
    with caplog.at_level(logging.WARNING):
        translate_cli.main([*args, "--nbest", "2", "--max-src-len", "8"])
    numbers = [int(line.split(" ||| ")[0]) for line in out.read_text().splitlines()]
    # Two hypotheses per line; an empty line has only its empty one.
    assert numbers == [i for i, line in enumerate(LINES) for _ in range(2 if line else 1)]
    # Line 5 (9 tokens) is the second line of the second chunk.
    assert "1 input lines longer than 8 tokens were truncated (lines 5)" in caplog.text


def test_progress_on_request(checkpoint: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    translate_cli.main([str(checkpoint), "-i", str(source), "--beam", "1", "--progress"])
    captured = capsys.readouterr()
    assert len(captured.out.split("\n")) == len(LINES) + 1
    assert "translating" in captured.err and "10/10" in captured.err


def test_bad_chunk_size_is_one_line(checkpoint: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        translate_cli.main([str(checkpoint), "--chunk-size", "0"])
    assert capsys.readouterr().err.strip().endswith("--chunk-size must be at least 1, got 0")


def test_a_line_is_answered_before_stdin_is_closed(checkpoint: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "seq2seq.cli.translate", str(checkpoint), "--beam", "1"]
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        proc.stdin.write(b"a b c\n")
        proc.stdin.flush()
        try:
            first = lines.get(timeout=120)
        except queue.Empty:
            pytest.fail("no output line within 120 s while stdin stayed open")
        assert proc.poll() is None  # still running, waiting for more input
        assert first.endswith(b"\n")
        assert first.decode().rstrip("\n") == one_by_one_line(checkpoint, "a b c")
        rest, err = proc.communicate(b"\nd e\n", timeout=120)  # then stdin is closed
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert rest.decode().split("\n")[0] == ""  # the empty line
    assert len(rest.decode().split("\n")) == 3


def one_by_one_line(checkpoint: Path, line: str) -> str:
    translator = Translator.from_checkpoint(checkpoint, decode_config=DecodeConfig(beam_size=1))
    return translator.translate([line])[0]


def test_invalid_utf8_names_its_line_after_the_chunks_before(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(b"a\nb\nc\nd \xff e\n")
    out = tmp_path / "out.txt"
    with pytest.raises(SystemExit) as stop:
        translate_cli.main(
            [str(checkpoint), "-i", str(source), "-o", str(out), "--chunk-size", "3"]
        )
    assert stop.value.code == 2
    assert f"{source}, line 4: not valid UTF-8" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 3  # the first chunk was written
