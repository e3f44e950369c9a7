"""A store's tokenizers as files other tools can read too.

A SentencePiece tokenizer is written as its model (``src.model``: ``spm_encode --model`` reads
it), a word tokenizer as its vocabulary (``src.vocab``: one word per line, most frequent
first, the four special pieces left out as :class:`~seq2seq.data.tokenizer.WordTokenizer`
adds them itself).
"""

from __future__ import annotations

from pathlib import Path

from seq2seq.data.files import atomic_open
from seq2seq.data.tokenizer import SentencePieceTokenizer, Tokenizer, WordTokenizer


def save_tokenizer(tokenizer: Tokenizer, folder: Path, side: str) -> str:
    """Write ``tokenizer`` into ``folder`` as ``{side}.model`` or ``{side}.vocab``; returns
    the file name."""
    if isinstance(tokenizer, SentencePieceTokenizer):
        name = f"{side}.model"
        with atomic_open(folder / name, "wb") as handle:
            handle.write(tokenizer.model_proto)
        return name
    if isinstance(tokenizer, WordTokenizer):
        name = f"{side}.vocab"
        words = tokenizer.to_state()["words"]
        with atomic_open(folder / name) as handle:
            handle.writelines(word + "\n" for word in words)
        return name
    raise TypeError(f"no file format for a {type(tokenizer).__name__} in a corpus store")


def load_tokenizer(path: Path) -> Tokenizer:
    """Read a file :func:`save_tokenizer` wrote."""
    if path.suffix == ".model":
        return SentencePieceTokenizer(path.read_bytes())
    if path.suffix == ".vocab":
        return WordTokenizer(path.read_text(encoding="utf-8").split("\n")[:-1])
    raise ValueError(f"{path}: not a tokenizer file of a corpus store (.model or .vocab)")
