"""Batches of similar-length examples, in random order, split evenly across DDP ranks.

Sorting by length keeps padding small; breaking ties between equal lengths at random, and
shuffling the order of the batches, keeps the batches different and randomly ordered from one
epoch to the next while their number stays fixed. Every rank builds the same global list of
batches from ``(seed, epoch)`` and takes every ``R``-th one, so no communication is needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices whose lengths are close to each other.

    Give exactly one of ``max_tokens`` and ``batch_size``. Pass it to a DataLoader as
    ``batch_sampler`` and call :meth:`set_epoch` at the start of every epoch (Lightning does).

    Args:
        lengths: ``(num,)`` length of each example (``TranslationDataset.lengths``).
        max_tokens: bound on a batch's padded size, ``max length × number of examples``; an
            example longer than this forms a batch of its own.
        batch_size: number of examples per batch (the last batch may be smaller).
        shuffle: random batches in random order; False gives one fixed order by length, for
            validation and test (callers restore the input order with ``Batch.indices``).
        seed: base seed; epoch ``e`` is shuffled with ``seed + e``.
        num_replicas: number of DDP ranks; defaults to the world size, or 1.
        rank: this rank; defaults to the distributed rank, or 0.
        sort_groups: with ``batch_size``, sort by length only within random groups of this
            many batches (Bahdanau et al., Appendix B.2: groups of 20 minibatches of 80)
            instead of over the whole data set.
    """

    def __init__(
        self,
        lengths: Sequence[int] | Tensor,
        *,
        max_tokens: int | None = None,
        batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        sort_groups: int | None = None,
    ) -> None:
        if (max_tokens is None) == (batch_size is None):
            raise ValueError(
                f"give exactly one of max_tokens and batch_size "
                f"(got max_tokens={max_tokens}, batch_size={batch_size})"
            )
        size = max_tokens if max_tokens is not None else batch_size
        if size < 1:
            raise ValueError(f"max_tokens/batch_size must be >= 1, got {size}")
        if sort_groups is not None and (batch_size is None or sort_groups < 1):
            # With max_tokens the number of batches would change from epoch to epoch.
            raise ValueError(f"sort_groups={sort_groups} needs batch_size and must be >= 1")
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank} of {num_replicas}")
        lengths = torch.as_tensor(lengths).flatten()  # (num,)
        if (lengths < 0).any():
            raise ValueError("lengths must be >= 0")
        # int32 where it fits: at millions of examples every int64 copy costs tens of MB.
        small = len(lengths) == 0 or int(lengths.max()) < 2**31
        self.lengths = lengths.to(torch.int32 if small else torch.long)
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.sort_groups = sort_groups
        self.epoch = 0
        self._yielded = 0  # batches of the current epoch handed out so far
        self._resume: tuple[int, int] | None = None  # (epoch, batches to skip) after a load
        #: ``(epoch, skipped)`` of the iteration under way, set when it starts (see
        #: :class:`~seq2seq.data.loader.ResumableDataLoader`).
        self.iteration: tuple[int, int] | None = None
        self._plan_cache: tuple[int, list[Tensor]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of ``epoch``."""
        if epoch != self.epoch:
            # Nothing of the new epoch has been yielded; a checkpoint now must not skip any.
            self._yielded = 0
        self.epoch = epoch

    def __len__(self) -> int:
        """Number of batches the next iteration yields on this rank."""
        return len(self._rank_batches()) - self._pending_skip()

    @property
    def num_batches(self) -> int:
        """Number of batches of a whole epoch on this rank, whatever a resume skips."""
        return len(self._rank_batches())

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._rank_batches()
        skip = self._pending_skip()
        self._resume = None
        self._yielded = skip
        self.iteration = (self.epoch, skip)
        for batch in batches[skip:]:
            # Counted before yielding: a checkpoint taken while this batch is being used
            # must not replay it.
            self._yielded += 1
            yield batch.tolist()

    def state_dict(self) -> dict[str, Any]:
        """Epoch and number of batches of it already yielded.

        With DataLoader workers, batches are drawn ahead of training (``num_workers ×
        prefetch_factor`` of them), so a resumed run skips those too.
        """
        return {"epoch": self.epoch, "yielded": self._yielded, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration over ``state["epoch"]`` skips its yielded batches."""
        self.epoch = int(state["epoch"])
        self.seed = int(state.get("seed", self.seed))
        self._yielded = int(state["yielded"])
        self._resume = (self.epoch, self._yielded)

    def _pending_skip(self) -> int:
        # The skip only applies to the epoch that was interrupted; once the trainer moves on
        # to another epoch it is stale.
        if self._resume is None or self._resume[0] != self.epoch:
            return 0
        return min(self._resume[1], len(self._rank_batches()))

    def _rank_batches(self) -> list[Tensor]:
        """This rank's batches of the current epoch, each ``(size,)`` dataset indices."""
        if self._plan_cache is None or self._plan_cache[0] != self.epoch:
            self._plan_cache = (self.epoch, self._plan(self.epoch))
        return self._plan_cache[1]

    def _plan(self, epoch: int) -> list[Tensor]:
        batches = self._global_batches(epoch)
        total = len(batches)
        if total == 0:
            return []
        # DDP hangs if one rank runs out of batches before the others: every rank needs the
        # same number. Splitting a few of the largest batches in two evens the count while
        # every example is still dealt exactly once; only with fewer examples than ranks
        # does the list have to be topped up by cycling from its start.
        batches = self._split_to_multiple(batches, self.num_replicas)
        total = len(batches)
        per_rank = -(-total // self.num_replicas)
        padded = [batches[i % total] for i in range(per_rank * self.num_replicas)]
        return padded[self.rank :: self.num_replicas]

    @staticmethod
    def _split_to_multiple(batches: list[Tensor], replicas: int) -> list[Tensor]:
        """``batches`` with the fewest of the largest ones halved that makes their number a
        multiple of ``replicas`` (unchanged when too few can be halved)."""
        short = -len(batches) % replicas
        if short == 0:
            return batches
        by_size = sorted(range(len(batches)), key=lambda i: -len(batches[i]))  # stable
        halved = {i for i in by_size[:short] if len(batches[i]) >= 2}
        if len(halved) < short:
            return batches
        out: list[Tensor] = []
        for i, batch in enumerate(batches):
            out.extend(batch.tensor_split(2) if i in halved else (batch,))
        return out

    def _global_batches(self, epoch: int) -> list[Tensor]:
        """Every rank's batches, in the order they are dealt out.

        All examples are sorted by length and cut into batches. The cut depends only on the
        sorted lengths, so every epoch has the same number of batches of the same sizes: the
        trainer reads the number of batches once, and an epoch that ended early would skip its
        validation. What changes between epochs is which examples of equal length share a
        batch (ties are broken at random) and the order of the batches. With ``sort_groups``
        the sort is within random groups of ``sort_groups * batch_size`` examples, whose
        batch count is fixed too.
        """
        num = len(self.lengths)
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(num, generator=generator) if self.shuffle else torch.arange(num)
        if num < 2**31:
            order = order.to(torch.int32)  # the batches are views of it: half the memory
        if self.sort_groups is not None and self.shuffle:
            groups = order.split(self.sort_groups * self.batch_size)
        else:
            groups = (order,)
        batches: list[Tensor] = []
        for group in groups:
            # Stable, so equal lengths keep the random (or index) order.
            by_length = torch.sort(self.lengths[group], stable=True)
            sizes = self._batch_sizes(by_length.values)
            batches.extend(group[by_length.indices].split(sizes))
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
        return batches

    def _batch_sizes(self, sorted_lengths: Tensor) -> list[int]:
        """Sizes of consecutive batches cut from ``sorted_lengths`` ``(n,)`` (ascending)."""
        n = len(sorted_lengths)
        if self.batch_size is not None:
            return [self.batch_size] * (n // self.batch_size) + (
                [n % self.batch_size] if n % self.batch_size else []
            )
        # Greedy: add examples while the padded size stays within the bound. The lengths are
        # ascending, so the batch's longest is the example being added and the bound is a
        # cap on the count for each length: the cut is computed per run of equal lengths (a
        # few hundred), not per example (millions, as Python ints).
        values, counts = torch.unique_consecutive(sorted_lengths, return_counts=True)
        sizes: list[int] = []
        count = 0
        for length, run in zip(values.tolist(), counts.tolist(), strict=True):
            # An example longer than max_tokens forms a batch of its own.
            cap = max(self.max_tokens // length, 1) if length > 0 else run + count
            if count >= cap:
                sizes.append(count)
                count = 0
            if run <= cap - count:
                count += run
                continue
            run -= cap - count
            sizes.append(cap)
            full, rest = divmod(run, cap)
            if rest == 0:
                # The last full batch stays open: only a longer example would close it.
                sizes.extend([cap] * (full - 1))
                count = cap
            else:
                sizes.extend([cap] * full)
                count = rest
        if count:
            sizes.append(count)
        return sizes
