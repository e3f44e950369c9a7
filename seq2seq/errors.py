"""Errors about what a user wrote: a config key, a file, a command-line value.

Raised anywhere in the package with a message that names the key (or file and line) and what
is allowed there; the command-line tools print such an error as one line, without a
traceback, and exit with status 1.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and what it may be."""
