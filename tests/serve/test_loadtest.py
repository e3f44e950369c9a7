"""The loopback load test: a 2-second run with a few clients, every request answered."""

from __future__ import annotations

import math

import pytest

from seq2seq.serve.loadtest import LoadReport, main, run_load


def test_a_short_load_test_has_no_failures(server_url: str) -> None:
    report = run_load(server_url, clients=4, seconds=2)
    assert report.failed == 0
    assert report.requests >= 4 and len(report.latencies_s) == report.requests
    assert report.throughput > 0
    assert 0 < report.percentile(0.5) <= report.percentile(0.99) < 30
    assert "failed 0" in report.summary()


def test_the_command_line_prints_the_summary(
    server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", server_url, "--clients", "2", "--seconds", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "req/s" in out and "p99" in out and "failed 0" in out


def test_it_only_sends_to_this_machine_and_is_bounded() -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_load("http://example.com:8000", clients=1, seconds=1)
    with pytest.raises(ValueError, match="--clients"):
        run_load("http://127.0.0.1:9", clients=10_000, seconds=1)
    with pytest.raises(ValueError, match="--seconds"):
        run_load("http://127.0.0.1:9", clients=1, seconds=3600)


def test_percentiles_of_known_latencies() -> None:
    report = LoadReport(1, 1.0, 100, 0, [i / 100 for i in range(1, 101)])
    assert report.percentile(0.5) == 0.5 and report.percentile(0.99) == 0.99
    assert math.isnan(LoadReport(1, 1.0, 0, 0, []).percentile(0.5))
