"""What the robustness tests share: one tiny translation run, trained with the network
blocked, whose checkpoints the other tests feed to the command-line tools, and which is the
uninterrupted reference of the resume test."""

from __future__ import annotations

import contextlib
import csv
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from seq2seq.cli.train import train
from tests.conftest import compose_config, one_thread

#: A debug=fast translation run with epochs of many small batches and a mid-epoch
#: checkpoint every 5 steps (the resume test kills a run after its first one).
RUN_OVERRIDES = (
    "test=false",
    "trainer.max_epochs=2",
    "checkpoint.every_n_steps=5",
    "data.max_tokens=200",
)


@dataclass
class TinyRun:
    """A finished training run."""

    base: Path  # what compose_config moved under tmp (data/, run/)
    run_dir: Path
    network_attempts: list[str]

    @property
    def last(self) -> Path:
        return self.run_dir / "checkpoints" / "last.ckpt"

    @property
    def data_dir(self) -> Path:
        return self.base / "data" / "synthetic-debug"


@contextlib.contextmanager
def no_network() -> Iterator[list[str]]:
    """Make every connection and name lookup fail, as on a machine without a network; yields
    the list of attempts."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise OSError("network disabled by the test")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "create_connection", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        yield attempts


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's ``csv/metrics.csv``."""
    with (run_dir / "csv" / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def losses(rows: list[dict[str, str]]) -> dict[int, float]:
    """``{step: train/loss}`` of the training rows."""
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def translation_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    base = tmp_path_factory.mktemp("translation_run")
    with one_thread(), no_network() as attempts:
        result = train(compose_config(base, *RUN_OVERRIDES))
    return TinyRun(base, Path(result["run_dir"]), attempts)
