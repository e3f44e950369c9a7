"""The sequence-level stage: its loss on hand-computed cases, the teacher-forced
log-probabilities of samples, its config, and short runs of both tasks through
``seq2seq.cli.train.train``, a resume in the middle of the stage included."""

from __future__ import annotations

import csv
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import open_dict
from sacrebleu.metrics import BLEU, CHRF
from torch import Tensor, nn

from seq2seq.cli.train import train
from seq2seq.errors import ConfigError
from seq2seq.search.sample import sample
from seq2seq.training.seqlevel import (
    SeqLevelConfig,
    eval_mode,
    mean_baseline,
    policy_gradient_loss,
    sequence_log_probs,
    set_stage_lr,
    step_generator,
)
from seq2seq.translation.module import TranslationModule
from seq2seq.translation.rewards import SentenceReward
from tests.conftest import compose_config
from tests.models.test_contracts import TGT_V, batch, make


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny models run no faster on two threads, and a core shared with other jobs is slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the loss ------------------------------------------------------------------------------
def test_loss_on_two_samples_with_both_baselines() -> None:
    """Two samples of one input: rewards 0.8 and 0.2, log-probabilities -1 and -2.

    greedy baseline 0.5: advantages 0.3, -0.3; loss -(0.3 * -1 + -0.3 * -2) / 2 = -0.15.
    mean baseline (the other sample's reward): 0.2, 0.8; advantages 0.6, -0.6;
    loss -(0.6 * -1 + -0.6 * -2) / 2 = -0.3, gradient -advantage / 2 = (-0.3, 0.3).
    """
    rewards = torch.tensor([0.8, 0.2])
    log_probs = torch.tensor([-1.0, -2.0], requires_grad=True)
    greedy = policy_gradient_loss(log_probs, rewards, torch.tensor([0.5, 0.5]))
    assert greedy.item() == pytest.approx(-0.15)

    baselines = mean_baseline(rewards.view(1, 2)).view(-1)
    assert baselines.tolist() == pytest.approx([0.2, 0.8])
    loss = policy_gradient_loss(log_probs, rewards, baselines)
    assert loss.item() == pytest.approx(-0.3)
    loss.backward()
    assert log_probs.grad.tolist() == pytest.approx([-0.3, 0.3])


def test_mean_baseline_leaves_each_sample_out() -> None:
    rewards = torch.tensor([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])
    assert mean_baseline(rewards).tolist() == [[4.0, 3.5, 1.5], [1.5, 1.5, 0.0]]
    with pytest.raises(ValueError, match="at least 2"):
        mean_baseline(rewards[:, :1])


def test_rewards_and_baselines_carry_no_gradient() -> None:
    rewards = torch.tensor([1.0, 0.0], requires_grad=True)
    log_probs = torch.tensor([-0.5, -0.25], requires_grad=True)
    policy_gradient_loss(log_probs, rewards, rewards.mean().expand(2)).backward()
    assert rewards.grad is None and log_probs.grad is not None


@pytest.mark.parametrize("decoder", ["bahdanau", "cho", "sat"])
@pytest.mark.parametrize("unk_id", [None, 1])
def test_teacher_forced_log_probs_equal_the_sampling_ones(decoder: str, unk_id: int | None) -> None:
    """Recomputed with the decoder's teacher-forced pass, a sample's log-probability (EOS
    included, nothing after it) is the one its token-by-token draw had, and has a gradient."""
    model = make("bigru", decoder, "gru")
    src, lengths, _ = batch()
    enc = model.encode(src, lengths)
    drawn = sample(
        model.decoder, enc, bos_id=2, eos_id=3, max_len=torch.tensor([7, 4, 1]), samples=3,
        generator=torch.Generator().manual_seed(0), unk_id=unk_id,
    )  # fmt: skip
    assert (
        drawn.tokens.max() < TGT_V and (drawn.lengths <= torch.tensor([7, 4, 1])[drawn.rows]).all()
    )
    log_probs = sequence_log_probs(model.decoder, enc, drawn, unk_id)
    torch.testing.assert_close(log_probs, drawn.log_probs, atol=1e-5, rtol=1e-5)
    log_probs.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


# --- configuration and stage hooks --------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start_epoch": -1}, "seqlevel.start_epoch must be >= 0"),
        ({"baseline": "best"}, "seqlevel.baseline must be one of"),
        ({"baseline": "mean", "samples": 1}, "seqlevel.samples must be >= 2"),
        ({"samples": 0}, "seqlevel.samples must be >= 1"),
        ({"max_len": 0}, "seqlevel.max_len must be >= 1"),
        ({"lr": 0.0}, "seqlevel.lr must be > 0"),
    ],
)
def test_config_errors_name_the_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SeqLevelConfig(**options)


def test_stage_is_a_function_of_the_epoch_and_rewards_are_checked() -> None:
    assert not any(SeqLevelConfig().active(e) for e in range(5))
    stage = SeqLevelConfig(start_epoch=2, reward="chrf")
    assert [stage.active(e) for e in range(4)] == [False, False, True, True]
    stage.check_reward(("chrf", "bleu"), "translation")
    with pytest.raises(ConfigError, match=r"seqlevel.reward must be one of \('cider',\)"):
        stage.check_reward(("cider",), "captioning")
    SeqLevelConfig(reward="chrf").check_reward(("cider",), "captioning")  # off: not checked


def test_stage_lr_keeps_the_groups_ratio() -> None:
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 2e-4}], lr=2e-3)
    assert set_stage_lr(optimizer, 1e-4) == pytest.approx([1e-4, 1e-5])
    assert set_stage_lr(optimizer, 1e-4) == pytest.approx([1e-4, 1e-5])  # idempotent


def test_eval_mode_restores_each_submodule() -> None:
    model = nn.Sequential(nn.Linear(1, 1), nn.Dropout(0.5))
    model.train()
    model[0].eval()  # a frozen part kept in eval mode
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert model.training and not model[0].training and model[1].training


def test_step_generator_depends_on_step_batch_and_rank_only() -> None:
    def draws(*key: int) -> list[float]:
        return torch.rand(3, generator=step_generator(*key, torch.device("cpu"))).tolist()

    assert draws(1, 5, 0, 0) == draws(1, 5, 0, 0)
    assert (
        len({tuple(draws(*k)) for k in [(1, 5, 0, 0), (1, 6, 0, 0), (1, 5, 1, 0), (1, 5, 0, 1)]})
        == 4
    )


def test_sentence_rewards_are_sacrebleus_scores_over_100() -> None:
    hyps, refs = ["the cat sat on a mat", "a dog", ""], ["the cat sat on the mat", "a dog", "x y"]
    chrf = SentenceReward("chrf")(hyps, refs)
    assert chrf == pytest.approx(
        [CHRF().sentence_score(h, [r]).score / 100 for h, r in zip(hyps, refs, strict=True)]
    )
    assert chrf[1] == pytest.approx(1.0) and chrf[2] == 0.0
    bleu = SentenceReward("bleu", "none")(hyps, refs)
    scorer = BLEU(tokenize="none", effective_order=True)
    assert bleu == pytest.approx(
        [scorer.sentence_score(h, [r]).score / 100 for h, r in zip(hyps, refs, strict=True)]
    )
    assert 0 < bleu[0] < 1 and bleu[1] == pytest.approx(1.0)


# --- runs ----------------------------------------------------------------------------------
def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "csv" / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def training_rows(rows: list[dict[str, str]], key: str) -> dict[int, float]:
    """``{step: value}`` of a training metric (the rows carrying it)."""
    return {int(r["step"]): float(r[key]) for r in rows if r.get(key)}


def epochs_with(rows: list[dict[str, str]], key: str) -> set[int]:
    return {int(r["epoch"]) for r in rows if r.get(key) and r.get("epoch")}


def test_captioning_stage_runs_self_critical_training(tmp_path: Path) -> None:
    cfg = compose_config(
        tmp_path, "experiment=shapes_sat", "seqlevel.start_epoch=1", "trainer.max_epochs=2"
    )
    result = train(cfg)
    rows = metric_rows(Path(result["run_dir"]))
    assert epochs_with(rows, "train/loss") == {0}
    for key in ("train/seqlevel_loss", "train/reward", "train/baseline"):
        assert epochs_with(rows, key) == {1}, key
    assert epochs_with(rows, "val/cider") == {0, 1}
    rewards = training_rows(rows, "train/reward")
    assert all(math.isfinite(r) and r >= 0 for r in rewards.values())
    assert "test_cider" in result
    last = torch.load(result["last_checkpoint"], map_location="cpu", weights_only=True)
    assert last["seqlevel"] == {"started": True}


def test_translation_stage_with_mean_baseline_and_its_own_lr(tmp_path: Path) -> None:
    cfg = compose_config(
        tmp_path, "seqlevel.start_epoch=1", "trainer.max_epochs=2", "seqlevel.baseline=mean",
        "seqlevel.samples=3", "seqlevel.lr=0.0005", "seqlevel.max_len=12", "test=false",
    )  # fmt: skip
    result = train(cfg)
    rows = metric_rows(Path(result["run_dir"]))
    assert epochs_with(rows, "train/loss") == {0}
    assert epochs_with(rows, "train/reward") == {1}
    assert epochs_with(rows, "val/bleu") == {0, 1}
    rewards = training_rows(rows, "train/reward")
    assert all(0 <= r <= 1 for r in rewards.values())  # chrF / 100
    # The mean of leave-one-out baselines is the mean reward.
    baselines = training_rows(rows, "train/baseline")
    assert baselines == pytest.approx(rewards, abs=1e-5)
    last = torch.load(result["last_checkpoint"], map_location="cpu", weights_only=True)
    assert [g["lr"] for g in last["optimizer_states"][0]["param_groups"]] == [pytest.approx(5e-4)]


def test_translation_refuses_a_captioning_reward(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, "seqlevel.start_epoch=0", "seqlevel.reward=cider")
    with pytest.raises(ConfigError, match=r"seqlevel.reward must be one of \('chrf', 'bleu'\)"):
        train(cfg)


def test_a_non_finite_stage_loss_stops_as_cross_entropy_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nan_rewards(self: TranslationModule, batch: Any, outputs: Any, rows: Tensor) -> Tensor:
        return torch.full((len(outputs),), float("nan"))

    monkeypatch.setattr(TranslationModule, "sample_rewards", nan_rewards)
    cfg = compose_config(tmp_path, "seqlevel.start_epoch=0", "trainer.max_epochs=1", "test=false")
    with pytest.raises(FloatingPointError, match="loss is nan at global step 0 .*nonfinite=skip"):
        train(cfg)


class KeepCheckpoint(pl.Callback):
    """Copy ``last.ckpt`` aside as it was at global step ``step`` (written every step)."""

    def __init__(self, source: str, target: str, step: int) -> None:
        self.source, self.target, self.step = Path(source), Path(target), step

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        # Before step `step + 1`: last.ckpt is the one written after step `step`.
        if trainer.global_step == self.step:
            shutil.copy(self.source, self.target)


def test_resume_in_the_middle_of_the_stage(tmp_path: Path) -> None:
    """Three batches per epoch, the stage from epoch 1: a checkpoint after step 4 is one batch
    into the stage. Resumed from it, the run trains the stage's remaining steps with the
    stage's learning rate, drawing the samples the uninterrupted run drew."""
    kept = tmp_path / "mid.ckpt"
    overrides = (
        "experiment=shapes_sat", "seqlevel.start_epoch=1", "trainer.max_epochs=3",
        "seqlevel.lr=0.001", "seqlevel.samples=3", "checkpoint.every_n_steps=1", "test=false",
        "scheduler=none",
    )  # fmt: skip
    whole = compose_config(tmp_path / "whole", *overrides)
    last = Path(whole.run_dir) / "checkpoints" / "last.ckpt"
    with open_dict(whole):
        whole.callbacks["keep"] = {
            "_target_": f"{__name__}.KeepCheckpoint",
            "source": str(last),
            "target": str(kept),
            "step": 4,
        }
    uninterrupted = metric_rows(Path(train(whole)["run_dir"]))
    mid = torch.load(kept, map_location="cpu", weights_only=True)
    assert mid["global_step"] == 4 and mid["epoch"] == 1 and mid["seqlevel"] == {"started": True}

    resumed_cfg = compose_config(tmp_path / "resumed", *overrides, f"ckpt_path={kept}")
    result = train(resumed_cfg)
    resumed = metric_rows(Path(result["run_dir"]))
    rewards = training_rows(resumed, "train/reward")
    assert sorted(rewards) == [4, 5, 6, 7, 8]  # the rest of epoch 1, then epoch 2
    assert not training_rows(resumed, "train/loss")  # no cross-entropy step after the resume
    assert rewards == pytest.approx(
        {s: r for s, r in training_rows(uninterrupted, "train/reward").items() if s >= 4},
        abs=1e-4,
    )
    final = torch.load(result["last_checkpoint"], map_location="cpu", weights_only=True)
    assert final["global_step"] == 9
    rates = [g["lr"] for g in final["optimizer_states"][0]["param_groups"]]
    assert rates == pytest.approx([1e-3, 1e-4])  # set once; the backbone keeps its 0.1
