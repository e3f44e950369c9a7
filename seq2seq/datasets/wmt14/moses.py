"""The optional Moses tokenisation (``sacremoses``), chunk by chunk in worker processes."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import Any

from seq2seq.datasets.wmt14.errors import Wmt14Error

#: Sentence pairs per Moses task: large enough that the process round trip is negligible,
#: small enough that the few chunks in flight take little memory.
CHUNK_LINES = 10_000

_TOKENIZERS: dict[str, Any] = {}


def _moses_tokenizers() -> dict[str, Any]:
    """One Moses tokenizer per language, made once per process."""
    if not _TOKENIZERS:
        try:
            from sacremoses import MosesTokenizer
        except ImportError:
            raise Wmt14Error(
                "--moses needs the optional dependency sacremoses: pip install 'seq2seq[wmt14]'"
            ) from None
        _TOKENIZERS.update(en=MosesTokenizer(lang="en"), fr=MosesTokenizer(lang="fr"))
    return _TOKENIZERS


def moses_tokenize(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Tokenise ``(English, French)`` pairs as Moses' ``tokenizer.perl`` does.

    Characters are not escaped (``&`` stays ``&``, not ``&amp;``): the output is read as plain
    text by the toolkit and compared with plain-text references.
    """
    tokenizers = _moses_tokenizers()

    def tokenize(lang: str, text: str) -> str:
        return tokenizers[lang].tokenize(text, escape=False, return_str=True)

    return [(tokenize("en", en), tokenize("fr", fr)) for en, fr in pairs]


def _chunks(pairs: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    iterator = iter(pairs)
    while chunk := list(islice(iterator, size)):
        yield chunk


def tokenized(
    pairs: Iterable[tuple[str, str]], workers: int, chunk_lines: int = CHUNK_LINES
) -> Iterator[tuple[str, str]]:
    """``pairs`` Moses-tokenised in ``workers`` processes, chunk by chunk, in input order.

    At most two chunks per worker are in flight (``Executor.map`` would read the whole
    corpus ahead into memory).
    """
    _moses_tokenizers()  # fail here, with the install hint, rather than in a worker
    if workers <= 1:
        for chunk in _chunks(pairs, chunk_lines):
            yield from moses_tokenize(chunk)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[list[tuple[str, str]]]] = deque()
        for chunk in _chunks(pairs, chunk_lines):
            pending.append(pool.submit(moses_tokenize, chunk))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
