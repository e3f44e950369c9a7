"""``seq2seq-prepare``: the corpus store before training, reused by training, bad input in
one line; and the WMT'14 recipe's one command from downloaded files to a prepared store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.cli import prepare
from tests.datasets.test_wmt14 import make_download

REPO = Path(__file__).resolve().parents[2]
FAST = [
    "debug=fast",
    "data.synthetic.n_train=120",
    "data.synthetic.n_dev=10",
    "data.synthetic.n_test=10",
]


def test_prepares_then_reuses_and_training_opens_the_same_store(tmp_path: Path, capsys) -> None:
    overrides = [*FAST, f"data.dir={tmp_path}/data"]
    prepare.main([*overrides, "--json"])
    first = json.loads(capsys.readouterr().out)
    store = Path(first["store"])
    assert store.parent == tmp_path / "data" / "prepared" and (store / "manifest.json").is_file()
    assert first["splits"]["train"]["pairs"] == 120 and first["splits"]["dev"]["pairs"] == 10
    assert list(first["splits"]) == ["train", "dev", "test"]

    prepare.main(overrides)
    text = capsys.readouterr().out
    assert f"corpus store: {store} (prepared {first['created']})" in text
    assert "train: 120 pairs (0 empty dropped)" in text

    from seq2seq.cli.train import train
    from tests.conftest import compose_config

    cfg = compose_config(tmp_path, *overrides, "trainer.max_epochs=1", "test=false")
    train(cfg)
    assert sorted(
        p.name for p in (tmp_path / "data" / "prepared").iterdir() if not p.name.startswith(".")
    ) == [store.name]


def test_bad_input_is_one_line_naming_the_file(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    prepare.main([*FAST, f"data.dir={data}"])
    capsys.readouterr()
    (data / "dev.tgt").write_text("just one line\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        prepare.main([*FAST, f"data.dir={data}"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert ": error: line counts differ:" in err and str(data / "dev.tgt") in err


def test_wmt14_recipe_builds_and_prepares_in_one_command(tmp_path: Path) -> None:
    download = make_download(tmp_path / "download")
    out = tmp_path / "wmt14 en-fr"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    child = subprocess.run(
        ["bash", str(REPO / "recipes" / "wmt14_en_fr" / "prepare.sh"), str(download), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    stores = [p for p in (out / "prepared").iterdir() if not p.name.startswith(".")]
    assert len(stores) == 1
    manifest = json.loads((stores[0] / "manifest.json").read_text())
    train_lines = len((out / "train.en").read_text(encoding="utf-8").splitlines())
    assert manifest["splits"]["train"]["lines"] == train_lines
    assert manifest["tokenizers"]["kind"] == "word"  # the paper's 30k shortlists
    assert "corpus store:" in child.stdout
