"""What a checkpoint carries besides the weights, and loading it back safely.

Lightning writes the checkpoint; the translation and captioning modules add, under
:data:`CHECKPOINT_KEY`, the task, the model config, the tokenizers' states and task extras
such as the image preprocessing (plain strings, numbers and bytes). Loading uses
``torch.load(weights_only=True)``, so a checkpoint can never run code through unpickling,
and the model is rebuilt only from classes of this package.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seq2seq.data.tokenizer import PAD, Tokenizer
from seq2seq.model import EncoderDecoder, build_model
from seq2seq.models.ensemble import EnsembleDecoder, EnsembleEncoder

CHECKPOINT_KEY = "seq2seq"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the path and what was expected."""


def checkpoint_payload(
    model_cfg: Mapping[str, Any],
    src_tokenizer: Tokenizer | None,
    tgt_tokenizer: Tokenizer,
    task: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The entry stored beside Lightning's own: all a user needs to rebuild the model.

    ``src_tokenizer`` is None for images; ``extra`` holds what a task needs besides (plain
    data only).
    """
    return {
        "format_version": FORMAT_VERSION,
        "task": task,
        "model": dict(model_cfg),
        "src_tokenizer": None if src_tokenizer is None else src_tokenizer.to_state(),
        "tgt_tokenizer": tgt_tokenizer.to_state(),
        "extra": dict(extra or {}),
    }


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, in eval mode, with its tokenizers.

    For an ensemble (:func:`load_checkpoints` of several files) ``model`` is the ensemble,
    the other fields are the first member's and ``members`` lists every member.
    """

    model: EncoderDecoder
    src_tokenizer: Tokenizer | None
    tgt_tokenizer: Tokenizer
    task: str
    model_cfg: dict[str, Any]
    extra: dict[str, Any]
    members: list[LoadedModel] = field(default_factory=list)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True`` and errors that say what went wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message is mostly advice to load with weights_only=False, the one thing not
        # to do with an untrusted file: keep only what the unpickler found.
        text = str(err)
        marker = "WeightsUnpickler error:"
        reason = text.split(marker, 1)[1].strip().splitlines()[0] if marker in text else "?"
        raise CheckpointError(
            f"checkpoint {path} holds objects that are not plain data and was refused "
            f"(loaded with weights_only=True, nothing was executed): {reason}"
        ) from err
    except (
        RuntimeError, EOFError, zipfile.BadZipFile, OSError, IndexError, KeyError, ValueError,
        struct.error,
    ) as err:  # fmt: skip
        # A file that is not a checkpoint at all (text, random bytes) fails anywhere in the
        # unpickler, with errors that say nothing about the file.
        raise CheckpointError(
            f"checkpoint {path} cannot be read: truncated or not a PyTorch checkpoint "
            f"({type(err).__name__}: {err})"
        ) from err


def seq2seq_payload(ckpt: Any, path: str | Path) -> dict[str, Any]:
    """The :data:`CHECKPOINT_KEY` entry of a checkpoint read from ``path``, which must also
    hold a ``state_dict``."""
    payload = ckpt.get(CHECKPOINT_KEY) if isinstance(ckpt, dict) else None
    if not isinstance(payload, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(
            f"checkpoint {path} was not written by seq2seq-train (no '{CHECKPOINT_KEY}' entry)"
        )
    return payload


def load_checkpoint(path: str | Path, task: str = "translation") -> LoadedModel:
    """Rebuild the model saved in the checkpoint at ``path`` for ``task``."""
    ckpt = read_checkpoint(path)
    payload = seq2seq_payload(ckpt, path)
    if payload.get("task") != task:
        raise CheckpointError(
            f"checkpoint {path} is a {payload.get('task')!r} model; expected a {task!r} model"
        )
    src_state = payload.get("src_tokenizer")
    src_tok = None if src_state is None else Tokenizer.from_state(src_state)
    tgt_tok = Tokenizer.from_state(payload["tgt_tokenizer"])
    model_cfg = dict(payload["model"])
    encoder_cfg = model_cfg.get("encoder")
    if isinstance(encoder_cfg, Mapping) and encoder_cfg.get("weights") is not None:
        # The state dict holds every backbone weight: building the CNN with its pretrained
        # weights would only re-read (or try to download) what is then overwritten.
        model_cfg["encoder"] = {**encoder_cfg, "weights": None}
    src_vocab = 0 if src_tok is None else src_tok.vocab_size
    model = build_model(model_cfg, src_vocab, tgt_tok.vocab_size, pad_id=PAD)
    prefix = "model."
    weights = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(
            f"checkpoint {path}: weights do not fit its model config: {err}"
        ) from err
    model.eval()
    return LoadedModel(model, src_tok, tgt_tok, task, payload["model"], payload.get("extra", {}))


def load_checkpoints(
    paths: Sequence[str | Path], task: str = "translation", same_extra: Sequence[str] = ()
) -> LoadedModel:
    """One model from one checkpoint, or an ensemble (:mod:`seq2seq.models.ensemble`) of the
    models of several, which decode as one.

    Every member must read the same source and write the same target vocabulary (their
    tokenizers' states are compared), and agree on the ``same_extra`` entries of their task
    extras (e.g. the image preprocessing, as every member sees the same pixels).

    Raises:
        CheckpointError: a file cannot be used, or two members disagree (naming both files).
    """
    if not paths:
        raise CheckpointError("no checkpoint given")
    members = [_load_named(path, task) for path in paths]
    if len(members) == 1:
        return members[0]
    first, first_path = members[0], paths[0]
    for path, member in zip(paths[1:], members[1:], strict=True):
        for side, ours, theirs in (
            ("source", first.src_tokenizer, member.src_tokenizer),
            ("target", first.tgt_tokenizer, member.tgt_tokenizer),
        ):
            if _state(ours) != _state(theirs):
                raise CheckpointError(
                    f"checkpoints {first_path} and {path} have different {side} vocabularies "
                    "(tokenizers); an ensemble needs models trained with the same ones"
                )
        for key in same_extra:
            if first.extra.get(key) != member.extra.get(key):
                raise CheckpointError(
                    f"checkpoints {first_path} and {path} differ in {key!r} "
                    f"({first.extra.get(key)!r} vs {member.extra.get(key)!r}); an ensemble "
                    "needs the same for every model"
                )
    encoder = EnsembleEncoder([m.model.encoder for m in members])
    decoder = EnsembleDecoder([m.model.decoder for m in members])
    return LoadedModel(
        model=EncoderDecoder(encoder, decoder).eval(),
        src_tokenizer=first.src_tokenizer,
        tgt_tokenizer=first.tgt_tokenizer,
        task=task,
        model_cfg=first.model_cfg,
        extra=first.extra,
        members=members,
    )


def _state(tokenizer: Tokenizer | None) -> dict[str, Any] | None:
    return None if tokenizer is None else tokenizer.to_state()


def _load_named(path: str | Path, task: str) -> LoadedModel:
    """:func:`load_checkpoint`, with any failure reported as a :class:`CheckpointError`
    naming the file."""
    try:
        return load_checkpoint(path, task=task)
    except CheckpointError:
        raise
    except Exception as err:
        # load_checkpoint names the usual failures; garbage bytes can still surface as
        # IndexError, KeyError, ... from the unpickler or a damaged seq2seq entry. Whatever it
        # is, the file is at fault: say which one (the cause stays chained).
        raise CheckpointError(
            f"checkpoint {path} cannot be read as a seq2seq checkpoint "
            f"({type(err).__name__}: {err})"
        ) from err
