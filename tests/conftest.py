"""Shared fixtures: the real Hydra configs, composed and shrunk for tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict

from seq2seq.config import compose_train_config


def compose_config(base: Path, *overrides: str, debug: bool = True) -> DictConfig:
    """Compose ``conf/train.yaml`` with ``overrides`` (and ``debug=fast``), with the run
    directory and relative data directories moved under ``base``."""
    cfg = compose_train_config([*(["debug=fast"] if debug else []), *overrides])
    with open_dict(cfg):
        cfg.run_dir = str(base / "run")
        if cfg.data.get("dir") is not None and not Path(str(cfg.data.dir)).is_absolute():
            cfg.data.dir = str(base / str(cfg.data.dir))
        cfg.trainer.enable_model_summary = False
    return cfg


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Train on one thread: tiny models are no slower, and two threads on a core another
    process keeps busy are many times slower. Subprocesses get OMP_NUM_THREADS=1, so both
    compute the same floats."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def tmp_cfg(tmp_path: Path):
    """``tmp_cfg(*overrides)`` composes a config that writes under this test's tmp_path."""
    return lambda *overrides, debug=True: compose_config(tmp_path, *overrides, debug=debug)
