"""``model.ema_decay``: the moving average after k steps is the hand-computed one, validation
runs with it, checkpoints hold it as their weights, and a resume continues the same one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seq2seq.checkpoint import load_checkpoint, read_checkpoint
from seq2seq.cli.train import train
from seq2seq.errors import ConfigError
from seq2seq.training.ema import TRAINING_WEIGHTS, ExponentialMovingAverage
from seq2seq.training.resume import ResumeCheckpoint
from tests.conftest import compose_config, one_thread

DECAY = 0.5
X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]])
Y = torch.tensor([[1.0], [-1.0], [2.0], [0.5]])


class Tiny(pl.LightningModule):
    """A linear regression that records the weights each validation batch sees."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return ((self.layer(x) - y) ** 2).mean()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.seen.append(self.layer.weight.detach().clone())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(X, Y), batch_size=1)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(X[:1], Y[:1]), batch_size=1)


class Recorder(pl.Callback):
    """The training weights at the start and after every optimiser step."""

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.weights.append(pl_module.layer.weight.detach().clone())

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        self.weights.append(pl_module.layer.weight.detach().clone())


def hand_ema(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """``e_0 = w_0``, ``e_t = d e_{t-1} + (1 - d) w_t``."""
    averages = [weights[0]]
    for w in weights[1:]:
        averages.append(DECAY * averages[-1] + (1 - DECAY) * w)
    return averages


def trainer(*callbacks: pl.Callback, **options: Any) -> pl.Trainer:
    defaults = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
        "accelerator": "cpu",
    }
    return pl.Trainer(callbacks=list(callbacks), **{**defaults, **options})


def test_average_after_k_steps_is_the_hand_computed_one() -> None:
    torch.manual_seed(0)
    ema, rec = ExponentialMovingAverage(DECAY, warmup=False), Recorder()
    trainer(ema, rec, max_steps=3).fit(Tiny())
    expected = hand_ema(rec.weights)
    assert len(rec.weights) == 4 and ema.updates == 3
    torch.testing.assert_close(ema.shadow["layer.weight"], expected[-1])
    assert not torch.allclose(expected[-1], rec.weights[-1])  # the average lags the weights


def test_validation_uses_the_average_and_training_continues_with_the_weights() -> None:
    torch.manual_seed(0)
    module, ema, rec = Tiny(), ExponentialMovingAverage(DECAY, warmup=False), Recorder()
    trainer(ema, rec, max_epochs=1, limit_val_batches=1, val_check_interval=2).fit(module)
    averages = hand_ema(rec.weights)
    assert len(module.seen) == 2  # after steps 2 and 4
    torch.testing.assert_close(module.seen[0], averages[2])
    torch.testing.assert_close(module.seen[1], averages[4])
    # Step 3 started from the training weights of step 2, not from the average.
    torch.testing.assert_close(module.layer.weight.detach(), rec.weights[-1])


def test_a_resume_restores_the_average(tmp_path: Path) -> None:
    torch.manual_seed(0)
    straight, straight_ema, straight_rec = (
        Tiny(),
        ExponentialMovingAverage(DECAY, warmup=False),
        Recorder(),
    )
    trainer(straight_ema, straight_rec, max_epochs=2).fit(straight)

    torch.manual_seed(0)
    first_ema, first_rec = ExponentialMovingAverage(DECAY, warmup=False), Recorder()
    writer = ResumeCheckpoint(tmp_path)  # last.ckpt at the end of every epoch
    trainer(first_ema, first_rec, writer, max_epochs=1, enable_checkpointing=True).fit(Tiny())
    saved = read_checkpoint(tmp_path / "last.ckpt")
    # The checkpoint's weights are the average; the training weights sit in the EMA entry.
    averages = hand_ema(first_rec.weights)
    torch.testing.assert_close(saved["state_dict"]["layer.weight"], averages[-1])
    entry = saved["callbacks"][first_ema.state_key]
    torch.testing.assert_close(entry[TRAINING_WEIGHTS]["layer.weight"], first_rec.weights[-1])

    torch.manual_seed(5)  # other initial weights: the checkpoint must replace them all
    resumed, resumed_ema = Tiny(), ExponentialMovingAverage(DECAY, warmup=False)
    again = trainer(
        resumed_ema, ResumeCheckpoint(tmp_path), max_epochs=2, enable_checkpointing=True
    )
    again.fit(resumed, ckpt_path=tmp_path / "last.ckpt", weights_only=True)
    assert resumed_ema.updates == straight_ema.updates == 8
    torch.testing.assert_close(resumed.layer.weight, straight.layer.weight)
    torch.testing.assert_close(
        resumed_ema.shadow["layer.weight"], straight_ema.shadow["layer.weight"]
    )


def test_warmup_lowers_the_decay_of_the_first_updates() -> None:
    torch.manual_seed(0)
    ema, rec = ExponentialMovingAverage(0.2), Recorder()
    trainer(ema, rec, max_steps=3).fit(Tiny())
    # Update t uses min(0.2, (1 + t) / (10 + t)): 0.1, 2/11, then 0.2 (3/12 is above it).
    w = rec.weights
    expected = w[0]
    for decay, weights in zip((0.1, 2 / 11, 0.2), w[1:], strict=True):
        expected = decay * expected + (1 - decay) * weights
    torch.testing.assert_close(ema.shadow["layer.weight"], expected)
    assert ema.current_decay() == 0.2
    assert ExponentialMovingAverage(0.999).current_decay() == pytest.approx(0.1)


def test_bad_decay_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"model.ema_decay must be a number in \[0, 1\)"):
        ExponentialMovingAverage(1.0)
    with pytest.raises(ConfigError, match="model.ema_warmup must be true or false"):
        ExponentialMovingAverage(0.9, warmup="yes")  # type: ignore[arg-type]


def test_seq2seq_train_saves_and_resumes_the_average(tmp_path: Path) -> None:
    options = ("test=false", "model.ema_decay=0.5", "checkpoint.every_n_steps=0")
    with one_thread():
        straight = train(compose_config(tmp_path / "a", *options, "trainer.max_epochs=2"))
        first = train(compose_config(tmp_path / "b", *options, "trainer.max_epochs=1"))
        resumed = train(
            compose_config(
                tmp_path / "b",
                *options,
                "trainer.max_epochs=2",
                f"ckpt_path={first['last_checkpoint']}",
            )
        )
    expected = read_checkpoint(straight["last_checkpoint"])
    got = read_checkpoint(resumed["last_checkpoint"])
    training = expected["callbacks"]["ExponentialMovingAverage"][TRAINING_WEIGHTS]
    assert training.keys() <= expected["state_dict"].keys()
    # The saved weights are the average, not the training weights ...
    assert any(not torch.equal(training[k], expected["state_dict"][k]) for k in training)
    # ... and the resumed run ends with the same average and the same training weights.
    for name, value in expected["state_dict"].items():
        torch.testing.assert_close(got["state_dict"][name], value)
    for name, value in training.items():
        torch.testing.assert_close(
            got["callbacks"]["ExponentialMovingAverage"][TRAINING_WEIGHTS][name], value
        )
    assert load_checkpoint(resumed["last_checkpoint"]).model is not None  # the tools load it


def test_seq2seq_average_training_weights_gives_the_raw_weights(tmp_path: Path, capsys) -> None:
    from seq2seq.cli.average import main as average

    options = ("test=false", "model.ema_decay=0.5", "checkpoint.every_n_steps=0")
    with one_thread():
        ema_run = train(compose_config(tmp_path / "ema", *options, "trainer.max_epochs=1"))
        plain = train(compose_config(tmp_path / "plain", "test=false", "trainer.max_epochs=1"))
    saved = read_checkpoint(ema_run["last_checkpoint"])
    training = saved["callbacks"]["ExponentialMovingAverage"][TRAINING_WEIGHTS]
    out = tmp_path / "raw.ckpt"
    average(["--training-weights", str(ema_run["last_checkpoint"]), "-o", str(out)])
    assert "the training weights of 1 checkpoints" in capsys.readouterr().out
    raw = read_checkpoint(out)
    assert raw["state_dict"].keys() == saved["state_dict"].keys()
    for name, value in raw["state_dict"].items():
        # The training weights where they are kept, the saved (integer) buffers elsewhere.
        torch.testing.assert_close(value, training.get(name, saved["state_dict"][name]))
    assert any(not torch.equal(training[k], saved["state_dict"][k]) for k in training)
    assert load_checkpoint(out).model is not None
    # Two copies of one checkpoint average to its training weights as well.
    twice = tmp_path / "twice.ckpt"
    last = str(ema_run["last_checkpoint"])
    average(["--training-weights", last, last, "-o", str(twice)])
    for name, value in read_checkpoint(twice)["state_dict"].items():
        torch.testing.assert_close(value, raw["state_dict"][name])
    # A checkpoint of a run without the average has nothing to give: one line naming it.
    with pytest.raises(SystemExit):
        average(["--training-weights", str(plain["last_checkpoint"]), "-o", str(out)])
    err = capsys.readouterr().err
    assert f"checkpoint {plain['last_checkpoint']} holds no training weights" in err
    assert len(err.strip().splitlines()) == 1
