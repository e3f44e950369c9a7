"""SentencePiece training in a process of its own: ``python -m seq2seq.data.spm_child``.

Training holds the whole text plus a suffix array of it (about 20 bytes per character), the
largest memory of a corpus preparation. In a child process that imports only SentencePiece
(not torch, nor the preparing process's buffers) that memory is the child's alone and is
returned to the system the moment the model is written. The options are the ones
:meth:`seq2seq.data.tokenizer.SentencePieceTokenizer.train` uses in-process, so both give
the same model from the same sentences.

Usage: ``python -m seq2seq.data.spm_child OPTIONS_JSON OUT_MODEL INPUT [INPUT ...]``; on a
training error it prints SentencePiece's message as its last stderr line and exits with 1.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import sentencepiece as spm

#: The four special ids every tokenizer of the toolkit reserves (seq2seq.data.tokenizer).
SPECIAL_IDS = {"pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3}


def training_options(
    vocab_size: int,
    model_type: str,
    character_coverage: float,
    num_threads: int,
    hard_vocab_limit: bool,
) -> dict[str, Any]:
    """SentencePieceTrainer options shared by in-process and child-process training."""
    return dict(
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        num_threads=num_threads,
        hard_vocab_limit=hard_vocab_limit,
        minloglevel=2,  # errors only; training otherwise logs pages to stderr
        **SPECIAL_IDS,
    )


def train_model(options: dict[str, Any], seed: int, inputs: list[str]) -> bytes:
    """Train on the sentences of ``inputs`` (one per line); returns the serialised model."""
    spm.set_random_generator_seed(seed)  # process-global: set right before training
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(input=",".join(inputs), model_writer=writer, **options)
    return writer.getvalue()


def main(argv: list[str]) -> int:
    settings = json.loads(argv[0])
    out, inputs = argv[1], argv[2:]
    try:
        model = train_model(settings["options"], settings["seed"], inputs)
    except RuntimeError as exc:
        print(str(exc).replace("\n", " "), file=sys.stderr)
        return 1
    with open(out, "wb") as handle:
        handle.write(model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
