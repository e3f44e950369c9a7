"""The batching queue: alone with a scripted model, then concurrent requests to a real server
served in fewer model calls than requests."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from seq2seq.serve.app import create_app
from seq2seq.serve.batching import Batcher, QueueFull
from tests.serve.conftest import TEST_LIMITS, live_server


class Recorder:
    """A model that doubles numbers and records the batches it was given."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        time.sleep(self.delay)
        if any(i < 0 for i in items):
            raise ValueError("negative item")
        return [2 * i for i in items]


def test_items_waiting_together_run_in_one_call_in_order() -> None:
    model = Recorder()
    batcher = Batcher(model, max_batch=8, max_wait_ms=200)
    futures = batcher.submit(list(range(5)))
    assert [f.result(5) for f in futures] == [0, 2, 4, 6, 8]
    assert model.batches == [[0, 1, 2, 3, 4]]
    assert (batcher.calls, batcher.items) == (1, 5)
    batcher.stop()


def test_batches_never_exceed_max_batch() -> None:
    model = Recorder()
    batcher = Batcher(model, max_batch=3, max_wait_ms=50)
    futures = batcher.submit(list(range(8)))
    assert [f.result(5) for f in futures] == [2 * i for i in range(8)]
    assert [len(b) for b in model.batches] == [3, 3, 2]
    batcher.stop()


def test_items_arriving_within_the_wait_join_the_batch() -> None:
    model = Recorder()
    batcher = Batcher(model, max_batch=8, max_wait_ms=300)
    first = batcher.submit([1])
    time.sleep(0.05)
    second = batcher.submit([2])
    assert first[0].result(5) == 2 and second[0].result(5) == 4
    assert model.batches == [[1, 2]]
    batcher.stop()


def test_a_failing_batch_fails_its_items_and_the_worker_goes_on() -> None:
    model = Recorder()
    batcher = Batcher(model, max_batch=4, max_wait_ms=100)
    bad = batcher.submit([1, -1])
    for future in bad:
        with pytest.raises(ValueError, match="negative item"):
            future.result(5)
    assert batcher.submit([3])[0].result(5) == 6
    batcher.stop()


def test_a_full_queue_refuses_naming_the_limit() -> None:
    gate = threading.Event()
    batcher = Batcher(lambda items: (gate.wait(5), items)[1], max_batch=1, max_queue=2)
    running = batcher.submit([0])  # taken by the worker, which then waits on the gate
    time.sleep(0.05)
    queued = batcher.submit([1, 2])
    with pytest.raises(QueueFull, match=r"limit of 2 \(max_queue\)"):
        batcher.submit([3])
    gate.set()
    assert [f.result(5) for f in running + queued] == [0, 1, 2]
    batcher.stop()


def test_a_stopped_batcher_finishes_its_queue_and_refuses_more() -> None:
    model = Recorder(delay=0.05)
    batcher = Batcher(model, max_batch=1, max_wait_ms=0)
    queued = batcher.submit([1, 2, 3])
    batcher.stop()
    assert [f.result(5) for f in queued] == [2, 4, 6]
    with pytest.raises(RuntimeError, match="stopped"):
        batcher.submit([4])


def test_cancelled_items_are_skipped() -> None:
    gate = threading.Event()
    seen: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        seen.append(list(items))
        gate.wait(5)
        return items

    batcher = Batcher(run, max_batch=4, max_wait_ms=0)
    blocker = batcher.submit([0])
    time.sleep(0.05)
    later = batcher.submit([1, 2])
    assert later[0].cancel()
    gate.set()
    assert later[1].result(5) == 2 and blocker[0].result(5) == 0
    assert seen == [[0], [2]]
    batcher.stop()


def _concurrent_translations(url: str, n: int) -> list[httpx.Response]:
    barrier = threading.Barrier(n)
    responses: list[httpx.Response] = [None] * n  # type: ignore[list-item]

    def send(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            barrier.wait()
            responses[i] = http.post("/translate", json={"texts": [f"the king {i} sleeps ."]})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return responses


def test_concurrent_requests_share_model_calls(models: dict) -> None:
    app = create_app(**models, limits=TEST_LIMITS, max_batch=32, max_wait_ms=200)
    with live_server(app) as url:
        responses = _concurrent_translations(url, 12)
        assert all(r.status_code == 200 for r in responses)
        assert all(len(r.json()["translations"]) == 1 for r in responses)
        health = httpx.get(url + "/health").json()
    assert health["items"]["translation"] == 12
    assert health["model_calls"]["translation"] < 12


def test_max_batch_one_runs_each_request_alone(models: dict) -> None:
    app = create_app(**models, limits=TEST_LIMITS, max_batch=1, max_wait_ms=200)
    with live_server(app) as url:
        assert all(r.status_code == 200 for r in _concurrent_translations(url, 4))
        health = httpx.get(url + "/health").json()
    assert health["model_calls"]["translation"] == health["items"]["translation"] == 4
