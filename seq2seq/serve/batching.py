"""A batching queue: items of concurrent requests run through the model together.

A model decodes a batch of 16 sentences in little more time than one, so a server that ran
each request alone would waste most of its model time. Every request puts its items (texts or
images) on one queue; a single worker thread takes the first item waiting, then keeps taking
until it holds ``max_batch`` items or ``max_wait_ms`` have passed since it took the first, and
runs the model once on them all. Each item carries a future that the worker resolves, so each
request gets exactly its own results back, whatever batch they ran in.

The model runs in that one thread only: requests never run the model concurrently (PyTorch
already uses every core within one call), and the event loop serving HTTP is never blocked.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class QueueFull(Exception):
    """More items are waiting than the queue may hold."""


@dataclass
class _Job(Generic[Item, Result]):
    item: Item
    future: Future[Result] = field(default_factory=Future)


_STOP = object()


class Batcher(Generic[Item, Result]):
    """Runs ``run(items) -> results`` (one result per item, in order) on batches of items.

    Args:
        run: the model call; it sees at most ``max_batch`` items. An exception it raises is
            the result of every item of that batch.
        max_batch: most items per call.
        max_wait_ms: how long the worker waits for more items after taking the first; 0 takes
            only what is already waiting.
        max_queue: most items waiting; :meth:`submit` raises :class:`QueueFull` beyond it.
        name: the worker thread's name, for logs.
    """

    def __init__(
        self,
        run: Callable[[list[Item]], Sequence[Result]],
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        name: str = "batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be 0 or more, got {max_wait_ms}")
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue = max_queue
        self._queue: queue.Queue[_Job[Item, Result] | object] = queue.Queue()
        self._lock = threading.Lock()
        #: Model calls made, and items run through them (``items / calls`` is the mean batch).
        self.calls = 0
        self.items = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[Item]) -> list[Future[Result]]:
        """Queue ``items``; returns one future per item. All or none are queued.

        Raises:
            QueueFull: the items would take the queue over ``max_queue``.
            RuntimeError: the batcher was stopped.
        """
        with self._lock:
            if self._stopped:
                raise RuntimeError("the batcher was stopped")
            waiting = self._queue.qsize()
            if waiting + len(items) > self.max_queue:
                raise QueueFull(
                    f"{waiting} items are waiting for the model; {len(items)} more would exceed "
                    f"the limit of {self.max_queue} (max_queue)"
                )
            jobs = [_Job[Item, Result](item) for item in items]
            for job in jobs:
                self._queue.put(job)
        return [job.future for job in jobs]

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the items already queued, then end the worker thread."""
        with self._lock:  # nothing can be queued behind the stop, where it would never run
            self._stopped = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stopping = self._collect(first)  # type: ignore[arg-type]
            self._run_batch(batch)
            if stopping:
                return

    def _collect(self, first: _Job[Item, Result]) -> tuple[list[_Job[Item, Result]], bool]:
        """``first`` and the items that arrive within the wait, up to ``max_batch``."""
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                # What is already queued is taken without waiting, even past the deadline.
                job = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if job is _STOP:
                return batch, True
            batch.append(job)  # type: ignore[arg-type]
        return batch, False

    def _run_batch(self, batch: list[_Job[Item, Result]]) -> None:
        # A request whose client went away has cancelled its futures: skip its items.
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = self._run([job.item for job in live])
            if len(results) != len(live):
                raise RuntimeError(f"the model gave {len(results)} results for {len(live)} items")
        except Exception as err:  # every item of the batch fails with the batch
            log.exception("model call on %d items failed", len(live))
            for job in live:
                job.future.set_exception(err)
            return
        finally:
            self.calls += 1
            self.items += len(live)
        for job, result in zip(live, results, strict=True):
            job.future.set_result(result)
