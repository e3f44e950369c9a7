"""``seq2seq-average CKPT... -o OUT``: average the weights of checkpoints of one model.

The mean of the last few checkpoints of a run usually translates a little better than any
one of them (Vaswani et al. 2017 average the last 5 or 20). The checkpoints must come from
the same model: the same task, model config, tokenizers, parameter names and shapes;
anything else is refused with a line naming the two files. Floating-point tensors are
averaged in float64 and cast back to their type; integer buffers (a BatchNorm's
``num_batches_tracked``) are taken from the last checkpoint, as is the seq2seq entry. The
result holds the weights and that entry only (no optimiser state, so it is for
``seq2seq-translate``, ``seq2seq-evaluate`` and ``seq2seq-caption``, not for resuming), and
is written atomically: a temporary file beside OUT, then renamed.

``--training-weights`` averages, for checkpoints of a run with ``model.ema_decay``, the
training weights each one keeps beside the moving average it holds as its weights; given one
checkpoint, it writes those weights alone, so that a run's average and its raw weights can be
scored side by side at the same step.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from seq2seq.checkpoint import CHECKPOINT_KEY, CheckpointError, read_checkpoint, seq2seq_payload
from seq2seq.cli.common import fail
from seq2seq.data.files import atomic_open
from seq2seq.training.ema import training_state_dict

#: What must be equal in the seq2seq entries of checkpoints of one model.
SAME_PAYLOAD = ("task", "model", "src_tokenizer", "tgt_tokenizer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seq2seq-average", description=__doc__.split("\n")[0])
    parser.add_argument(
        "checkpoints", type=Path, nargs="+", metavar="CKPT", help="checkpoints of one model"
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="where to write the averaged checkpoint"
    )
    parser.add_argument(
        "--training-weights",
        action="store_true",
        help="average the training weights kept in checkpoints of a run with model.ema_decay, "
        "not the moving average they hold as their weights",
    )
    return parser


def _check_same_model(
    first: Path, first_ckpt: dict[str, Any], path: Path, ckpt: dict[str, Any]
) -> None:
    """Refuse ``ckpt`` (read from ``path``) unless it is of the model of ``first_ckpt``."""
    ours, theirs = seq2seq_payload(first_ckpt, first), seq2seq_payload(ckpt, path)
    for key in SAME_PAYLOAD:
        if ours.get(key) != theirs.get(key):
            what = {"model": "model config", "task": "task"}.get(key, key.replace("_", " "))
            raise CheckpointError(
                f"checkpoints {first} and {path} differ in their {what}: they are not "
                "checkpoints of one model"
            )
    a, b = first_ckpt["state_dict"], ckpt["state_dict"]
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())
        raise CheckpointError(
            f"checkpoints {first} and {path} hold different parameters ({', '.join(only[:3])}"
            f"{', ...' if len(only) > 3 else ''} in only one of them)"
        )
    for name, tensor in a.items():
        other = b[name]
        if tuple(tensor.shape) != tuple(other.shape) or tensor.dtype != other.dtype:
            raise CheckpointError(
                f"checkpoints {first} and {path} differ in parameter {name}: "
                f"{tuple(tensor.shape)} {tensor.dtype} vs {tuple(other.shape)} {other.dtype}"
            )


def average_checkpoints(paths: Sequence[Path], training_weights: bool = False) -> dict[str, Any]:
    """The averaged checkpoint of ``paths`` (read one at a time, so memory holds two
    checkpoints and the float64 sums, however many are averaged); with ``training_weights``,
    of the training weights kept in checkpoints of a run with a moving average.

    Raises:
        CheckpointError: a file cannot be read, is not a seq2seq checkpoint, or is not of the
            model of the first (the message names both files).
    """
    if not paths:
        raise CheckpointError("no checkpoint to average")

    def read(path: Path) -> dict[str, Any]:
        ckpt = read_checkpoint(path)
        seq2seq_payload(ckpt, path)
        if training_weights:
            ckpt["state_dict"] = training_state_dict(ckpt, path)
        return ckpt

    first_path, first = paths[0], read(paths[0])
    sums: dict[str, Tensor] = {}
    last_state: dict[str, Tensor] = {}
    last = first
    for index, path in enumerate(paths):
        ckpt = first if index == 0 else read(path)
        if index > 0:
            _check_same_model(first_path, first, path, ckpt)
        for name, tensor in ckpt["state_dict"].items():
            if tensor.is_floating_point():
                # float64 sums: a float16 or bfloat16 sum of many checkpoints loses digits.
                value = tensor.detach().to(torch.float64)
                sums[name] = value if index == 0 else sums[name].add_(value)
        last, last_state = ckpt, ckpt["state_dict"]
    state = {
        name: (sums[name] / len(paths)).to(tensor.dtype) if name in sums else tensor.clone()
        for name, tensor in last_state.items()
    }
    return {
        "state_dict": state,
        CHECKPOINT_KEY: last[CHECKPOINT_KEY],
        "averaged_from": [str(p) for p in paths],
    }


def save_atomically(checkpoint: dict[str, Any], path: Path) -> None:
    """``torch.save`` through a temporary sibling of ``path``, renamed over it when complete:
    a failed or interrupted write never leaves a truncated file at ``path``."""
    with atomic_open(path, "wb") as handle:
        torch.save(checkpoint, handle)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    output: Path = args.output
    if output.is_dir():
        fail(f"-o {output} is a directory; give the checkpoint file to write")
    if not output.parent.is_dir():
        fail(f"-o {output}: the folder {output.parent} does not exist")
    try:
        averaged = average_checkpoints(args.checkpoints, args.training_weights)
    except CheckpointError as err:
        fail(str(err).strip().splitlines()[0])
    try:
        save_atomically(averaged, output)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError
        fail(f"cannot write {output}: {getattr(err, 'strerror', None) or err}")
    what = "the training weights of " if args.training_weights else ""
    print(f"averaged {what}{len(args.checkpoints)} checkpoints into {output}")


if __name__ == "__main__":
    main()
