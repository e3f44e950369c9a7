"""Tokenizers turning sentences into token ids and back: SentencePiece subwords or whole words.

Every tokenizer reserves the same four special ids (:data:`PAD`, :data:`UNK`, :data:`BOS`,
:data:`EOS`), so models, collation and search never need to ask which tokenizer they run with.
A tokenizer is saved as a plain dict (:meth:`Tokenizer.to_state`) of str/int/bytes/list/dict
values, which ``torch.load(weights_only=True)`` accepts, so checkpoints need no pickle.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import subprocess
import sys
import tempfile
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import sentencepiece as spm
import torch

from seq2seq.data.spm_child import training_options

#: Padding; ignored by the loss and by attention.
PAD = 0
#: Unknown token, for words/characters outside the vocabulary.
UNK = 1
#: Beginning of sentence; the first decoder input.
BOS = 2
#: End of sentence; the last decoder output.
EOS = 3

#: Pieces of the special ids, the same as SentencePiece's defaults.
SPECIAL_PIECES = ("<pad>", "<unk>", "<s>", "</s>")

ModelType = Literal["unigram", "bpe"]

_TYPES: dict[str, type[Tokenizer]] = {}


class Tokenizer(ABC):
    """Maps text to ids and back; subclasses register under a name with ``kind=...``."""

    #: The name stored in ``to_state()["type"]``.
    kind: ClassVar[str]

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            _TYPES[kind] = cls

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text``, without BOS or EOS."""

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text, without BOS or EOS."""
        return [self.encode(text) for text in texts]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Text of ``ids`` ``(T,)``: stops at the first EOS and skips PAD and BOS."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        kept = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                kept.append(int(i))
        return self._decode(kept)

    @abstractmethod
    def _decode(self, ids: list[int]) -> str:
        """Text of ids that hold no special id other than UNK."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, special ones included."""

    @abstractmethod
    def id_to_piece(self, i: int) -> str:
        """The token (subword, word or special piece) of id ``i``."""

    @abstractmethod
    def to_state(self) -> dict[str, Any]:
        """Everything needed to rebuild the tokenizer, with ``"type"`` naming its class."""

    @classmethod
    @abstractmethod
    def _from_state(cls, state: dict[str, Any]) -> Tokenizer:
        """Rebuild from :meth:`to_state` of this class."""

    @staticmethod
    def from_state(state: dict[str, Any]) -> Tokenizer:
        """Rebuild any tokenizer from its :meth:`to_state`.

        Raises:
            ValueError: ``state["type"]`` is missing or names no known tokenizer.
        """
        kind = state.get("type")
        if kind not in _TYPES:
            raise ValueError(
                f"unknown tokenizer type {kind!r} in state; known types: {sorted(_TYPES)}"
            )
        return _TYPES[kind]._from_state(state)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling (DataLoader workers, multiprocessing) goes through the same plain state.
        return (Tokenizer.from_state, (self.to_state(),))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class SentencePieceTokenizer(Tokenizer, kind="sentencepiece"):
    """Subword tokenizer backed by a SentencePiece model held in memory.

    Args:
        model_proto: the serialised SentencePiece model.
    """

    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        special = [self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id()]
        if special != [PAD, UNK, BOS, EOS]:
            raise ValueError(
                f"SentencePiece model has special ids pad/unk/bos/eos = {special}, "
                f"expected {[PAD, UNK, BOS, EOS]}"
            )

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        model_type: ModelType = "unigram",
        character_coverage: float = 1.0,
        *,
        seed: int = 0,
        max_sentences: int | None = None,
        num_threads: int = 8,
        hard_vocab_limit: bool = True,
    ) -> SentencePieceTokenizer:
        """Train a model in memory; nothing is written to disk.

        Args:
            texts: training sentences, read once.
            vocab_size: number of ids, the four special ones included.
            model_type: ``"unigram"`` or ``"bpe"``.
            character_coverage: fraction of characters covered by the vocabulary; the rest
                map to UNK (below 1.0 only helps for scripts with very many characters).
            seed: seeds SentencePiece's sentence sampling.
            max_sentences: train on a random sample of this many sentences (for big corpora).
            num_threads: training threads.
            hard_vocab_limit: a ``vocab_size`` the corpus cannot fill is an error; False
                makes it a cap, and the model has as many pieces as the corpus allows
                (compare :attr:`vocab_size` with the request).

        Raises:
            ValueError: ``vocab_size`` is too large or too small for this corpus (the message
                gives the bound SentencePiece allows), or there is nothing to train on.
        """
        if model_type not in ("unigram", "bpe"):
            raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
        # The generator is process-global in SentencePiece; set it right before training.
        spm.set_random_generator_seed(seed)
        writer = io.BytesIO()
        options = training_options(
            vocab_size, model_type, character_coverage, num_threads, hard_vocab_limit
        )
        options.update(sentence_iterator=iter(texts), model_writer=writer)
        if max_sentences is not None:
            options.update(input_sentence_size=max_sentences, shuffle_input_sentence=True)
        try:
            spm.SentencePieceTrainer.train(**options)
        except RuntimeError as exc:
            raise _explain_training_error(exc, vocab_size, model_type) from exc
        return cls(writer.getvalue())

    @classmethod
    def train_on_files(
        cls,
        paths: Sequence[Path],
        vocab_size: int,
        model_type: ModelType = "unigram",
        character_coverage: float = 1.0,
        *,
        seed: int = 0,
        num_threads: int = 8,
        hard_vocab_limit: bool = True,
    ) -> SentencePieceTokenizer:
        """:meth:`train` on the lines of ``paths``, in a child process
        (:mod:`seq2seq.data.spm_child`) whose memory is freed when it ends; the same model
        as :meth:`train` on the same sentences.

        Raises:
            ValueError: as :meth:`train`.
        """
        if model_type not in ("unigram", "bpe"):
            raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
        options = training_options(
            vocab_size, model_type, character_coverage, num_threads, hard_vocab_limit
        )
        with tempfile.TemporaryDirectory(prefix="seq2seq-spm-") as tmp:
            out = Path(tmp) / "model"
            settings = json.dumps({"options": options, "seed": seed})
            command = [sys.executable, "-m", "seq2seq.data.spm_child", settings, str(out)]
            child = subprocess.run(
                [*command, *map(str, paths)], capture_output=True, text=True, check=False
            )
            if child.returncode != 0:
                lines = child.stderr.strip().splitlines() or [f"exit status {child.returncode}"]
                raise _explain_training_error(RuntimeError(lines[-1]), vocab_size, model_type)
            return cls(out.read_bytes())

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        # SentencePiece encodes a list on several threads in C++.
        return self._sp.encode(list(texts))

    def _decode(self, ids: list[int]) -> str:
        return self._sp.decode(ids)

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def id_to_piece(self, i: int) -> str:
        if not 0 <= i < self.vocab_size:
            raise IndexError(f"id {i} outside the vocabulary [0, {self.vocab_size})")
        return self._sp.id_to_piece(i)

    def to_state(self) -> dict[str, Any]:
        return {"type": self.kind, "model_proto": self.model_proto}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> SentencePieceTokenizer:
        return cls(state["model_proto"])


def _explain_training_error(exc: RuntimeError, vocab_size: int, model_type: str) -> Exception:
    """Turn SentencePiece's internal check failures into errors a user can act on."""
    message = str(exc)
    too_high = re.search(r"value <= (\d+)", message)
    if too_high:
        return ValueError(
            f"vocab_size={vocab_size} is too large for this corpus: a {model_type} model "
            f"trained on it allows at most {too_high.group(1)} pieces; lower vocab_size"
        )
    too_low = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if too_low:
        return ValueError(
            f"vocab_size={vocab_size} is too small for this corpus: its characters and the "
            f"special pieces need at least {too_low.group(2)} ids; raise vocab_size or lower "
            "character_coverage"
        )
    if "sentences_.empty()" in message or "all_chars_count" in message:
        return ValueError("cannot train SentencePiece: the training text is empty")
    return ValueError(f"SentencePiece training failed: {message}")


class WordTokenizer(Tokenizer, kind="word"):
    """Whitespace-separated words; words outside the vocabulary become UNK.

    Args:
        words: the vocabulary without the special pieces; word ``k`` gets id ``4 + k``.
    """

    def __init__(self, words: Sequence[str]) -> None:
        self._pieces = [*SPECIAL_PIECES, *words]
        self._ids = {word: i for i, word in enumerate(self._pieces) if i >= len(SPECIAL_PIECES)}
        if len(self._ids) != len(words):
            raise ValueError("vocabulary words must be unique and differ from special pieces")

    @classmethod
    def build(
        cls, texts: Iterable[str], max_size: int | None = None, min_freq: int = 1
    ) -> WordTokenizer:
        """Collect the vocabulary of ``texts``, most frequent words first.

        Args:
            texts: sentences, split on whitespace.
            max_size: cap on ``vocab_size``, the four special ids included.
            min_freq: words seen fewer times are left out (they become UNK).
        """
        if max_size is not None and max_size < len(SPECIAL_PIECES):
            raise ValueError(f"max_size must be >= {len(SPECIAL_PIECES)}, got {max_size}")
        counts = Counter(itertools.chain.from_iterable(text.split() for text in texts))
        for piece in SPECIAL_PIECES:
            # A literal "<s>" in the text is a word, not BOS; keep it out so it maps to UNK.
            counts.pop(piece, None)
        # Ties broken alphabetically so the vocabulary does not depend on the text order.
        words = sorted(
            (w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w)
        )
        if max_size is not None:
            words = words[: max_size - len(SPECIAL_PIECES)]
        return cls(words)

    def encode(self, text: str) -> list[int]:
        get = self._ids.get
        return [get(word, UNK) for word in text.split()]

    def _decode(self, ids: list[int]) -> str:
        return " ".join(self._pieces[i] for i in ids)

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def id_to_piece(self, i: int) -> str:
        if not 0 <= i < self.vocab_size:
            raise IndexError(f"id {i} outside the vocabulary [0, {self.vocab_size})")
        return self._pieces[i]

    def to_state(self) -> dict[str, Any]:
        return {"type": self.kind, "words": self._pieces[len(SPECIAL_PIECES) :]}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> WordTokenizer:
        return cls(state["words"])


#: The ``kind`` values :func:`build_tokenizers` accepts.
TOKENIZER_KINDS = ("sentencepiece", "word")


def _file_lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield line.rstrip("\n")


def build_tokenizers(
    kind: str,
    src_texts: Iterable[str] | Path,
    tgt_texts: Iterable[str] | Path,
    *,
    vocab_size: int,
    joint: bool,
    model_type: ModelType = "unigram",
    hard_vocab_limit: bool = False,
) -> tuple[Tokenizer, Tokenizer]:
    """Build the source and target tokenizers from training text.

    Args:
        kind: ``"sentencepiece"`` or ``"word"``.
        src_texts: source training sentences, or a text file of them (one per line, UTF-8):
            SentencePiece then trains in a child process whose memory is freed when it ends
            (:meth:`SentencePieceTokenizer.train_on_files`).
        tgt_texts: target training sentences, or a text file of them.
        vocab_size: ids per tokenizer, special ones included (a cap for ``"word"``).
        joint: one tokenizer trained on both sides, returned twice (shared vocabulary).
        model_type: SentencePiece model, ``"unigram"`` or ``"bpe"``; ignored for ``"word"``.
        hard_vocab_limit: SentencePiece only: a ``vocab_size`` the corpus cannot fill is an
            error; False (the default) lowers it to what the corpus allows (a ``"word"``
            vocabulary is always capped, never filled up).

    Returns:
        ``(src_tokenizer, tgt_tokenizer)``.

    Raises:
        ValueError: unknown ``kind``, or a vocabulary that does not fit the corpus.
    """
    files = isinstance(src_texts, Path)
    if files != isinstance(tgt_texts, Path):
        raise TypeError("give both sides as texts or both as files")

    def texts(sources: list[Any]) -> Iterable[str]:
        return itertools.chain.from_iterable(_file_lines(s) if files else s for s in sources)

    def build(sources: list[Any]) -> Tokenizer:
        if kind == "sentencepiece":
            options = {"hard_vocab_limit": hard_vocab_limit}
            if files:
                return SentencePieceTokenizer.train_on_files(
                    sources, vocab_size, model_type, **options
                )
            return SentencePieceTokenizer.train(texts(sources), vocab_size, model_type, **options)
        return WordTokenizer.build(texts(sources), max_size=vocab_size)

    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; valid kinds: {list(TOKENIZER_KINDS)}")
    if joint:
        shared = build([src_texts, tgt_texts])
        return shared, shared
    return build([src_texts]), build([tgt_texts])
