"""Config mistakes on the command line are Hydra's composition errors, which name the key or
list the valid choices (``seq2seq-train`` prints them without a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from tests.conftest import compose_config


@pytest.mark.parametrize(
    ("override", "choices"),
    [
        ("model/decoder=transformer", ["bahdanau", "cho", "nic", "sat"]),
        ("model/decoder=bahdanu", ["bahdanau", "cho", "nic", "sat"]),
        ("model/encoder=lstm", ["bigru", "cnn", "gru"]),
        ("optimizer=sgd", ["adadelta", "adam", "rmsprop"]),
    ],
)
def test_unknown_choice_lists_the_valid_ones(tmp_path: Path, override: str, choices) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(tmp_path, override)
    message = str(info.value)
    assert override.split("=")[1] in message
    assert all(choice in message for choice in choices), message


@pytest.mark.parametrize(
    "override",
    ["model.decoder.hiden_dim=3", "trainer.max_epoch=3", "data.max_token=10", "checkpoint.every=5"],
)
def test_misspelt_key_is_rejected_naming_it(tmp_path: Path, override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigCompositionException, match=key.replace(".", r"\.")):
        compose_config(tmp_path, override)
