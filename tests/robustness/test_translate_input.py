"""``seq2seq-translate`` on awkward input: one output line per input line, whatever the line
holds, and over-long lines cut with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

from seq2seq.cli import translate as translate_cli
from tests.robustness.conftest import TinyRun

LINES = [
    "the dog runs .",
    "",
    "   ",
    " ".join(["the cat"] * 30) + " .",  # 61 tokens, past --max-src-len 20
    "zebra 🦓 sees 😀😀 .",
    "斑马 看见 一只 猫 。",
    "the\x07 cat\x1b[31m \x00sleeps\t.",
    "\x01\x02\x7f",
    "the cats sleep .",  # the file ends here, without a newline
]


def test_one_output_line_per_input_line(translation_run: TinyRun, tmp_path: Path, caplog) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes("\n".join(LINES).encode("utf-8"))
    out = tmp_path / "out.txt"
    args = [str(translation_run.last), "-i", str(source), "-o", str(out), "--beam", "2"]
    with caplog.at_level(logging.WARNING):
        translate_cli.main([*args, "--max-src-len", "20"])
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n")
    outputs = text.split("\n")[:-1]
    assert len(outputs) == len(LINES)
    assert outputs[1] == outputs[2] == ""  # empty in, empty out
    assert all("\n" not in line for line in outputs)
    assert "1 input lines longer than 20 tokens were truncated (lines 4)" in caplog.text


def test_crlf_input_and_stdin(translation_run: TinyRun, monkeypatch, capsys) -> None:
    import io
    import sys

    stdin = io.TextIOWrapper(io.BytesIO(b"the dog runs .\r\n\r\nthe cat .\r\n"))
    monkeypatch.setattr(sys, "stdin", stdin)
    translate_cli.main([str(translation_run.last), "--beam", "1"])
    outputs = capsys.readouterr().out.split("\n")
    assert len(outputs) == 4 and outputs[1] == "" and outputs[3] == ""
