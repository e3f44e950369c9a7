"""A bounded load test of a running ``seq2seq-serve``, on this machine only.

``python -m seq2seq.serve.loadtest --url http://127.0.0.1:8000 --clients 32 --seconds 20``
starts ``--clients`` threads, each sending ``POST /translate`` requests one after another
(a new one as soon as its last is answered) for ``--seconds``, and prints the throughput,
the p50 and p99 latency and the number of failed requests (a status other than 200, or no
answer within ``--timeout``). It only sends to a loopback address and is bounded in clients
and seconds: it measures a server, it is not a tool to flood one.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_CLIENTS = 256
MAX_SECONDS = 600.0

#: Sentences of the built-in synthetic task, of different lengths.
DEFAULT_TEXTS = (
    "the king sleeps .",
    "the dogs saw a small cat .",
    "the king that the dogs saw sleeps .",
    "a red bird sees the old man near the river and the woman laughs .",
)


@dataclass
class LoadReport:
    """What one load test measured."""

    clients: int
    seconds: float
    requests: int
    failed: int
    latencies_s: list[float]

    @property
    def throughput(self) -> float:
        """Answered requests per second (failed ones excluded)."""
        return (self.requests - self.failed) / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Latency (s) below which a share ``q`` of the successful requests fell."""
        if not self.latencies_s:
            return math.nan
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]

    def summary(self) -> str:
        return (
            f"{self.clients} clients, {self.seconds:.1f} s: {self.requests} requests, "
            f"{self.throughput:.1f} req/s, p50 {1000 * self.percentile(0.5):.1f} ms, "
            f"p99 {1000 * self.percentile(0.99):.1f} ms, failed {self.failed}"
        )


def _loopback(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK:
        raise ValueError(
            f"--url {url!r}: only http:// on a loopback address ({', '.join(LOOPBACK)})"
        )
    return parts.hostname, parts.port or 80


def run_load(
    url: str,
    *,
    clients: int,
    seconds: float,
    texts: tuple[str, ...] = DEFAULT_TEXTS,
    texts_per_request: int = 1,
    timeout: float = 30.0,
) -> LoadReport:
    """Send ``/translate`` requests from ``clients`` threads for ``seconds``.

    Raises:
        ValueError: a URL off this machine, or clients or seconds out of bounds.
    """
    host, port = _loopback(url)
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"--clients must be between 1 and {MAX_CLIENTS}, got {clients}")
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"--seconds must be in (0, {MAX_SECONDS:g}], got {seconds}")
    latencies: list[float] = []
    counts = {"requests": 0, "failed": 0}
    lock = threading.Lock()
    start = time.monotonic()
    end = start + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        n = index
        try:
            while time.monotonic() < end:
                batch = [texts[(n + k) % len(texts)] for k in range(texts_per_request)]
                n += texts_per_request
                body = json.dumps({"texts": batch})
                sent = time.monotonic()
                ok = False
                try:
                    connection.request(
                        "POST", "/translate", body, {"Content-Type": "application/json"}
                    )
                    response = connection.getresponse()
                    response.read()
                    ok = response.status == 200
                except (OSError, http.client.HTTPException):
                    connection.close()  # reconnects on the next request
                took = time.monotonic() - sent
                with lock:
                    counts["requests"] += 1
                    if ok:
                        latencies.append(took)
                    else:
                        counts["failed"] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + timeout + 5)
    elapsed = time.monotonic() - start
    return LoadReport(clients, elapsed, counts["requests"], counts["failed"], latencies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.serve.loadtest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (loopback only)")
    parser.add_argument(
        "--clients", type=int, default=8, help=f"concurrent clients, at most {MAX_CLIENTS}"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help=f"duration, at most {MAX_SECONDS:g}"
    )
    parser.add_argument("--texts-per-request", type=int, default=1, help="texts in each request")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an answer")
    args = parser.parse_args(argv)
    try:
        report = run_load(
            args.url, clients=args.clients, seconds=args.seconds,
            texts_per_request=args.texts_per_request, timeout=args.timeout,
        )  # fmt: skip
    except ValueError as err:
        parser.error(str(err))
    print(report.summary())
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
