"""Where ``seq2seq-train``'s Hydra configs are, and composing them outside Hydra's main.

The configs live in the top-level ``conf/`` folder of the source tree. A wheel ships that
folder as the package data ``seq2seq/conf`` (``package-dir`` in ``pyproject.toml``), so an
installed ``seq2seq-train`` finds its configs beside its code; an editable install or a
source checkout finds the folder at the top of the tree. ``SEQ2SEQ_CONF_DIR`` replaces the
whole tree with a user's own copy; ``--config-dir`` (Hydra's) adds a folder whose configs are
found before the shipped ones.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

#: The environment variable naming a config tree that replaces the shipped one.
CONF_ENV = "SEQ2SEQ_CONF_DIR"


def config_dir() -> str:
    """The config tree ``seq2seq-train`` composes from (see the module docstring)."""
    override = os.environ.get(CONF_ENV)
    if override:
        return str(Path(override).expanduser().resolve())
    package = Path(__file__).resolve().parent
    shipped = package / "conf"  # inside a wheel
    if (shipped / "train.yaml").is_file():
        return str(shipped)
    return str(package.parent / "conf")  # a source checkout or an editable install


def compose_train_config(
    overrides: Sequence[str] = (), return_hydra_config: bool = False
) -> DictConfig:
    """``seq2seq-train``'s config with ``overrides``, as the command line composes it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=return_hydra_config)
