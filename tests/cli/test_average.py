"""``seq2seq-average``: the mean of checkpoints of one model, by hand; checkpoints of
different models refused naming the files; the result loads and translates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import CHECKPOINT_KEY, checkpoint_payload, read_checkpoint
from seq2seq.cli import average
from seq2seq.data.tokenizer import WordTokenizer
from seq2seq.model import build_model
from seq2seq.translation.translator import Translator
from tests.models.test_ensemble import MODEL_CFG, WORDS, V


def payload(words: list[str] = WORDS, model_cfg: dict = MODEL_CFG) -> dict:
    tokenizer = WordTokenizer(words)
    return checkpoint_payload(model_cfg, tokenizer, tokenizer, task="translation")


def write(path: Path, state: dict[str, torch.Tensor], entry: dict | None = None) -> Path:
    torch.save({"state_dict": state, CHECKPOINT_KEY: entry or payload(), "epoch": 3}, path)
    return path


def test_mean_by_hand_in_float64_and_integers_from_the_last(tmp_path: Path) -> None:
    paths = [
        write(
            tmp_path / f"{i}.ckpt",
            {
                "w": torch.tensor([x, -x], dtype=torch.float32),
                "h": torch.tensor([x / 1000 + 1.0], dtype=torch.float16),
                "bn.num_batches_tracked": torch.tensor(10 * i),
            },
        )
        for i, x in enumerate([1.0, 2.0, 4.0])
    ]
    out = tmp_path / "avg.ckpt"
    average.main([*map(str, paths), "-o", str(out)])
    state = read_checkpoint(out)["state_dict"]
    torch.testing.assert_close(state["w"], torch.tensor([7 / 3, -7 / 3]))
    assert state["h"].dtype == torch.float16
    # The mean of the float16 values, summed in float64 and rounded to float16 once.
    assert state["h"].item() == torch.tensor([1 + 7 / 3000], dtype=torch.float16).item()
    assert state["bn.num_batches_tracked"].item() == 20
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_averaged_checkpoint_loads_and_translates(tmp_path: Path) -> None:
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(build_model(MODEL_CFG, V, V))
    paths = [
        write(tmp_path / f"m{i}.ckpt", {f"model.{k}": v for k, v in m.state_dict().items()})
        for i, m in enumerate(models)
    ]
    out = tmp_path / "avg.ckpt"
    average.main([*map(str, paths), "-o", str(out)])
    translator = Translator.from_checkpoint(out)
    name, value = next(iter(translator.model.state_dict().items()))
    mean = (models[0].state_dict()[name] + models[1].state_dict()[name]) / 2
    torch.testing.assert_close(value, mean)
    assert len(translator.translate(["a b c", ""])) == 2


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"entry": payload([*WORDS[:-1], "z"])}, "differ in their src tokenizer"),
        ({"entry": payload(model_cfg={**MODEL_CFG, "init": "bahdanau"})}, "model config"),
        (
            {"state": {"w": torch.zeros(3)}},
            r"differ in parameter w: \(2,\) torch.float32 vs \(3,\)",
        ),
        ({"state": {"v": torch.zeros(2)}}, "hold different parameters"),
    ],
)
def test_checkpoints_of_different_models_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], second: dict, message: str
) -> None:
    a = write(tmp_path / "a.ckpt", {"w": torch.zeros(2)})
    b = write(tmp_path / "b.ckpt", second.get("state", {"w": torch.ones(2)}), second.get("entry"))
    out = tmp_path / "avg.ckpt"
    with pytest.raises(SystemExit) as stop:
        average.main([str(a), str(b), "-o", str(out)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"checkpoints {a} and {b}" in err
    assert re.search(message, err), err
    assert not out.exists()


def test_not_a_seq2seq_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.ckpt", {"w": torch.zeros(2)})
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, other)
    with pytest.raises(SystemExit):
        average.main([str(a), str(other), "-o", str(tmp_path / "avg.ckpt")])
    assert f"checkpoint {other} was not written by seq2seq-train" in capsys.readouterr().err
