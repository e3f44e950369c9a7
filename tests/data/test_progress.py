"""Long steps report their progress: periodic log lines off a terminal, a closing line."""

from __future__ import annotations

import logging

from seq2seq.data.progress import Progress


def test_off_a_terminal_progress_is_logged_with_rate_and_eta(caplog) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="seq2seq.data.progress"),
        Progress("encoding", total=4, unit="pairs", every=0.0, bar=False) as progress,
    ):
        progress.update(2)
        progress.update(2)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("encoding: 2/4 pairs (") and "/s, ETA " in lines[0]
    assert lines[1].startswith("encoding: 4/4 pairs (") and "ETA" not in lines[1]
    assert lines[2].startswith("encoding: 4 pairs in 0:00 (")


def test_a_quick_step_prints_only_its_closing_line_at_debug_level(caplog) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="seq2seq.data.progress"),
        Progress("checking images", total=3, unit="images", bar=False) as progress,
    ):
        progress.update(3)
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == [
        "checking images: 3 images"
    ]
    assert caplog.records[0].levelno == logging.DEBUG
