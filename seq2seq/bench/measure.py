"""Timing a training step, counting its FLOPs, and timing decoding.

A training step here is what Lightning runs for one batch: the module's own ``loss`` (the
same code ``seq2seq-train`` runs), backward, gradient clipping and the optimiser step, but
without Lightning's per-step bookkeeping, which would add a constant of about a millisecond.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from seq2seq.bench.machine import synchronize
from seq2seq.bench.workloads import target_tokens
from seq2seq.data.tokenizer import BOS
from seq2seq.search.decode import DecodeConfig, decode_encoded
from seq2seq.training.module import Seq2SeqModule

#: An id no token has: searches never see EOS and run to their length limit.
NO_EOS = -1


def autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """bfloat16 autocast for ``precision == "bf16"`` (GPUs: on CPUs it is far slower)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def make_step(
    module: Seq2SeqModule, clip: float | None, precision: str, device: torch.device
) -> Callable[[Any], int]:
    """One training step on a batch; returns its real target tokens."""
    optimizer = module.optimizer_factory(module.parameter_groups())
    params = [p for p in module.parameters() if p.requires_grad]

    def step(batch: Any) -> int:
        with autocast(device, precision):
            total, tokens = module.loss(batch)
        (total / tokens.clamp(min=1)).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return target_tokens(batch)

    return step


def time_training(
    step: Callable[[Any], int],
    batches: Sequence[Any],
    device: torch.device,
    reference: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Target tokens per second over ``batches``, step by step.

    With ``reference`` (a short matrix-product measure, in GFLOP/s), it is measured between
    steps, untimed: each step is then compared with the rate the device reached next to it,
    so that a machine whose speed drifts (shared or throttled cores) does not skew the
    comparison.
    """
    seconds: list[float] = []
    tokens: list[int] = []
    rates: list[float] = []
    for batch in batches:
        if reference is not None:
            rates.append(reference())
        synchronize(device)
        start = time.perf_counter()
        tokens.append(step(batch))
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return {
        "steps": len(batches),
        "tokens": sum(tokens),
        "seconds": sum(seconds),
        "tokens_per_s": sum(tokens) / sum(seconds),
        "step_tokens": tokens,
        "step_seconds": seconds,
        "matmul_gflops_beside": rates,
    }


def profile_steps(
    step: Callable[[Any], int], batches: Sequence[Any], device: torch.device, rows: int
) -> str:
    """The operators that took the most time over ``batches``, as torch.profiler's table."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for batch in batches:
            step(batch)
        synchronize(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=rows)


def flops_per_token(module: Seq2SeqModule, batch: Any, clip: float | None) -> float:
    """FLOPs of one training step (forward and backward; the optimiser's elementwise work is
    not counted) per real target token, counted by ``torch.utils.flop_counter`` on a CPU
    copy of the model: FLOPs do not depend on the device, and on a GPU the cuDNN GRU is one
    opaque kernel the counter cannot see into, where on the CPU it runs as matrix products.
    """
    cpu = copy.deepcopy(module).cpu().train()
    batch = to_device(batch, torch.device("cpu"))
    with FlopCounterMode(display=False) as counter:
        total, tokens = cpu.loss(batch)
        (total / tokens.clamp(min=1)).backward()
    return counter.get_total_flops() / max(target_tokens(batch), 1)


def time_decoding(
    module: Seq2SeqModule,
    batches: Sequence[Any],
    beam_size: int,
    device: torch.device,
    precision: str,
) -> dict[str, float]:
    """Sentences and generated tokens per second of greedy (``beam_size`` 1) or beam search
    over ``batches``. Every hypothesis runs to its input's reference length (plus one for
    EOS), where a trained model would stop about: no token counts as EOS, since an untrained
    model's EOS comes at random, at once for some and never for others."""
    module.eval()
    sentences = tokens = 0
    config = DecodeConfig(beam_size=beam_size)
    synchronize(device)
    start = time.perf_counter()
    with torch.no_grad(), autocast(device, precision):
        for batch in batches:
            limits = (batch.tgt_out != 0).sum(dim=1)
            rows = getattr(batch, "image_rows", None)
            if rows is not None:
                # Captions are decoded once per image, as long as its longest reference.
                limits = limits.new_zeros(batch.images.size(0)).scatter_reduce_(
                    0, rows, limits, "amax", include_self=False
                )
                batch = batch._replace(image_rows=None)
            enc = module.encode(batch)
            hyps = decode_encoded(
                module.model.decoder, enc, limits, config, bos_id=BOS, eos_id=NO_EOS
            )
            sentences += len(hyps)
            tokens += sum(len(h[0].tokens) for h in hyps)
    synchronize(device)
    seconds = time.perf_counter() - start
    module.train()
    return {
        "sentences": sentences,
        "seconds": seconds,
        "sentences_per_s": sentences / seconds,
        "tokens_per_s": tokens / seconds,
    }


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (a named tuple of tensors and flags) on ``device``."""
    return type(batch)(*(v.to(device) if torch.is_tensor(v) else v for v in batch))
