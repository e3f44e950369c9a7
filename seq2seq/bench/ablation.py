"""What each fast path gives: ``python -m seq2seq.bench.ablation [--model bible_bahdanau]``.

Trains a benchmark model (translation, or captioning from cached features) on the same
batches with the fast paths switched on one after another, alternating the variants batch
by batch so that all of them see the machine in the same state, and prints the median target
tokens per second of each and its ratio to the plain PyTorch path. (The allocator setting of
:mod:`seq2seq.runtime` is process-wide and cannot be switched back: run with
``--no-keep-freed-memory`` for the figures without it.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from seq2seq.bench.measure import make_step
from seq2seq.bench.workloads import (
    WORKLOADS,
    build_module,
    caption_batches,
    compose_config,
    translation_batches,
)
from seq2seq.core import DecoderOutput, EncoderOutput
from seq2seq.runtime import keep_freed_memory
from seq2seq.training.module import Seq2SeqModule

#: name -> (fused encoder GRU, fused decoder loop, output layer at real targets only).
VARIANTS: dict[str, tuple[bool, bool, bool]] = {
    "plain PyTorch (packed nn.GRU, autograd loop, full logits)": (False, False, False),
    "+ fused encoder GRU": (True, False, False),
    "+ fused decoder loop": (True, True, False),
    "+ output layer at real target positions only (default)": (True, True, True),
}
#: From cached CNN features there is no recurrent encoder to switch.
CAPTION_VARIANTS: dict[str, tuple[bool, bool, bool]] = {
    "plain PyTorch (autograd loop, full logits)": (False, False, False),
    "+ fused decoder loop": (False, True, False),
    "+ output layer at real target positions only (default)": (False, True, True),
}
ABLATION_MODELS = ("bible_bahdanau", "bible_cho", "coco_sat_features", "coco_nic_features")


@contextmanager
def variant(
    module: Seq2SeqModule, fused_encoder: bool, fused_decoder: bool, at_targets: bool
) -> Iterator[None]:
    """The module with the given fast paths on (restored afterwards)."""
    model = module.model
    has_fused_encoder = hasattr(model.encoder, "fused")  # not the CNN
    if has_fused_encoder:
        model.encoder.fused = fused_encoder
    model.decoder.fused = fused_decoder
    forward = model.decoder.forward
    if not at_targets:
        # The whole (B, T, V) logits are computed, and the real positions picked afterwards.
        def full_logits(
            prev_tokens: Tensor, enc: EncoderOutput, target_mask: Tensor | None = None
        ) -> DecoderOutput:
            out = forward(prev_tokens, enc)
            logits = out.logits if target_mask is None else out.logits[target_mask]
            return DecoderOutput(logits, out.attention)

        model.decoder.forward = full_logits  # type: ignore[method-assign]
    try:
        yield
    finally:
        model.decoder.forward = forward  # type: ignore[method-assign]
        model.decoder.fused = True
        if has_fused_encoder:
            model.encoder.fused = True


def run(model_name: str, steps: int) -> dict[str, float]:
    """Median tokens/s of every variant over ``steps`` shared batches."""
    workload = WORKLOADS[model_name]
    cfg = compose_config(workload.overrides)
    torch.manual_seed(0)
    module = build_module(workload, cfg).train()
    if workload.task == "captioning":
        batches = caption_batches(workload, cfg, module, steps + 1)
        variants = CAPTION_VARIANTS
    else:
        batches = translation_batches(workload, cfg, steps + 1)
        variants = VARIANTS
    step: Callable[[Any], int] = make_step(
        module, cfg.trainer.get("gradient_clip_val"), "32", torch.device("cpu")
    )
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for i, batch in enumerate(batches):
        for name, flags in variants.items():
            with variant(module, *flags):
                start = time.perf_counter()
                tokens = step(batch)
                if i:  # the first batch warms every variant up
                    rates[name].append(tokens / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m seq2seq.bench.ablation")
    parser.add_argument("--model", default="bible_bahdanau", choices=ABLATION_MODELS)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-keep-freed-memory", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_keep_freed_memory:
        keep_freed_memory()
    medians = run(args.model, args.steps)
    plain = next(iter(medians.values()))
    print(f"{args.model}, {args.steps} steps, {torch.get_num_threads()} threads", file=sys.stderr)
    for name, rate in medians.items():
        print(f"{rate:8.0f} tok/s  x{rate / plain:4.2f}  {name}")


if __name__ == "__main__":
    main()
