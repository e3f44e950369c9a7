"""The one error of the WMT'14 builder."""

from __future__ import annotations


class Wmt14Error(RuntimeError):
    """A file is missing, misaligned or malformed; the message (one line) names it."""
