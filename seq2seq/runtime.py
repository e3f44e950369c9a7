"""Process-wide settings that make CPU training faster.

Large tensors on the CPU come straight from the operating system: glibc's ``malloc`` maps
every block above its threshold (at most 32 MiB) fresh and unmaps it on free. A training
step allocates and frees the same large blocks every time (logits over the vocabulary,
activations saved for the backward pass), and each fresh mapping is paid for again in page
faults as it is first written: on the Bible-size model that was a tenth of the step. Keeping
freed memory in the heap instead (as jemalloc or tcmalloc would, without preloading one)
lets the next step reuse it already mapped. The price is that the process's resident memory
stays at its peak rather than shrinking between steps; ``SEQ2SEQ_KEEP_FREED_MEMORY=0`` in the
environment leaves the allocator as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Have glibc serve every allocation from its heap and never give freed memory back.

    Returns True when the settings were applied (Linux with glibc), False elsewhere (macOS,
    Windows, musl) and when ``SEQ2SEQ_KEEP_FREED_MEMORY=0``, where it does nothing.
    """
    if os.environ.get("SEQ2SEQ_KEEP_FREED_MEMORY", "1") == "0":
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # 0 mappings: large blocks come from the heap too; a trim threshold of 2 GiB - 1 keeps
    # freed memory in it (mallopt reports success with 1).
    applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    if not applied:
        log.debug("mallopt refused the settings; the allocator keeps its defaults")
    return applied
