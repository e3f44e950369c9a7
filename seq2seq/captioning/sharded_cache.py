"""A feature cache computed by every DDP rank at once, one shard each, and assembled once.

With ``n`` ranks, caching COCO's features on rank 0 alone would keep ``n - 1`` devices idle
for the longest step before training. Instead rank ``r`` computes the features of its share
of the batches (a contiguous run of whole batches, so every batch holds the same images as in
one process and the assembled file equals the single-process one bit for bit) into its own
shard, ``<cache>.shard<r>of<n>.npy``, written under a temporary name and renamed when complete.
Rank 0 waits for every shard, copies them into the final cache file (again a temporary name,
then a rename), and removes them; the other ranks wait for that file.

The ranks share nothing but the file system, so a rank that died shows as a shard or a cache
file that never appears: the waiting ranks give up after ``wait_s`` seconds with an error
naming that file. A shard left by an interrupted run is complete (it was renamed) and carries
the cache key (a hash of the images and feature settings) and the number of ranks in its name,
so the next run reuses it only for exactly the same images, settings and split of the work.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.distributed as dist

from seq2seq.captioning.annotations.records import ImageRecord
from seq2seq.captioning.feature_cache import (
    load_features,
    load_unreadable,
    unreadable_path,
    write_unreadable,
)

log = logging.getLogger(__name__)

#: Rows copied at a time while assembling: a COCO cache is gigabytes, the copy need not be.
_COPY_ROWS = 4096


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of a job.

    Attributes:
        rank: global rank, ``0 <= rank < world``.
        world: number of processes.
    """

    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} is not among {self.world} processes")


def current_ranks() -> Ranks:
    """The ranks of this job: from the process group when one exists (Lightning starts it
    before the data module's ``prepare_data`` and ``setup``), else from the ``RANK`` and
    ``WORLD_SIZE`` environment variables (torchrun), else one process.

    Lightning's own launcher sets ``LOCAL_RANK`` but not ``RANK``; a local rank is a global one
    on a single node only, so it is used only when ``NODE_RANK`` is unset or 0.
    """
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    world = os.environ.get("WORLD_SIZE")
    rank = os.environ.get("RANK")
    if rank is None and os.environ.get("NODE_RANK", "0") == "0":
        rank = os.environ.get("LOCAL_RANK")
    if world is None or rank is None:
        return Ranks()
    try:
        return Ranks(int(rank), int(world))
    except ValueError as err:
        raise ValueError(
            f"environment RANK/LOCAL_RANK={rank!r}, WORLD_SIZE={world!r}: expected a rank "
            f"0 <= rank < world size ({err})"
        ) from None


def shard_rows(count: int, batch_size: int, ranks: Ranks) -> range:
    """The rows (images) of ``count`` that rank ``ranks.rank`` computes: a contiguous run of
    whole batches of ``batch_size``, the batches shared out as evenly as they go (a rank gets
    none when there are fewer batches than ranks)."""
    batches = -(-count // batch_size)
    first = ranks.rank * batches // ranks.world
    last = (ranks.rank + 1) * batches // ranks.world
    return range(min(first * batch_size, count), min(last * batch_size, count))


def shard_path(path: Path, rank: int, world: int) -> Path:
    """Where rank ``rank`` of ``world`` writes its shard of cache ``path``."""
    return path.with_name(f"{path.stem}.shard{rank}of{world}.npy")


def compute_sharded(
    compute: Callable[[Sequence[ImageRecord], Path], object],
    records: Sequence[ImageRecord],
    path: Path,
    ranks: Ranks,
    batch_size: int,
    *,
    wait_s: float,
    poll_s: float = 0.5,
    wait_key: str = "data.cache_wait_s",
) -> None:
    """Compute this rank's shard of cache ``path`` and, on rank 0, assemble the cache; returns
    once ``path`` exists.

    Args:
        compute: ``compute(records, shard)`` writes the ``(len(records), C, H, W)`` float16
            features of ``records`` to ``shard`` atomically, with the listing of the images
            that did not decode (:func:`~seq2seq.captioning.feature_cache.compute_features`).
        records: all images of the cache, in order.
        path: the final cache file.
        ranks: this process's rank and the number of ranks.
        batch_size: images per forward pass (shards are whole batches).
        wait_s: how long to wait for another rank's file, counted from when this rank has
            done its own part (and, for the final file, from when every shard exists).
        poll_s: seconds between looks at the file system.
        wait_key: the setting that changes ``wait_s``, named in the error.

    Raises:
        TimeoutError: a shard or the final file did not appear within ``wait_s``.
    """
    shards = {
        rank: (shard_path(path, rank, ranks.world), rows)
        for rank in range(ranks.world)
        if (rows := shard_rows(len(records), batch_size, Ranks(rank, ranks.world)))
    }
    if ranks.rank in shards:
        mine, rows = shards[ranks.rank]
        if mine.is_file():
            log.info("reusing the finished feature cache shard %s", mine)
        else:
            compute(records[rows.start : rows.stop], mine)
    _wait(path, [shard for shard, _ in shards.values()], ranks, wait_s, poll_s, wait_key)
    if ranks.rank == 0 and not path.is_file():
        assemble(path, [(shard, rows) for shard, rows in shards.values()], len(records))


def _wait(
    path: Path, shards: list[Path], ranks: Ranks, wait_s: float, poll_s: float, key: str
) -> None:
    """Rank 0: wait until every shard exists. Other ranks: until the cache file exists (the
    shards first, then the assembly, each with its own ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    assembling = False
    while not path.is_file():
        missing = [shard for shard in shards if not shard.is_file()]
        if not missing:
            if ranks.rank == 0:
                return
            if not assembling:
                assembling, deadline = True, time.monotonic() + wait_s
        if time.monotonic() > deadline:
            waited = missing[0] if missing else path
            who = "rank 0 (which assembles the cache)" if not missing else "its rank"
            raise TimeoutError(
                f"{waited}: feature cache file not written by {who} within {key}={wait_s:g} s "
                f"(this is rank {ranks.rank} of {ranks.world}); did that process stop?"
            )
        time.sleep(poll_s)


def assemble(path: Path, shards: Sequence[tuple[Path, range]], total: int) -> None:
    """Copy the shards (each with the rows of the cache it holds) into cache ``path``
    ``(total, C, H, W)``, with one listing of the images that did not decode; the file is
    renamed into place when complete, and the shards are removed after."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    unreadable: list[tuple[int, str]] = []
    try:
        out: np.ndarray | None = None
        for shard, rows in shards:
            features = load_features(shard, len(rows))
            if out is None:
                out = np.lib.format.open_memmap(
                    tmp, mode="w+", dtype=np.float16, shape=(total, *features.shape[1:])
                )
            elif features.shape[1:] != out.shape[1:]:
                raise ValueError(
                    f"feature cache shard {shard} holds maps of shape {features.shape[1:]}, "
                    f"expected {out.shape[1:]} as in the other shards; delete the shards to "
                    "recompute"
                )
            for start in range(0, len(rows), _COPY_ROWS):
                stop = min(start + _COPY_ROWS, len(rows))
                out[rows.start + start : rows.start + stop] = features[start:stop]
            unreadable += [(rows.start + row, error) for row, error in load_unreadable(shard)]
        if out is None:
            raise ValueError(f"no feature cache shards to assemble into {path}")
        out.flush()
        del out
        write_unreadable(path, unreadable)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    # With the shards of this run go those of runs with another number of ranks: their key is
    # the same, so they hold the same features, and nothing would read them again.
    for shard in [*(shard for shard, _ in shards), *path.parent.glob(f"{path.stem}.shard*of*.npy")]:
        unreadable_path(shard).unlink(missing_ok=True)
        shard.unlink(missing_ok=True)
