"""Sequence-level training: a second stage that optimises the evaluation metric itself.

From ``seqlevel.start_epoch`` on, each input's ``K`` outputs are sampled from the model and
scored against its references (CIDEr-D for captions, chrF or BLEU for translations), and the
loss is the REINFORCE estimate of the expected reward's negative gradient,

    L = -1/N * sum_i (r_i - b_i) * log p(y_i | x_i),

``log p`` summed over the sample's tokens, its EOS included. The baseline ``b`` is either the
reward of the greedy output of the same input (self-critical sequence training, Rennie et al.,
2017, "Self-critical Sequence Training for Image Captioning") or the mean reward of the input's
other ``K - 1`` samples (as in minimum risk training, Shen et al., 2016, "Minimum Risk Training
for Neural Machine Translation", whose expected risk over a sampled subspace this estimates).

The stage is a function of the epoch alone, so a run resumed in its middle continues it; the
sampling generator is seeded from the run's seed, the step, the batch and the rank, so a
resumed run draws the samples that the uninterrupted one would have.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from seq2seq.core import Decoder, EncoderOutput
from seq2seq.data.tokenizer import BOS, EOS, PAD, UNK
from seq2seq.errors import ConfigError
from seq2seq.model import EncoderDecoder
from seq2seq.search.decode import DecodeConfig
from seq2seq.search.greedy import greedy_search
from seq2seq.search.sample import Samples, sample

BASELINES = ("greedy", "mean")


@dataclass(frozen=True)
class SeqLevelConfig:
    """The ``seqlevel`` block of ``conf/train.yaml``.

    Attributes:
        start_epoch: first epoch (0-based) of the stage; None: never.
        samples: ``K``, outputs sampled per input.
        baseline: ``greedy`` (the greedy output's reward, SCST) or ``mean`` (the mean reward
            of the input's other samples; needs ``K >= 2``).
        reward: the metric rewarded; each task says which it offers.
        max_len: most tokens a sample may have, EOS included.
        lr: learning rate from the stage's start, given to the first parameter group and the
            others keeping their ratio to it; None keeps the optimiser's.
        seed: the run's seed (``seed``), from which every step's sampling is seeded.
    """

    start_epoch: int | None = None
    samples: int = 5
    baseline: str = "greedy"
    reward: str = "cider"
    max_len: int = 30
    lr: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.start_epoch is not None and self.start_epoch < 0:
            raise ConfigError(f"seqlevel.start_epoch must be >= 0 or null, got {self.start_epoch}")
        if self.baseline not in BASELINES:
            raise ConfigError(
                f"seqlevel.baseline must be one of {BASELINES}, got {self.baseline!r}"
            )
        least = 2 if self.baseline == "mean" else 1
        if self.samples < least:
            raise ConfigError(
                f"seqlevel.samples must be >= {least} with seqlevel.baseline={self.baseline}, "
                f"got {self.samples}"
            )
        if self.max_len < 1:
            raise ConfigError(f"seqlevel.max_len must be >= 1, got {self.max_len}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"seqlevel.lr must be > 0 or null, got {self.lr}")

    @classmethod
    def from_config(cls, node: DictConfig | None, seed: int = 0) -> SeqLevelConfig:
        """From the composed config's ``seqlevel`` block (None or absent: the stage is off)."""
        if node is None:
            return cls(seed=seed)
        values: dict[str, Any] = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
        unknown = sorted(
            set(values) - {"start_epoch", "samples", "baseline", "reward", "max_len", "lr"}
        )
        if unknown:
            raise ConfigError(f"seqlevel.{unknown[0]}: no such option")
        return cls(**values, seed=seed)

    def active(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` trains with the sequence-level loss."""
        return self.start_epoch is not None and epoch >= self.start_epoch

    def check_reward(self, allowed: Sequence[str], task: str) -> None:
        """Refuse a reward that the task does not offer (only when the stage is on)."""
        if self.start_epoch is not None and self.reward not in allowed:
            raise ConfigError(
                f"seqlevel.reward must be one of {tuple(allowed)} for {task}, got {self.reward!r}"
            )


# --- the loss ------------------------------------------------------------------------------
def mean_baseline(rewards: Tensor) -> Tensor:
    """``(B, K)`` each sample's baseline: the mean reward of the other ``K - 1`` samples of
    its input (leaving the sample out keeps the baseline independent of it)."""
    k = rewards.size(1)
    if k < 2:
        raise ValueError("the mean baseline needs at least 2 samples per input")
    return (rewards.sum(dim=1, keepdim=True) - rewards) / (k - 1)


def policy_gradient_loss(log_probs: Tensor, rewards: Tensor, baselines: Tensor) -> Tensor:
    """``-mean((r - b) * log p)`` over samples: ``log_probs`` ``(N,)`` carries the gradient,
    ``rewards`` and ``baselines`` ``(N,)`` are constants."""
    advantage = (rewards - baselines).detach().to(log_probs.dtype)
    return -(advantage * log_probs).mean()


def sequence_log_probs(
    decoder: Decoder, enc: EncoderOutput, samples: Samples, unk_id: int | None = None
) -> Tensor:
    """``(N,)`` log-probability of each sample, with gradient, by a teacher-forced pass.

    Recomputed rather than kept from sampling: the sampling loop runs without autograd, so it
    keeps no graph of every step and of the shrinking batch (memory would grow with ``K`` and
    the length), and the teacher-forced pass with a ``target_mask`` takes the decoder's fused
    kernel and computes the output layer at the sampled tokens only. ``enc`` is the encoder
    output of the ``B`` inputs; nothing after a sample's EOS is counted.

    Args:
        decoder: the decoder.
        enc: encoder output of the ``B`` inputs (with gradient).
        samples: the ``N = B * K`` samples.
        unk_id: the token that sampling suppressed, if any: renormalised without it here too,
            so that ``p`` is the distribution the sample was drawn from.
    """
    mask = samples.mask  # (N, L)
    prev = torch.cat([torch.full_like(samples.tokens[:, :1], BOS), samples.tokens[:, :-1]], 1)
    logits = decoder(prev, enc.index_select(samples.rows), mask).logits.float()  # (n, V)
    if unk_id is not None:
        suppressed = torch.zeros(logits.size(-1), dtype=torch.bool, device=logits.device)
        suppressed[unk_id] = True
        logits = logits.masked_fill(suppressed, float("-inf"))
    per_token = F.log_softmax(logits, dim=-1).gather(1, samples.tokens[mask][:, None]).squeeze(1)
    rows = mask.nonzero()[:, 0]  # the sample of each row of logits (row-major order)
    return per_token.new_zeros(mask.size(0)).index_add(0, rows, per_token)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in eval mode and restore every submodule's own mode afterwards (a frozen
    backbone stays in eval mode while the rest trains, so ``train()`` would not restore it)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def step_generator(
    seed: int, step: int, batch: int, rank: int, device: torch.device
) -> torch.Generator:
    """A generator on ``device`` seeded from the run's seed, the global step, the batch index
    and the rank: the samples of a step do not depend on what ran before it."""
    state = np.random.SeedSequence([seed, step, batch, rank]).generate_state(1, np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state) & (2**63 - 1))


def set_stage_lr(optimizer: torch.optim.Optimizer, lr: float) -> list[float]:
    """Give the first parameter group ``lr`` and scale the others by the same factor (the
    backbone keeps its ratio to the decoder); returns the new rates."""
    groups = optimizer.param_groups
    factor = lr / groups[0]["lr"]
    for group in groups:
        group["lr"] = group["lr"] * factor
    return [group["lr"] for group in groups]


# --- one training step ---------------------------------------------------------------------
class SequenceLevelTask(Protocol):
    """What a Lightning module offers the stage (``Seq2SeqModule`` and its tasks)."""

    model: EncoderDecoder
    val_decode: DecodeConfig

    def encode_inputs(self, batch: Any) -> EncoderOutput:
        """The encoder output of each distinct input (an image once, however many captions)."""

    def sample_max_len(self, batch: Any) -> Tensor | int:
        """Most tokens a sample of each input may have."""

    def sample_rewards(self, batch: Any, outputs: list[list[int]], rows: Tensor) -> Tensor:
        """``(N,)`` reward of each output (ids without EOS) of the batch's input ``rows``."""


@dataclass
class StageStep:
    """One step's sequence-level loss and what to log about it."""

    loss: Tensor
    reward: Tensor
    baseline: Tensor


def stage_step(
    task: SequenceLevelTask, config: SeqLevelConfig, batch: Any, generator: torch.Generator
) -> StageStep:
    """Sample, score and build the loss of one batch.

    The samples are drawn from the decoder as it is (dropout on, if the model has any); the
    greedy baseline is decoded in eval mode, being what the model outputs at test time.
    """
    decoder = task.model.decoder
    enc = task.encode_inputs(batch)  # (B, ...) with gradient, shared by all passes
    unk_id = UNK if task.val_decode.suppress_unk else None
    max_len = task.sample_max_len(batch)
    drawn = sample(
        decoder,
        enc,
        bos_id=BOS,
        eos_id=EOS,
        max_len=max_len,
        samples=config.samples,
        generator=generator,
        unk_id=unk_id,
        pad_id=PAD,
    )
    rewards = task.sample_rewards(batch, drawn.outputs(), drawn.rows).float()  # (N,)
    if config.baseline == "greedy":
        with eval_mode(decoder):
            greedy = greedy_search(
                decoder, enc, bos_id=BOS, eos_id=EOS, max_len=max_len, unk_id=unk_id
            )
        inputs = torch.arange(len(greedy), device=rewards.device)
        baselines = task.sample_rewards(batch, [h.tokens for h in greedy], inputs).float()
        baselines = baselines[drawn.rows]
    else:
        baselines = mean_baseline(rewards.view(-1, config.samples)).view(-1)
    log_probs = sequence_log_probs(decoder, enc, drawn, unk_id)
    loss = policy_gradient_loss(log_probs, rewards, baselines)
    return StageStep(loss, rewards.mean(), baselines.mean())
