"""The feature cache computed across DDP ranks: each image's features once in total, one
shard per rank, assembled by rank 0 into exactly the single-process cache; a dead rank is a
one-line timeout naming the file it never wrote, and a finished shard of an interrupted run
is reused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image

from seq2seq.captioning import feature_cache
from seq2seq.captioning.annotations.records import ImageRecord
from seq2seq.captioning.datamodule import SPLITS, CaptionDataModule
from seq2seq.captioning.feature_cache import compute_features, load_unreadable
from seq2seq.captioning.sharded_cache import (
    Ranks,
    compute_sharded,
    current_ranks,
    shard_path,
    shard_rows,
)
from seq2seq.models.encoders.cnn import CNNEncoder
from seq2seq.models.encoders.image_input import input_transform

SCENES = {"n_train": 12, "n_val": 4, "n_test": 4, "image_size": 48, "captions_per_image": 2}


def test_shards_are_whole_batches_covering_every_image_once() -> None:
    for count, batch, world in [(5, 2, 2), (12, 4, 3), (3, 2, 4), (1, 8, 2), (64, 8, 3)]:
        rows = [shard_rows(count, batch, Ranks(rank, world)) for rank in range(world)]
        assert [i for r in rows for i in r] == list(range(count))
        # A shard starts on a batch boundary, so its batches are those of one process.
        assert all(r.start % batch == 0 for r in rows if r)
    with pytest.raises(ValueError, match="rank 2 is not among 2"):
        Ranks(2, 2)


def test_ranks_come_from_the_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert current_ranks() == Ranks(0, 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")  # Lightning's launcher on one node
    assert current_ranks() == Ranks(1, 2)
    monkeypatch.setenv("NODE_RANK", "1")  # a local rank is not a global one on node 1
    assert current_ranks() == Ranks(0, 1)
    monkeypatch.setenv("RANK", "1")  # torchrun
    assert current_ranks() == Ranks(1, 2)


def _images(folder: Path, n: int, corrupt: int | None = None) -> list[ImageRecord]:
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.new("RGB", (20 + i, 16), (30 * i, 90, 160)).save(path)
        if i == corrupt:
            path.write_bytes(path.read_bytes()[:60])  # the header reads, the pixels do not
        records.append(ImageRecord(f"img{i}.png", path, "train", ("a picture",)))
    return records


def test_a_dead_rank_times_out_and_finished_shards_are_reused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = CNNEncoder("resnet18", freeze=True)
    transform = input_transform(32, "stretch")
    records = _images(tmp_path / "images", 5, corrupt=3)
    computed: list[list[str]] = []

    def compute(part, out: Path) -> None:
        computed.append([r.image_id for r in part])
        compute_features(encoder, part, transform, out, batch_size=2, skip_unreadable=True)

    single = compute_features(encoder, records, transform, tmp_path / "one" / "c.npy",
                              batch_size=2, skip_unreadable=True)  # fmt: skip
    path = tmp_path / "ddp" / "c.npy"
    stale = shard_path(path, 0, 3)  # a run with three ranks, stopped before assembling
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over")

    # Rank 1 alone: it writes its shard, then gives up on rank 0's, naming it.
    first, second = shard_path(path, 0, 2), shard_path(path, 1, 2)
    with pytest.raises(TimeoutError, match=re.escape(f"{first}: feature cache file not written")):
        compute_sharded(compute, records, path, Ranks(1, 2), 2, wait_s=0.2, poll_s=0.02)
    assert computed == [["img2.png", "img3.png", "img4.png"]] and second.is_file()
    # Run again (an interrupted job restarted): the finished shard is not recomputed.
    with pytest.raises(TimeoutError, match="rank 1 of 2"):
        compute_sharded(compute, records, path, Ranks(1, 2), 2, wait_s=0.2, poll_s=0.02)
    assert len(computed) == 1

    # Both shards there, but rank 0 never assembles: rank 1 names the cache file.
    compute(records[:2], first)
    with pytest.raises(TimeoutError, match=re.escape(f"{path}: ") + ".*rank 0 .*assembles"):
        compute_sharded(compute, records, path, Ranks(1, 2), 2, wait_s=0.2, poll_s=0.02)
    # Rank 0 reuses both shards and assembles the single-process cache exactly.
    compute_sharded(compute, records, path, Ranks(0, 2), 2, wait_s=5, poll_s=0.02)
    ids = Counter(i for part in computed for i in part)
    assert ids == Counter(r.image_id for r in records)  # each image's features once
    assert np.array_equal(np.load(path), np.load(single))
    assert load_unreadable(path) == load_unreadable(single) and load_unreadable(path)[0][0] == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.npy", "c.unreadable.json"]


def _datamodule(data: Path, cache: Path) -> CaptionDataModule:
    torch.manual_seed(0)  # the same random backbone in every process
    dm = CaptionDataModule(scenes=SCENES, dir=str(data), image_size=32, resize="stretch",
                           batch_size=4, eval_batch_size=2, cache_dir=str(cache))  # fmt: skip
    dm.set_feature_extractor(CNNEncoder("resnet18", freeze=True))
    return dm


def _rank(rank: int, world: int, tmp: Path) -> None:
    """One DDP rank, with the data module hooks called as Lightning calls them."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp / 'rendezvous'}", rank=rank,
                            world_size=world)  # fmt: skip
    decoded = (tmp / f"decoded{rank}.txt").open("w")

    def counting(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        decoded.write(f"{Path(path).name}\n")
        return load_image(path, *args, **kwargs)

    load_image = feature_cache.load_image
    feature_cache.load_image = counting  # each rank is a process of its own
    try:
        dm = _datamodule(tmp / "data", tmp / "ddp")
        if rank == 0:
            dm.prepare_data()  # Lightning: local rank 0 only, then a barrier
        dist.barrier()
        dm.setup("fit")
        assert all(dm.datasets[split].source.is_features for split in SPLITS)
        dist.barrier()
    finally:
        decoded.close()
        dist.destroy_process_group()


def test_two_ddp_ranks_assemble_the_single_process_cache(tmp_path: Path) -> None:
    single = _datamodule(tmp_path / "data", tmp_path / "one")
    single.prepare_data()
    mp.spawn(_rank, args=(2, tmp_path), nprocs=2, join=True)
    names = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "one").iterdir())  # no shard left
    assert len(names) == len(SPLITS)
    for name in names:
        assert np.array_equal(np.load(tmp_path / "ddp" / name), np.load(tmp_path / "one" / name))
    per_rank = [(tmp_path / f"decoded{r}.txt").read_text().split() for r in (0, 1)]
    counts = Counter(per_rank[0] + per_rank[1])
    every = {r.path.name for split in SPLITS for r in single.records[split]}
    assert set(counts) == every and set(counts.values()) == {1}
    assert all(per_rank)  # the work was shared


@pytest.mark.slow
def test_lightning_ddp_training_writes_each_cache_once_without_leftovers(tmp_path: Path) -> None:
    """The hooks as Lightning really calls them, with its own launcher and process group."""
    exe = Path(sys.executable).with_name("seq2seq-train")
    repo = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    proc = subprocess.run(
        [str(exe), "experiment=shapes_nic", "debug=fast", f"data.dir={tmp_path}/data",
         f"hydra.run.dir={tmp_path}/run", "trainer.accelerator=cpu", "trainer.devices=2",
         "trainer.strategy=ddp", "test=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    cache = sorted(p.name for p in (tmp_path / "data" / ".feature_cache").iterdir())
    assert [name.split("-")[0] for name in cache] == ["dev", "test", "train"]  # no shards
    # Both ranks took part in caching each split.
    assert (proc.stdout + proc.stderr).count("train: caching backbone features") == 2
