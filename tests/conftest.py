"""Shared fixtures: the real Hydra configs, composed and shrunk for tests."""

from __future__ import annotations

from pathlib import Path

import pytest
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


@pytest.fixture
def tmp_cfg(tmp_path: Path):
    """``tmp_cfg(*overrides)`` composes a config that writes under this test's tmp_path."""
    return lambda *overrides, debug=True: compose_config(tmp_path, *overrides, debug=debug)
