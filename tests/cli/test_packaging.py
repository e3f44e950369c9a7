"""The wheel ships every package and every config (pyproject.toml's explicit lists)."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_for_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "seq2seq").rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == found | {"seq2seq.conf"}
    assert setuptools["package-dir"] == {"seq2seq.conf": "conf"}
    assert "**/*.yaml" in setuptools["package-data"]["seq2seq.conf"]


def test_configs_are_found_in_the_source_tree_and_can_be_replaced(monkeypatch, tmp_path) -> None:
    from seq2seq.config import CONF_ENV, config_dir

    assert Path(config_dir()) == ROOT / "conf"
    monkeypatch.setenv(CONF_ENV, str(tmp_path))
    assert Path(config_dir()) == tmp_path
