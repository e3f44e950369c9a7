"""Progress of a long step (reading, checking, encoding, caching, decoding), shown as it runs.

On a terminal it is a tqdm bar on stderr (count, rate, time left); otherwise, in a log file
or a pipe, a log line every ``every`` seconds with the same figures, and one when the step
ends, so that a step of minutes is never silent. A step that ends within a second logs its
closing line at DEBUG level only (encoding the three lines of a translation request is not
news).
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Count the items of a step and show how it goes.

    Args:
        what: the step, as the display names it ("caching CNN features").
        total: how many items the step has, if known.
        unit: what an item is ("images", "pairs").
        every: seconds between log lines when there is no terminal.
        bar: force the tqdm bar on (True) or off (False); None: only on a terminal.
        logger: where the log lines go.
    """

    def __init__(
        self,
        what: str,
        total: int | None = None,
        unit: str = "items",
        every: float = 10.0,
        bar: bool | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.what, self.total, self.unit, self.every = what, total, unit, every
        self.log = logger or log
        self.count = 0
        self.start = self._last = time.monotonic()
        use_bar = sys.stderr.isatty() if bar is None else bar
        self._bar: Any = None
        if use_bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=what, unit=f" {unit}", file=sys.stderr)

    def rate(self) -> float:
        """Items per second so far."""
        return self.count / max(time.monotonic() - self.start, 1e-9)

    def describe(self) -> str:
        """``what: n/total unit (rate/s, ETA m:ss)``."""
        rate = self.rate()
        done = f"{self.count:,}" + (f"/{self.total:,}" if self.total is not None else "")
        text = f"{self.what}: {done} {self.unit} ({rate:,.1f}/s"
        if self.total is not None and rate > 0 and self.count < self.total:
            text += f", ETA {_duration((self.total - self.count) / rate)}"
        return text + ")"

    def update(self, n: int = 1) -> None:
        """``n`` more items are done."""
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.log.info("%s", self.describe())

    def close(self) -> None:
        """End the display with a line saying how long the step took."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elapsed = time.monotonic() - self.start
        self.log.log(
            logging.INFO if elapsed >= 1.0 else logging.DEBUG,
            "%s: %s %s in %s (%s/s)",
            self.what,
            f"{self.count:,}",
            self.unit,
            _duration(elapsed),
            f"{self.rate():,.1f}",
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif self._bar is not None:
            self._bar.close()
