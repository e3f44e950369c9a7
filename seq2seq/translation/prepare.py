"""Prepare a parallel corpus once into a memory-mapped store (``seq2seq-prepare``).

The steps, each bounded in memory whatever the corpus size:

1. scan every file of every split (:mod:`seq2seq.translation.scan`): all of today's checks
   (missing file, unaligned line counts, invalid UTF-8, short TSV lines, an empty split) fail
   here, before anything costly runs;
2. train the tokenizers on a deterministic sample of the training pairs
   (``data.tokenizer.sample`` pairs, all of them when the corpus is smaller);
3. encode every split chunk by chunk in worker processes (:mod:`.encode_chunk`) and append
   the ids to the store's files as the chunks come back, in order.

The store is keyed by the source files (path, size, modification time) and every setting the
ids depend on (:func:`store_parts`), and is built in a temporary folder renamed into place
(:func:`seq2seq.data.store.folder.build_once`), so a run never reads a stale or half-written
store. Its layout is in docs/data_store.md.
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.data.progress import Progress
from seq2seq.data.store.folder import build_once, file_fingerprint, store_key
from seq2seq.data.store.ragged import RaggedWriter
from seq2seq.data.store.tokenizer_files import save_tokenizer
from seq2seq.data.tokenizer import Tokenizer, build_tokenizers
from seq2seq.errors import ConfigError
from seq2seq.translation.corpus import CorpusError
from seq2seq.translation.encode_chunk import ChunkTask, encode_chunk, init_worker
from seq2seq.translation.scan import FileScan, scan_file

log = logging.getLogger(__name__)

#: Bumped whenever the layout or the meaning of a store's files changes.
STORE_VERSION = 1
SPLITS = ("train", "dev", "test")
#: Default ``data.tokenizer.sample``: training pairs the tokenizers learn from.
DEFAULT_SAMPLE = 1_000_000
#: Seed of the tokenizer sample; fixed, so that experiments of different seeds share a store.
SAMPLE_SEED = 0
#: Below this many lines in all, encoding runs in the preparing process: starting workers
#: (each imports the toolkit) would cost more than it saves.
PARALLEL_MIN_LINES = 200_000


@dataclass(frozen=True)
class CorpusFiles:
    """Where a corpus is and how to read it.

    Attributes:
        files: per split, the two plain files (source, target) or the one TSV file.
        columns: TSV fields of the source and target; None for plain files.
        errors: ``strict`` or ``replace`` (``data.encoding_errors``).
        described: per split, how the config chose its files, for the missing-file error.
    """

    files: Mapping[str, tuple[Path, ...]]
    columns: tuple[int, int] | None
    errors: str
    described: Mapping[str, str]


@dataclass
class SplitScan:
    """The scans of a split's files and the pairs they hold."""

    split: str
    scans: list[FileScan]
    empty: np.ndarray  # (lines,) bool: a side is blank, the pair is dropped

    @property
    def lines(self) -> int:
        return self.scans[0].lines

    @property
    def pairs(self) -> int:
        return int(len(self.empty) - self.empty.sum())

    @property
    def source(self) -> str:
        return " + ".join(str(scan.path) for scan in self.scans)

    def tasks(self, columns: tuple[int, int] | None, errors: str) -> Iterator[ChunkTask]:
        step = self.scans[0].chunk_lines
        for k in range(len(self.scans[0].starts) - 1):
            ranges = tuple((str(s.path), *s.chunk(k)) for s in self.scans)
            yield ChunkTask(ranges, k * step, columns, errors)


def scan_split(split: str, corpus: CorpusFiles) -> SplitScan:
    """Check the files of ``split`` and find its pairs (see the module's step 1)."""
    files = corpus.files[split]
    if corpus.columns is None:
        scans = [scan_file(f, errors=corpus.errors) for f in files]
        src, tgt = scans
        if src.lines != tgt.lines:
            raise CorpusError(
                f"line counts differ: {src.path} has {src.lines} lines but {tgt.path} has "
                f"{tgt.lines}; the files must be line-aligned (one translation per line)"
            )
        empty = src.blank[0] | tgt.blank[0]
    else:
        scans = [scan_file(files[0], errors=corpus.errors, columns=corpus.columns)]
        empty = scans[0].blank[0] | scans[0].blank[1]
    result = SplitScan(split, scans, empty)
    if result.pairs == 0:
        raise CorpusError(f"{split} split ({', '.join(map(str, files))}) has no sentence pairs")
    replaced = sum(s.replaced for s in scans)
    if replaced:
        log.warning("%s: replaced invalid UTF-8 in %d lines", split, replaced)
    log.info("%s: %d pairs from %s", split, result.pairs, result.source)
    if len(empty) > result.pairs:
        log.info("%s: dropped %d empty pairs", split, len(empty) - result.pairs)
    return result


def store_parts(corpus: CorpusFiles, tokenizer: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the store's content depends on: its key is a hash of this."""
    return {
        "version": STORE_VERSION,
        "tokenizer": dict(tokenizer),
        "columns": corpus.columns,
        "errors": corpus.errors,
        "files": {
            split: [file_fingerprint(f) for f in files] for split, files in corpus.files.items()
        },
    }


def _sample_rows(scan: SplitScan, sample: int | None) -> np.ndarray:
    """Sorted 0-based lines of the pairs the tokenizers train on."""
    kept = np.flatnonzero(~scan.empty)
    if sample is None or sample >= len(kept):
        return kept
    chosen = np.random.default_rng(SAMPLE_SEED).choice(len(kept), size=sample, replace=False)
    return kept[np.sort(chosen)]


def _write_sample(
    scan: SplitScan, corpus: CorpusFiles, rows: np.ndarray, folder: Path
) -> tuple[Path, Path]:
    """Write the stripped source and target of lines ``rows`` (sorted) to two text files in
    ``folder``, streaming the corpus: the sample is never held in memory."""
    wanted = np.zeros(scan.lines, dtype=bool)
    wanted[rows] = True
    paths = (folder / "sample.src.txt", folder / "sample.tgt.txt")
    errors = corpus.errors
    with open(paths[0], "w", encoding="utf-8") as src, open(paths[1], "w", encoding="utf-8") as tgt:
        for raw in _lines_of(scan, wanted):
            if corpus.columns is None:
                texts = [r.decode("utf-8", errors=errors) for r in raw]
            else:
                fields = raw[0].decode("utf-8", errors=errors).split("\t")
                texts = [fields[c] for c in corpus.columns]
            src.write(texts[0].strip() + "\n")
            tgt.write(texts[1].strip() + "\n")
    return paths


def _lines_of(scan: SplitScan, wanted: np.ndarray) -> Iterator[tuple[bytes, ...]]:
    """The raw lines ``i`` with ``wanted[i]`` of every file of ``scan``, side by side."""
    handles = [open(s.path, "rb") for s in scan.scans]  # noqa: SIM115 (closed below)
    try:
        for handle, s in zip(handles, scan.scans, strict=True):
            handle.seek(int(s.starts[0]))  # after a byte-order mark
        for i, lines in enumerate(zip(*handles, strict=True)):
            if wanted[i]:
                yield lines
    finally:
        for handle in handles:
            handle.close()


def train_tokenizers(
    scan: SplitScan, corpus: CorpusFiles, config: Mapping[str, Any], folder: Path
) -> tuple[Tokenizer, Tokenizer, int]:
    """Tokenizers trained on a sample of the training pairs; returns them and the sample size.
    The sample is written to ``folder`` for the training and removed after it.

    Raises:
        ConfigError: a ``data.tokenizer`` key is unknown, or the vocabulary does not fit the
            corpus (the message names the config key).
    """
    options = dict(config)
    kind = options.pop("kind", None)
    sample = options.pop("sample", DEFAULT_SAMPLE)
    if sample is not None and (not isinstance(sample, int) or sample < 1):
        raise ConfigError(
            f"data.tokenizer.sample must be a positive number of pairs or null, got {sample!r}"
        )
    rows = _sample_rows(scan, sample)
    what = "all" if len(rows) == scan.pairs else "a sample of"
    log.info("training the %s tokenizers on %s %d training pairs", kind, what, len(rows))
    started = time.monotonic()
    src, tgt = _write_sample(scan, corpus, rows, folder)
    try:
        src_tok, tgt_tok = build_tokenizers(kind, src, tgt, **options)
    except TypeError as err:
        raise ConfigError(f"data.tokenizer ({dict(config)}): {err}") from None
    except ValueError as err:
        # SentencePiece's limits name its own arguments: say which config keys they are.
        text = str(err).replace("vocab_size", "data.tokenizer.vocab_size")
        text = text.replace("character_coverage", "data.tokenizer.character_coverage")
        raise ConfigError(f"data.tokenizer: {text}") from None
    finally:
        src.unlink(missing_ok=True)
        tgt.unlink(missing_ok=True)
    log.info("tokenizers trained in %.1f s", time.monotonic() - started)
    return src_tok, tgt_tok, len(rows)


def default_workers() -> int:
    """Encoding processes: the CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _write_split(
    folder: Path,
    scan: SplitScan,
    corpus: CorpusFiles,
    ids_dtype: str,
    pool: Any,
) -> dict[str, Any]:
    """Encode ``scan``'s chunks (in ``pool``, or here when None) into ``folder``."""
    folder.mkdir()
    writers = {
        "src": RaggedWriter(folder, "src", ids_dtype),
        "tgt": RaggedWriter(folder, "tgt", ids_dtype),
        "tgt_text": RaggedWriter(folder, "tgt_text", "uint8"),
    }
    tasks = scan.tasks(corpus.columns, corpus.errors)
    results = pool.imap(encode_chunk, tasks) if pool is not None else map(encode_chunk, tasks)
    with (
        open(folder / "lines.values", "xb") as lines_file,
        Progress(f"encoding {scan.split}", total=scan.lines, unit="pairs") as shown,
    ):
        for result in results:
            writers["src"].append(result.src_ids, result.src_lengths)
            writers["tgt"].append(result.tgt_ids, result.tgt_lengths)
            writers["tgt_text"].append(result.tgt_text, result.text_lengths)
            lines_file.write(result.line_numbers.astype("<i8").tobytes())
            shown.update(result.lines)
    entry: dict[str, Any] = {name: writer.close() for name, writer in writers.items()}
    if entry["src"]["rows"] != scan.pairs:
        raise RuntimeError(f"{scan.split}: encoded {entry['src']['rows']} of {scan.pairs} pairs")
    entry.update(
        pairs=scan.pairs,
        lines=scan.lines,
        dropped_empty=scan.lines - scan.pairs,
        replaced_lines=sum(s.replaced for s in scan.scans),
        files=[
            {"path": str(s.path), "bytes": s.size, "sha256": s.sha256, "lines": s.lines}
            for s in scan.scans
        ],
    )
    return entry


def build_store(
    folder: Path,
    corpus: CorpusFiles,
    tokenizer: Mapping[str, Any],
    parts: Mapping[str, Any],
    workers: int | None = None,
) -> dict[str, Any]:
    """Fill ``folder`` (empty) with the store of ``corpus``; returns its manifest."""
    started = time.monotonic()
    scans = {split: scan_split(split, corpus) for split in SPLITS}
    src_tok, tgt_tok, sampled = train_tokenizers(scans["train"], corpus, tokenizer, folder)
    names = {
        side: save_tokenizer(tok, folder, side)
        for side, tok in (("src", src_tok), ("tgt", tgt_tok))
    }
    largest = max(src_tok.vocab_size, tgt_tok.vocab_size)
    ids_dtype = "uint16" if largest <= 1 << 16 else "int32"
    workers = default_workers() if workers is None else workers
    total = sum(scan.lines for scan in scans.values())
    states = (src_tok.to_state(), tgt_tok.to_state())
    pool = None
    if workers > 1 and total >= PARALLEL_MIN_LINES:
        log.info("encoding %d lines in %d processes", total, workers)
        # spawn, not fork: the preparing process may hold threads (SentencePiece's, torch's)
        # whose locks a forked child would inherit held.
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(workers, initializer=init_worker, initargs=states)
    else:
        init_worker(*states)
    try:
        splits = {
            split: _write_split(folder / split, scan, corpus, ids_dtype, pool)
            for split, scan in scans.items()
        }
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return {
        "format": "seq2seq-corpus-store",
        "version": STORE_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "parts": dict(parts),
        "ids_dtype": np.dtype(ids_dtype).newbyteorder("<").str,
        "tokenizers": {
            **names,
            "kind": src_tok.kind,
            "src_vocab_size": src_tok.vocab_size,
            "tgt_vocab_size": tgt_tok.vocab_size,
            "trained_on_pairs": sampled,
        },
        "splits": splits,
    }


def prepare_store(
    root: Path,
    corpus: CorpusFiles,
    tokenizer: Mapping[str, Any],
    workers: int | None = None,
) -> tuple[Path, bool]:
    """The store of ``corpus`` under ``root``, prepared unless one for the same files and
    settings exists; returns ``(folder, prepared_now)``."""
    for split, files in corpus.files.items():
        # Checked first: the key is made of the files' sizes and times.
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise CorpusError(
                f"{split} split: missing {', '.join(missing)} ({corpus.described[split]})"
            )
    parts = store_parts(corpus, tokenizer)
    key = store_key(parts)
    try:
        return build_once(
            root,
            key,
            lambda tmp: build_store(tmp, corpus, tokenizer, parts, workers),
            what=f"the corpus store {root / key}",
        )
    except OSError as err:
        # Reading errors are CorpusErrors already: this is the store's own disk.
        raise ConfigError(
            f"cannot write the corpus store in {root} ({err.strerror or err}); free space "
            "there or set data.store_dir to a writable folder"
        ) from None
