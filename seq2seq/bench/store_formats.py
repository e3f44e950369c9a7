"""Three on-disk formats for a tokenized corpus, measured for what training needs:
``python -m seq2seq.bench.store_formats --pairs 3600000 --work /tmp/formats``.

The same ragged pairs of token ids (synthetic and deterministic, or with ``--store
STORE/train`` a prepared store's split) are written as

- ``numpy``: this toolkit's store layout (:class:`~seq2seq.data.store.ragged.RaggedWriter`:
  flat ``values`` and int64 ``offsets`` per side, memory-mapped);
- ``arrow``: a Hugging Face ``datasets`` Arrow dataset (``save_to_disk``; ``load_from_disk``
  memory-maps it), list-of-uint16 columns ``src``/``tgt`` and int32 ``src_len``/``tgt_len``;
- ``litdata``: Lightning ``litdata.optimize`` chunks read back by a local
  ``StreamingDataset``, each item ``{"src", "tgt", "src_len", "tgt_len"}``.

For each, a fresh process writes it, and another fresh process (so that its memory is that
format's alone) measures: importing the library, opening the data set, resident memory
after opening, getting every source and target length as numpy int64 arrays (what the
length-bucketing sampler needs each epoch), ``--reads`` random rows by index (a fixed seed)
returned as int64 arrays, and resident memory after them, split into anonymous memory
(private to the process: a DataLoader worker would hold its own) and file-backed memory
(page-cache pages mapped from the files, shared by every process of the machine). Every
format must return the same lengths and rows (checksums), or the run fails.

By default the files are read hot (in the page cache, just written); ``--cold`` evicts each
format's files from the page cache (``posix_fadvise``) before its reading process starts.
Results go to ``WORK/results.json`` and are printed as a Markdown table. It is a benchmark,
not a test: run it on a quiet machine. ``datasets`` and ``litdata`` are optional
(``pip install -e .[bench-formats]``); a format whose library is missing is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from seq2seq.data.store.folder import read_manifest
from seq2seq.data.store.ragged import Ragged, RaggedWriter

FORMATS = ("numpy", "arrow", "litdata")
#: The Python package each format needs (numpy is always there).
LIBRARIES = {"numpy": "numpy", "arrow": "datasets", "litdata": "litdata"}
#: Pairs generated, written and converted at a time.
CHUNK_PAIRS = 100_000
#: Synthetic token ids are drawn from [FIRST_ID, VOCAB) (ids below are specials).
FIRST_ID, VOCAB = 4, 8000
#: Shortest and longest synthetic sentence in tokens.
MIN_LEN, MAX_LEN = 5, 100
#: Rows per batch for the batched random reads (what a DataLoader asks of a data set
#: defining ``__getitems__``, as ``datasets.Dataset`` does).
BATCH_ROWS = 100
#: Stop iterating litdata for lengths after this many seconds and extrapolate.
LENGTHS_BUDGET_S = 90.0
MANIFEST = "manifest.json"


# --- the data ------------------------------------------------------------------------------


@dataclass
class Chunk:
    """Consecutive pairs: each side's values in a row and the length of every row."""

    src: np.ndarray
    src_len: np.ndarray
    tgt: np.ndarray
    tgt_len: np.ndarray

    def rows(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(src, tgt)`` of every pair, views into the chunk."""
        src_end, tgt_end = np.cumsum(self.src_len), np.cumsum(self.tgt_len)
        for i in range(len(self.src_len)):
            yield (
                self.src[src_end[i] - self.src_len[i] : src_end[i]],
                self.tgt[tgt_end[i] - self.tgt_len[i] : tgt_end[i]],
            )


@dataclass(frozen=True)
class Source:
    """Where the pairs come from: ``pairs`` synthetic ones of ``seed``, or the split folder
    ``store`` of a prepared corpus store (``pairs`` then caps how many are used; 0: all)."""

    pairs: int
    seed: int = 0
    store: Path | None = None

    def total(self) -> int:
        """Number of pairs the source yields."""
        if self.store is None:
            return self.pairs
        rows = int(_store_entry(self.store)["src"]["rows"])
        return min(rows, self.pairs) if self.pairs else rows

    def dtype(self) -> str:
        """numpy dtype name of the token ids."""
        if self.store is None:
            return "uint16"
        return np.dtype(_store_entry(self.store)["src"]["dtype"]).name

    def num_chunks(self) -> int:
        return -(-self.total() // CHUNK_PAIRS)

    def chunk(self, k: int) -> Chunk:
        """Pairs ``[k * CHUNK_PAIRS, (k + 1) * CHUNK_PAIRS)``; the same on every call."""
        start = k * CHUNK_PAIRS
        stop = min(start + CHUNK_PAIRS, self.total())
        if self.store is None:
            return synthetic_chunk(stop - start, self.seed * 1_000_003 + k)
        entry = _store_entry(self.store)
        src = Ragged(self.store, "src", entry["src"])
        tgt = Ragged(self.store, "tgt", entry["tgt"])
        return Chunk(
            np.asarray(src.values[src.offsets[start] : src.offsets[stop]]),
            src.lengths()[start:stop],
            np.asarray(tgt.values[tgt.offsets[start] : tgt.offsets[stop]]),
            tgt.lengths()[start:stop],
        )

    def chunks(self) -> Iterator[Chunk]:
        for k in range(self.num_chunks()):
            yield self.chunk(k)


def _store_entry(split_folder: Path) -> dict[str, Any]:
    """The manifest entry of a prepared store's split folder (``STORE/train``)."""
    return read_manifest(split_folder.parent)["splits"][split_folder.name]


def synthetic_chunk(pairs: int, seed: int) -> Chunk:
    """``pairs`` random pairs: source lengths log-normal (median 26, mean about 30 tokens)
    clipped to [MIN_LEN, MAX_LEN], targets about 10 % longer, ids uniform below VOCAB."""
    rng = np.random.default_rng(seed)
    src_len = np.clip(np.rint(rng.lognormal(np.log(26), 0.55, pairs)), MIN_LEN, MAX_LEN)
    ratio = rng.lognormal(np.log(1.1), 0.15, pairs)
    tgt_len = np.clip(np.rint(src_len * ratio), MIN_LEN, MAX_LEN)
    src_len, tgt_len = src_len.astype(np.int64), tgt_len.astype(np.int64)
    src = rng.integers(FIRST_ID, VOCAB, int(src_len.sum()), dtype=np.uint16)
    tgt = rng.integers(FIRST_ID, VOCAB, int(tgt_len.sum()), dtype=np.uint16)
    return Chunk(src, src_len, tgt, tgt_len)


# --- the three formats ---------------------------------------------------------------------


class Reader(Protocol):
    """An opened data set, as the training side uses it."""

    def __len__(self) -> int: ...

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows,)`` int64 source and target length of every row."""
        ...

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i``'s source and target ids as int64 arrays."""
        ...

    def rows(self, indices: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Several rows at once (a batch), by the format's fastest means."""
        ...


def write_numpy(source: Source, folder: Path) -> None:
    """This toolkit's layout: ``src``/``tgt`` ``.values`` + ``.offsets`` and a manifest."""
    folder.mkdir(parents=True)
    dtype = source.dtype()
    src, tgt = RaggedWriter(folder, "src", dtype), RaggedWriter(folder, "tgt", dtype)
    for chunk in source.chunks():
        src.append(chunk.src, chunk.src_len)
        tgt.append(chunk.tgt, chunk.tgt_len)
    manifest = {"src": src.close(), "tgt": tgt.close()}
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


class NumpyReader:
    """The numpy layout through :class:`~seq2seq.data.store.ragged.Ragged`, as
    :class:`~seq2seq.translation.store.StoredPairs` reads it."""

    def __init__(self, folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        self.src = Ragged(folder, "src", manifest["src"])
        self.tgt = Ragged(folder, "tgt", manifest["tgt"])

    def __len__(self) -> int:
        return len(self.src)

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return self.src.lengths("int64"), self.tgt.lengths("int64")

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.src[i].astype(np.int64), self.tgt[i].astype(np.int64)

    def rows(self, indices: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.row(i) for i in indices]


def write_arrow(source: Source, folder: Path) -> None:
    """An Arrow dataset: one ``Dataset.from_dict`` per chunk (built from Arrow list arrays,
    no Python object per row), concatenated, then ``save_to_disk``."""
    import datasets
    import pyarrow as pa

    ids = datasets.Value(source.dtype())
    features = datasets.Features(
        {
            "src": datasets.Sequence(ids),
            "tgt": datasets.Sequence(ids),
            "src_len": datasets.Value("int32"),
            "tgt_len": datasets.Value("int32"),
        }
    )

    def lists(values: np.ndarray, lengths: np.ndarray) -> pa.Array:
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))

    parts = [
        datasets.Dataset.from_dict(
            {
                "src": lists(c.src, c.src_len),
                "tgt": lists(c.tgt, c.tgt_len),
                "src_len": pa.array(c.src_len.astype(np.int32)),
                "tgt_len": pa.array(c.tgt_len.astype(np.int32)),
            },
            features=features,
        )
        for c in source.chunks()
    ]
    datasets.disable_progress_bars()
    datasets.concatenate_datasets(parts).save_to_disk(str(folder))


class ArrowReader:
    """``load_from_disk`` (memory-mapped), numpy-formatted: the lengths from their columns,
    a row as ``ds[i]``, a batch as ``ds[indices]`` (``Dataset.__getitems__``'s path)."""

    def __init__(self, folder: Path) -> None:
        import datasets

        self.ds = datasets.load_from_disk(str(folder)).with_format("numpy")

    def __len__(self) -> int:
        return len(self.ds)

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ds["src_len"][:], self.ds["tgt_len"][:]

    def lengths_pyarrow(self) -> tuple[np.ndarray, np.ndarray]:
        """The same through the Arrow table underneath (no ``datasets`` formatting)."""
        table = self.ds.data
        return tuple(table.column(c).to_numpy().astype(np.int64) for c in ("src_len", "tgt_len"))

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        item = self.ds[i]
        return item["src"].astype(np.int64, copy=False), item["tgt"].astype(np.int64, copy=False)

    def rows(self, indices: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        batch = self.ds[indices]
        return [
            (s.astype(np.int64, copy=False), t.astype(np.int64, copy=False))
            for s, t in zip(batch["src"], batch["tgt"], strict=True)
        ]


def _litdata_items(source: Source, k: int) -> Iterator[dict[str, Any]]:
    """``litdata.optimize``'s function: every pair of chunk ``k`` as one item."""
    for src, tgt in source.chunk(k).rows():
        yield {"src": src, "tgt": tgt, "src_len": len(src), "tgt_len": len(tgt)}


def write_litdata(source: Source, folder: Path) -> None:
    """``litdata.optimize`` into 64 MB chunks, uncompressed, one worker process (as the
    other formats are written by one process)."""
    from litdata import optimize

    optimize(
        fn=partial(_litdata_items, source),
        inputs=list(range(source.num_chunks())),
        output_dir=str(folder),
        chunk_bytes="64MB",
        num_workers=1,
        verbose=False,
    )


class LitdataReader:
    """A local ``StreamingDataset`` (its chunks memory-mapped in place, no cache copy),
    indexed by row. ``batch_decode=0`` decodes only the item asked for; the default
    (``"auto"``) decodes a window of 256 items per access, which suits streaming in order
    but makes each random read decode 256 items. It has no column access: the lengths
    come from decoding every item in order (for at most LENGTHS_BUDGET_S seconds: the
    arrays returned are then shorter than the data set)."""

    def __init__(self, folder: Path, batch_decode: int | str = 0) -> None:
        from litdata import StreamingDataset

        self.ds = StreamingDataset(
            str(folder), cache_dir=str(folder.parent / "litdata_cache"), batch_decode=batch_decode
        )

    def __len__(self) -> int:
        return len(self.ds)

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        rows = len(self.ds)
        src, tgt = np.zeros(rows, np.int64), np.zeros(rows, np.int64)
        started = time.perf_counter()
        for i, item in enumerate(self.ds):
            src[i], tgt[i] = item["src_len"], item["tgt_len"]
            if time.perf_counter() - started > LENGTHS_BUDGET_S:
                return src[: i + 1], tgt[: i + 1]
        return src, tgt

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        item = self.ds[i]
        return item["src"].astype(np.int64), item["tgt"].astype(np.int64)

    def rows(self, indices: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.row(i) for i in indices]  # no batched access by index


WRITERS: dict[str, Callable[[Source, Path], None]] = {
    "numpy": write_numpy,
    "arrow": write_arrow,
    "litdata": write_litdata,
}
READERS: dict[str, Callable[[Path], Reader]] = {
    "numpy": NumpyReader,
    "arrow": ArrowReader,
    "litdata": LitdataReader,
}


# --- measuring -----------------------------------------------------------------------------


def memory_mib() -> dict[str, float]:
    """This process's resident memory in MiB (Linux ``/proc``): ``rss`` in all, ``anon``
    (private) and ``file`` (mapped file pages, shared through the page cache)."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}
    out: dict[str, float] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in fields:
                out[fields[key]] = int(value.split()[0]) / 1024
    return out


def random_indices(rows: int, count: int, seed: int) -> list[int]:
    """``count`` row indices drawn uniformly with ``seed``, the same for every format."""
    return np.random.default_rng(seed).integers(0, rows, count).tolist()


def checksum(rows: list[tuple[np.ndarray, np.ndarray]], start: int = 0) -> int:
    """An order-sensitive checksum of rows read (the first at position ``start``), to check
    that all formats agree."""
    total = 0
    for k, (src, tgt) in enumerate(rows, start + 1):
        total += k * (int(src.sum()) + 3 * int(tgt.sum()) + 7 * len(src) + 11 * len(tgt))
    return total


def read_rows(reader: Reader, indices: list[int], batch: int | None) -> tuple[float, int]:
    """Seconds spent in the reader fetching ``indices``, one by one (``batch`` None) or
    ``batch`` at a time, and the rows' checksum. Each row or batch is dropped once summed,
    as a training step drops its batch, so that memory measured afterwards is the
    reader's; the summing is not timed (the timer's own cost, about 0.1 µs a call, is)."""
    seconds, total = 0.0, 0
    step = batch or 1
    for k in range(0, len(indices), step):
        started = time.perf_counter()
        rows = reader.rows(indices[k : k + step]) if batch else [reader.row(indices[k])]
        seconds += time.perf_counter() - started
        total += checksum(rows, k)
    return seconds, total


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def evict(folder: Path) -> None:
    """Drop the files of ``folder`` from the page cache (written out first), so that the
    next reader finds them cold."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def measure_write(fmt: str, source: Source, folder: Path) -> dict[str, Any]:
    """Write ``source`` as ``fmt`` into ``folder`` (replaced); seconds and disk bytes."""
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    WRITERS[fmt](source, folder)
    return {"write_s": time.perf_counter() - started, "disk_bytes": folder_bytes(folder)}


def measure_read(fmt: str, folder: Path, reads: int, seed: int) -> dict[str, Any]:
    """Open ``folder`` as ``fmt`` and time what training asks of it (run in a fresh
    process: the imports and memory are then this format's alone)."""
    result: dict[str, Any] = {"rss_start": memory_mib()}
    started = time.perf_counter()
    if LIBRARIES[fmt] != "numpy":
        __import__(LIBRARIES[fmt])
    result["import_s"] = time.perf_counter() - started
    started = time.perf_counter()
    reader = READERS[fmt](folder)
    result["open_s"] = time.perf_counter() - started
    result["rss_open"] = memory_mib()

    started = time.perf_counter()
    src_len, tgt_len = reader.lengths()
    result["lengths_s"] = time.perf_counter() - started
    rows, done = len(reader), len(src_len)
    if done < rows:  # litdata past its time budget
        result["lengths_s"] *= rows / done
        result["lengths_note"] = f"extrapolated from {done:,} of {rows:,} rows"
    result["lengths_rows"] = done
    result["lengths_checksum"] = int(src_len.sum() + 3 * tgt_len.sum())
    result["rss_lengths"] = memory_mib()
    if isinstance(reader, ArrowReader):
        started = time.perf_counter()
        reader.lengths_pyarrow()
        result["lengths_pyarrow_s"] = time.perf_counter() - started

    indices = random_indices(rows, reads, seed)
    result["reads_s"], result["reads_checksum"] = read_rows(reader, indices, None)
    result["batched_reads_s"], batched = read_rows(reader, indices, BATCH_ROWS)
    if batched != result["reads_checksum"]:
        raise AssertionError(f"{fmt}: batched reads differ from single reads")
    result["rss_reads"] = memory_mib()
    result["rows"] = rows
    if fmt == "litdata":  # what the default decoding costs per random read
        auto = LitdataReader(folder, batch_decode="auto")
        sample = indices[: max(1, reads // 20)]
        started = time.perf_counter()
        for i in sample:
            auto.row(i)
        result["auto_decode_read_us"] = (time.perf_counter() - started) / len(sample) * 1e6
    return result


def child(argv: list[str]) -> dict[str, Any]:
    """Run one measurement in this process (``--child write|read``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=("write", "read"))
    parser.add_argument("--format", choices=FORMATS)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--source", type=str, default="{}")
    parser.add_argument("--reads", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.child == "write":
        spec = json.loads(args.source)
        store = Path(spec["store"]) if spec.get("store") else None
        source = Source(int(spec["pairs"]), int(spec["seed"]), store)
        return measure_write(args.format, source, args.folder)
    return measure_read(args.format, args.folder, args.reads, args.seed)


def in_subprocess(args: list[str]) -> dict[str, Any]:
    """Run ``child(args)`` in a fresh interpreter; its result (the last stdout line)."""
    command = [sys.executable, "-m", "seq2seq.bench.store_formats", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_format(fmt: str, source: Source, work: Path, reads: int, cold: bool) -> dict[str, Any]:
    """Write then read ``fmt``, each in its own process."""
    folder = work / fmt
    spec = json.dumps(
        {"pairs": source.pairs, "seed": source.seed, "store": source.store and str(source.store)}
    )
    result = in_subprocess(
        ["--child", "write", "--format", fmt, "--folder", str(folder), "--source", spec]
    )
    if cold:
        evict(folder)
    result |= in_subprocess(
        ["--child", "read", "--format", fmt, "--folder", str(folder), "--reads", str(reads)]
    )
    shutil.rmtree(work / "litdata_cache", ignore_errors=True)
    return result


# --- reporting -----------------------------------------------------------------------------


def table(results: dict[str, dict[str, Any]], reads: int) -> str:
    """The results as a Markdown table, one column per format."""
    names = list(results)

    def line(label: str, value: Callable[[dict[str, Any]], str]) -> str:
        return f"| {label} | " + " | ".join(value(results[n]) for n in names) + " |"

    def mib(key: str, part: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: f"{r[key][part] - r['rss_start'][part]:.0f}"

    def lengths(r: dict[str, Any]) -> str:
        return f"{r['lengths_s']:.3f}" + (" (extrapolated)" if "lengths_note" in r else "")

    lines = [
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        line("write (s)", lambda r: f"{r['write_s']:.1f}"),
        line("disk (MB)", lambda r: f"{r['disk_bytes'] / 1e6:.0f}"),
        line("import library (s)", lambda r: f"{r['import_s']:.2f}"),
        line("open (s)", lambda r: f"{r['open_s']:.4f}"),
        line("RSS after import + open, private (MiB)", mib("rss_open", "anon")),
        line("RSS after import + open, file-backed (MiB)", mib("rss_open", "file")),
        line("all src + tgt lengths as int64 (s)", lengths),
        line(f"{reads:,} random rows, one by one (s)", lambda r: f"{r['reads_s']:.2f}"),
        line("  per row (µs)", lambda r: f"{r['reads_s'] / reads * 1e6:.1f}"),
        line(
            f"{reads:,} random rows, batches of {BATCH_ROWS} (s)",
            lambda r: f"{r['batched_reads_s']:.2f}",
        ),
        line("RSS after the reads, private (MiB)", mib("rss_reads", "anon")),
        line("RSS after the reads, file-backed (MiB)", mib("rss_reads", "file")),
    ]
    return "\n".join(lines)


def check_agreement(results: dict[str, dict[str, Any]]) -> None:
    """Every format must have read the same rows (and, where complete, lengths)."""
    reads = {n: r["reads_checksum"] for n, r in results.items()}
    if len(set(reads.values())) > 1:
        raise AssertionError(f"formats read different rows: {reads}")
    full = {n: r["lengths_checksum"] for n, r in results.items() if "lengths_note" not in r}
    if len(set(full.values())) > 1:
        raise AssertionError(f"formats returned different lengths: {full}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        print(json.dumps(child(argv)), flush=True)
        # litdata leaves a non-daemon thread behind that keeps the interpreter from exiting.
        os._exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3_600_000, help="synthetic pairs")
    parser.add_argument("--store", type=Path, help="a prepared store's split folder instead")
    parser.add_argument("--work", type=Path, default=Path("/tmp/formats"))
    parser.add_argument("--reads", type=int, default=100_000, help="random rows read")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--cold", action="store_true", help="evict the files before reading")
    args = parser.parse_args(argv)

    source = Source(args.pairs if args.store is None else 0, args.seed, args.store)
    args.work.mkdir(parents=True, exist_ok=True)
    machine = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }
    results: dict[str, dict[str, Any]] = {}
    for fmt in args.formats:
        library = LIBRARIES[fmt]
        if importlib.util.find_spec(library) is None:
            print(f"{fmt}: {library} is not installed, skipped", file=sys.stderr)
            continue
        if library != "numpy":
            machine[library] = __import__("importlib.metadata").metadata.version(library)
        results[fmt] = run_format(fmt, source, args.work, args.reads, args.cold)
        print(f"{fmt}: done", file=sys.stderr, flush=True)
    check_agreement(results)

    rows = next(iter(results.values()))["rows"]
    print(
        f"CPU {machine['cpu_capability']}, {machine['cpus']} CPUs; {rows:,} pairs "
        f"({'synthetic' if args.store is None else args.store}), "
        f"{'cold' if args.cold else 'hot'} page cache; all formats read the same rows\n"
    )
    print(table(results, args.reads), flush=True)
    for fmt, r in results.items():
        if "lengths_note" in r:
            print(f"\n{fmt} lengths: {r['lengths_note']}")
        if "lengths_pyarrow_s" in r:
            print(f"\n{fmt} lengths through pyarrow directly: {r['lengths_pyarrow_s']:.3f} s")
        if "auto_decode_read_us" in r:
            auto = r["auto_decode_read_us"]
            print(f"\n{fmt}, default batch_decode='auto': {auto:.0f} µs per random row")
    report = {
        "command": " ".join(["python -m seq2seq.bench.store_formats", *argv]),
        "machine": machine,
        "source": {**asdict(source), "store": args.store and str(args.store), "rows": rows},
        "reads": args.reads,
        "cold": args.cold,
        "results": results,
    }
    (args.work / "results.json").write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
