"""A training DataLoader whose position within an epoch goes into the checkpoint.

Lightning saves the ``state_dict()`` of a training DataLoader that has one (under
``loops.fit_loop.combined_loader``) and hands it back to ``load_state_dict()`` before the
first batch of a resumed run. With it, a run resumed from a checkpoint written in the middle
of an epoch continues with the next batch of that epoch's order: nothing is replayed, nothing
skipped, and the run ends at the same global step as one never interrupted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader

from seq2seq.data.sampler import BucketBatchSampler


class ResumableDataLoader(DataLoader):
    """A DataLoader over a :class:`BucketBatchSampler` that saves and restores its position.

    The position is the number of batches the loader has *delivered* this epoch, not the
    number the sampler has handed to worker processes, which run ahead by ``num_workers ×
    prefetch_factor`` batches.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.batch_sampler, BucketBatchSampler):
            raise TypeError("ResumableDataLoader needs a BucketBatchSampler as batch_sampler")
        self._live: Iterator[Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        self._live = super().__iter__()
        return self._live

    def __len__(self) -> int:
        # Lightning reads the length as a whole epoch's and counts a resumed epoch's batches
        # from where the checkpoint stopped, so the length must not shrink by the skip.
        return self.batch_sampler.num_batches

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch", "yielded", "seed"}``: the epoch and how many of its batches were
        delivered."""
        sampler: BucketBatchSampler = self.batch_sampler
        state = sampler.state_dict()
        # torch counts the batches its iterator returned (reset on every new iteration).
        delivered = getattr(self._live, "_num_yielded", 0)
        if delivered and sampler.iteration is not None:
            epoch, skipped = sampler.iteration
            state.update(epoch=epoch, yielded=skipped + delivered)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The next iteration continues the saved epoch after its delivered batches."""
        self.batch_sampler.load_state_dict(state)


def batch_loader(
    dataset: Any,
    sampler: BucketBatchSampler,
    collate_fn: Callable[[list[Any]], Any],
    num_workers: int,
    train: bool,
) -> DataLoader:
    """The DataLoader of a split: for training a :class:`ResumableDataLoader`, whose position
    goes into checkpoints for a mid-epoch resume; a plain one for evaluation."""
    loader = ResumableDataLoader if train else DataLoader
    return loader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
