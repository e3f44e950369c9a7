"""Variable-length rows in two flat files: ``{name}.values`` and ``{name}.offsets``.

Row ``i`` is ``values[offsets[i]:offsets[i + 1]]``. Both files are raw little-endian arrays
(``values`` of the dtype the manifest names, ``offsets`` int64 with one entry more than there
are rows, starting at 0), so any language can read them and every process can map them:
opening a store costs no reading, pages come from the page cache shared by all the processes
of a machine (DDP ranks, DataLoader workers, other runs), and nothing is copied per process.
The files are raw arrays, not ``.npy``, so that they can be appended to chunk by chunk while
a corpus is encoded; their dtype and length are in the store's manifest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

#: Byte order of every file of a store, whatever the machine's.
ENDIAN = "<"


def _dtype(name: str) -> np.dtype:
    return np.dtype(name).newbyteorder(ENDIAN)


def map_array(path: Path, dtype: np.dtype, count: int) -> np.ndarray:
    """``(count,)`` read-only view of a raw array file; an empty file maps to an empty array
    (``mmap`` refuses zero-length files)."""
    if count == 0:
        return np.zeros(0, dtype=dtype)
    size = path.stat().st_size
    if size != count * dtype.itemsize:
        raise ValueError(
            f"{path}: {size} bytes, expected {count * dtype.itemsize} ({count} × {dtype}); "
            "the store is damaged: delete its folder to prepare it again"
        )
    # A plain ndarray view, not np.memmap: slicing an np.memmap makes a memmap object per
    # slice, several times slower for the millions of small rows a DataLoader reads.
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,)).view(np.ndarray)


class RaggedWriter:
    """Appends rows to ``folder/{name}.values`` and ``.offsets``, chunk by chunk, so memory
    does not grow with the number of rows.

    Args:
        folder: where the two files go (a store's temporary folder).
        name: file stem (``src``, ``tgt``, ``tgt_text``).
        dtype: numpy dtype name of the values (``uint16``, ``int32``, ``uint8``).
    """

    def __init__(self, folder: Path, name: str, dtype: str) -> None:
        self.name, self.dtype = name, _dtype(dtype)
        self.rows = 0
        self.total = 0
        # Kept open across append() calls and closed by close(): no `with` can span them.
        self._values: IO[bytes] = open(folder / f"{name}.values", "xb")  # noqa: SIM115
        self._offsets: IO[bytes] = open(folder / f"{name}.offsets", "xb")  # noqa: SIM115
        self._offsets.write(np.zeros(1, dtype=_dtype("int64")).tobytes())

    def append(self, values: np.ndarray, lengths: np.ndarray) -> None:
        """Add ``len(lengths)`` rows, ``values`` ``(sum(lengths),)`` holding them in a row."""
        if int(lengths.sum()) != len(values):
            raise ValueError(f"{len(values)} values for rows of {int(lengths.sum())} in all")
        if len(values) and np.issubdtype(values.dtype, np.integer) and self.dtype.kind in "ui":
            info = np.iinfo(self.dtype)
            if values.min() < info.min or values.max() > info.max:
                raise ValueError(f"values outside {self.dtype} for {self.name}")
        self._values.write(values.astype(self.dtype, copy=False).tobytes())
        ends = self.total + np.cumsum(lengths, dtype=np.int64)
        self._offsets.write(ends.astype(_dtype("int64"), copy=False).tobytes())
        self.rows += len(lengths)
        self.total += int(lengths.sum())

    def close(self) -> dict[str, Any]:
        """Flush both files; returns the manifest entry ``{"dtype", "rows", "values"}``."""
        for handle in (self._values, self._offsets):
            handle.close()
        return {"dtype": self.dtype.str, "rows": self.rows, "values": self.total}


class Ragged:
    """Read-only rows of a :class:`RaggedWriter`'s files.

    A row is read with two ``pread`` calls (its two offsets, then its values) from the page
    cache, not through a memory mapping: random reads through a mapping make the kernel map
    the neighbouring pages of each one too (fault-around, which ``MADV_RANDOM`` does not stop
    on Linux 6), so the RSS of every process would grow towards the size of the files. Read
    with ``pread``, the pages stay in the page cache, shared by all the processes of the
    machine (DDP ranks, DataLoader workers, other runs), and count in none of them; a
    process holds only the lengths it asked for. :attr:`values` and :attr:`offsets` map the
    whole files, for reading them from start to end.

    Pickling (DataLoader workers started with ``spawn``) carries the file names, not the
    data: the unpickled copy opens the same files again.

    Args:
        folder: the split folder.
        name: file stem.
        entry: the manifest entry :meth:`RaggedWriter.close` returned.
    """

    def __init__(self, folder: Path, name: str, entry: dict[str, Any]) -> None:
        self.folder, self.name, self.entry = Path(folder), name, dict(entry)
        self._open()

    def _open(self) -> None:
        self.rows, self.total = int(self.entry["rows"]), int(self.entry["values"])
        self.dtype = np.dtype(self.entry["dtype"])
        self._offsets_dtype = _dtype("int64")
        self._files = {}
        for kind, count, dtype in (
            ("values", self.total, self.dtype),
            ("offsets", self.rows + 1, self._offsets_dtype),
        ):
            path = self.folder / f"{self.name}.{kind}"
            size = path.stat().st_size
            if size != count * dtype.itemsize:
                raise ValueError(
                    f"{path}: {size} bytes, expected {count * dtype.itemsize} ({count} × "
                    f"{dtype}); the store is damaged: delete its folder to prepare it again"
                )
            # Unbuffered: pread needs no Python buffer; the file object closes the
            # descriptor when this object goes.
            self._files[kind] = open(path, "rb", buffering=0)  # noqa: SIM115
        if self._offset(self.rows) != self.total:
            raise ValueError(f"{self.folder / self.name}.offsets does not match its values")
        self._mapped: dict[str, np.ndarray] = {}

    def _offset(self, i: int) -> int:
        data = os.pread(self._files["offsets"].fileno(), 8, i * 8)
        return int(np.frombuffer(data, dtype=self._offsets_dtype)[0])

    def _map(self, kind: str) -> np.ndarray:
        if kind not in self._mapped:
            count, dtype = (
                (self.total, self.dtype)
                if kind == "values"
                else (self.rows + 1, self._offsets_dtype)
            )
            self._mapped[kind] = map_array(self.folder / f"{self.name}.{kind}", dtype, count)
        return self._mapped[kind]

    @property
    def values(self) -> np.ndarray:
        """``(total,)`` every value, memory-mapped (for reading from start to end)."""
        return self._map("values")

    @property
    def offsets(self) -> np.ndarray:
        """``(rows + 1,)`` int64 offsets, memory-mapped (for reading from start to end)."""
        return self._map("offsets")

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, i: int) -> np.ndarray:
        """``(length,)`` the values of row ``i``."""
        if not 0 <= i < self.rows:
            raise IndexError(f"row {i} outside [0, {self.rows})")
        bounds = os.pread(self._files["offsets"].fileno(), 16, i * 8)
        start, end = (int(x) for x in np.frombuffer(bounds, dtype=self._offsets_dtype))
        size = self.dtype.itemsize
        data = os.pread(self._files["values"].fileno(), (end - start) * size, start * size)
        return np.frombuffer(data, dtype=self.dtype)

    def lengths(self, dtype: str = "int32") -> np.ndarray:
        """``(rows,)`` length of every row, read a million offsets at a time (no mapping, no
        int64 array of all of them)."""
        out = np.empty(self.rows, dtype=dtype)
        step = 1 << 20
        with open(self.folder / f"{self.name}.offsets", "rb") as handle:
            for start in range(0, self.rows, step):
                count = min(step, self.rows - start) + 1
                handle.seek(start * 8)
                chunk = np.fromfile(handle, dtype=self._offsets_dtype, count=count)
                np.subtract(
                    chunk[1:], chunk[:-1], out=out[start : start + count - 1], casting="unsafe"
                )
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "name": self.name, "entry": self.entry}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()


class TextColumn(Sequence[str]):
    """A sequence of UTF-8 strings stored as a :class:`Ragged` of bytes (``uint8``)."""

    def __init__(self, rows: Ragged) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> str:  # type: ignore[override] (no slices)
        if not -len(self) <= i < len(self):
            raise IndexError(f"row {i} outside [0, {len(self)})")
        return self.rows[i % len(self)].tobytes().decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        values, offsets = self.rows.values, self.rows.offsets
        for i in range(len(self)):
            yield values[offsets[i] : offsets[i + 1]].tobytes().decode("utf-8")
