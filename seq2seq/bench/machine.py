"""What the machine itself can do, and how much memory a run takes.

The matrix-product rate is the physical reference a model's achieved FLOP rate is compared
with: a model cannot compute faster than its device multiplies large matrices.
"""

from __future__ import annotations

import os
import platform
import resource
import threading
import time
from types import TracebackType

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so that a timer read after it measures them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    size: int = 2048,
    seconds: float = 2,
    warmup: int = 3,
) -> float:
    """Sustained rate of ``size x size`` matrix products in GFLOP/s (``2 n^3`` per product).

    Repeated for about ``seconds`` (at least three products) after ``warmup`` products; the
    best of three rounds is reported, as a peak the device demonstrably reaches here and now.
    """
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(warmup):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    a @ b
    synchronize(device)
    per_product = max(time.perf_counter() - start, 1e-6)
    reps = max(1, int(seconds / 3 / per_product))
    best = 0.0
    for _ in range(3):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        synchronize(device)
        best = max(best, 2 * size**3 * reps / (time.perf_counter() - start) / 1e9)
    return best


def describe(device: torch.device) -> dict[str, object]:
    """The machine in words: processor or GPU, threads, library versions."""
    info: dict[str, object] = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "processor": _cpu_name() or platform.processor() or platform.machine(),
        # AVX2, AVX512, ... as PyTorch's CPU kernels see it: figures differ by 2x between
        # machines with and without AVX-512, so every report names it.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _rss_bytes() -> int | None:
    """Resident memory of this process now (Linux), or None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """Peak memory while the ``with`` block runs, in MiB.

    On a GPU, the peak of PyTorch's allocator on the device; on the CPU, the peak resident
    memory of the whole process (interpreter and libraries included), sampled every few
    milliseconds by a thread, or the process's lifetime peak where ``/proc`` is missing.
    """

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device = device
        self.interval = interval
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif _rss_bytes() is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss_bytes() or 0)
            time.sleep(self.interval)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mib = max(self._peak, _rss_bytes() or 0) / 2**20
        else:
            # ru_maxrss is in KiB on Linux.
            self.peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
