"""Length-bucketed batch sampling: token bound, coverage, DDP splits, determinism, resume."""

from __future__ import annotations

import pytest
import torch

from seq2seq.data.sampler import BucketBatchSampler


@pytest.fixture(scope="module")
def lengths() -> list[int]:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(1, 50, (1000,), generator=generator).tolist()


def flatten(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


def test_exactly_one_of_max_tokens_and_batch_size(lengths: list[int]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        BucketBatchSampler(lengths)
    with pytest.raises(ValueError, match="exactly one"):
        BucketBatchSampler(lengths, max_tokens=100, batch_size=4)


def test_max_tokens_bound_respected(lengths: list[int]) -> None:
    long = [*lengths, 500]  # one example longer than the bound gets its own batch
    sampler = BucketBatchSampler(long, max_tokens=400)
    batches = list(sampler)
    for batch in batches:
        padded = max(long[i] for i in batch) * len(batch)
        assert padded <= 400 or len(batch) == 1
    assert [1000] in batches
    assert len(batches) == len(sampler)
    # Sorting within chunks keeps padding low.
    real = sum(long)
    padded = sum(max(long[i] for i in b) * len(b) for b in batches)
    assert padded / real < 1.3


@pytest.mark.parametrize("kwargs", [{"max_tokens": 300}, {"batch_size": 16}])
def test_every_example_once_per_epoch(lengths: list[int], kwargs: dict[str, int]) -> None:
    sampler = BucketBatchSampler(lengths, **kwargs)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(flatten(batches)) == list(range(len(lengths)))
        assert len(batches) == len(sampler)
        if "batch_size" in kwargs:
            assert max(len(b) for b in batches) == 16


def test_deterministic_and_epoch_dependent(lengths: list[int]) -> None:
    a = BucketBatchSampler(lengths, max_tokens=300, seed=7)
    b = BucketBatchSampler(lengths, max_tokens=300, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert first != second
    b.set_epoch(1)
    assert list(b) == second
    other_seed = BucketBatchSampler(lengths, max_tokens=300, seed=8)
    assert list(other_seed) != first


def test_no_shuffle_is_sorted_and_fixed(lengths: list[int]) -> None:
    sampler = BucketBatchSampler(lengths, batch_size=32, shuffle=False)
    order = flatten(list(sampler))
    assert [lengths[i] for i in order] == sorted(lengths)
    sampler.set_epoch(5)
    assert flatten(list(sampler)) == order


@pytest.mark.parametrize("replicas", [2, 3])
@pytest.mark.parametrize("shuffle", [True, False])
def test_ddp_split(lengths: list[int], replicas: int, shuffle: bool) -> None:
    full = list(BucketBatchSampler(lengths, max_tokens=263, shuffle=shuffle, seed=1))
    ranks = [
        BucketBatchSampler(
            lengths, max_tokens=263, shuffle=shuffle, seed=1, num_replicas=replicas, rank=r
        )
        for r in range(replicas)
    ]
    shares = [list(s) for s in ranks]
    # Same number of batches everywhere, or DDP would hang.
    assert len({len(s) for s in ranks}) == 1
    assert {len(share) for share in shares} == {len(ranks[0])}
    # 263 tokens gives 103 batches, not a multiple of 2 or 3: the largest batches are halved,
    # and together the ranks see every example exactly once.
    dealt = [b for share in shares for b in share]
    assert len(dealt) == len(full) + (-len(full) % replicas) > len(full)
    assert sorted(flatten(dealt)) == list(range(1000))
    # Rank r gets global batches r, r + R, ... of the evened list; where nothing was halved
    # before them, they are the full list's.
    halved = {tuple(b) for b in full} - {tuple(b) for b in dealt}
    assert len(halved) == -len(full) % replicas
    for b in halved:
        assert len(b) >= max(len(f) for f in full if tuple(f) not in halved)


def test_ddp_padding_with_fewer_batches_than_ranks() -> None:
    shares = [
        list(BucketBatchSampler([3, 4], batch_size=8, num_replicas=3, rank=r)) for r in range(3)
    ]
    assert shares == [[[0, 1]]] * 3


def test_invalid_rank() -> None:
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler([1, 2], batch_size=1, num_replicas=2, rank=2)


def test_state_dict_resume_skips_yielded_batches(lengths: list[int]) -> None:
    sampler = BucketBatchSampler(lengths, max_tokens=300, seed=3, num_replicas=2, rank=1)
    sampler.set_epoch(4)
    expected = list(sampler)
    iterator = iter(sampler)
    taken = [next(iterator) for _ in range(5)]
    assert taken == expected[:5]
    state = sampler.state_dict()
    assert state["epoch"] == 4 and state["yielded"] == 5

    resumed = BucketBatchSampler(lengths, max_tokens=300, seed=3, num_replicas=2, rank=1)
    resumed.load_state_dict(state)
    resumed.set_epoch(4)  # what the trainer does on restart
    assert len(resumed) == len(expected) - 5
    assert list(resumed) == expected[5:]
    assert resumed.state_dict()["yielded"] == len(expected)
    # The skip happens once: the next pass over the epoch is complete again.
    assert len(resumed) == len(expected)
    assert list(resumed) == expected


def test_resume_skip_is_dropped_for_another_epoch(lengths: list[int]) -> None:
    sampler = BucketBatchSampler(lengths, batch_size=10)
    sampler.load_state_dict({"epoch": 2, "yielded": 7})
    sampler.set_epoch(3)
    assert sampler.state_dict()["yielded"] == 0
    assert len(list(sampler)) == len(sampler) == 100


def test_accepts_tensor_lengths() -> None:
    sampler = BucketBatchSampler(torch.tensor([5, 1, 3, 2]), batch_size=2, shuffle=False)
    assert list(sampler) == [[1, 3], [2, 0]]


def test_same_number_of_batches_every_epoch_but_different_batches(lengths: list[int]) -> None:
    """Lightning reads len() once: an epoch with fewer batches would end before validation."""
    sampler = BucketBatchSampler(lengths, max_tokens=300, seed=3)
    plans = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        plans.append(batches)
    assert len({len(p) for p in plans}) == 1
    assert len({tuple(map(tuple, sorted(p))) for p in plans}) == 4  # memberships change


def test_sort_groups_sorts_within_groups_of_minibatches(lengths: list[int]) -> None:
    """Bahdanau et al.: groups of 20 minibatches sorted by length, here groups of 5 x 40."""
    sampler = BucketBatchSampler(lengths, batch_size=40, sort_groups=5, seed=1)
    counts = set()
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        counts.add(len(batches))
        assert sorted(flatten(batches)) == list(range(len(lengths)))
        assert all(len(b) <= 40 for b in batches)
    assert counts == {25}
    # Sorting within groups of 200 leaves more spread inside a batch than a global sort.
    grouped = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    full = BucketBatchSampler(lengths, batch_size=40, seed=1)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in full)
    assert spread < grouped
    with pytest.raises(ValueError, match="sort_groups=5 needs batch_size"):
        BucketBatchSampler(lengths, max_tokens=400, sort_groups=5)


def _greedy_sizes(sorted_lengths: list[int], max_tokens: int) -> list[int]:
    """The rule written out example by example: add while count × longest stays within."""
    sizes, count, longest = [], 0, 0
    for length in sorted_lengths:
        longest_with = max(longest, length)
        if count and (count + 1) * longest_with > max_tokens:
            sizes.append(count)
            count, longest_with = 0, length
        count += 1
        longest = longest_with
    return sizes + ([count] if count else [])


@pytest.mark.parametrize("seed", range(20))
def test_batch_cut_per_run_of_lengths_equals_the_greedy_rule(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 400, (1,), generator=generator))
    top = int(torch.randint(1, 120, (1,), generator=generator))
    lengths = torch.randint(0, top + 1, (n,), generator=generator).sort().values
    max_tokens = int(torch.randint(1, 300, (1,), generator=generator))
    sampler = BucketBatchSampler(lengths, max_tokens=max_tokens, shuffle=False)
    assert sampler._batch_sizes(lengths) == _greedy_sizes(lengths.tolist(), max_tokens)
