"""Keep freed memory in the process (glibc malloc), so a loop over photos stops paying page faults.

glibc hands a freed block back to the operating system when it was above the mmap threshold, and trims the
heap when more than the trim threshold lies free at its top; the next allocation of that size faults every
page in again. It raises both thresholds as it sees big blocks freed, but how far depends on the order of
everything the process allocated before. `Session.run` on a 384x512 photo makes 0.2-0.8 MB images per call
(Pillow's two resizes and their numpy copies), whose pages fault in again on every call unless glibc keeps
them (README, "Runtime overhead", has the measurements).

`keep_freed_memory()` fixes the two thresholds at the values glibc's own raising stops at (mmap 32 MiB,
trim 64 MiB): freed blocks under 32 MiB stay in the heap for reuse, and up to 64 MiB of free heap is kept.
It changes the whole process, so the library never calls it by itself: `pocketgan run` and the runtime
overhead bench do, and an application that times `Session.run` may. It does nothing where the malloc is not
glibc's, or where the user already set these thresholds (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_,
or malloc tunables in GLIBC_TUNABLES).

Example: python -c "from pocketgan import runtime; print(runtime.keep_freed_memory())"
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: its dynamic threshold's ceiling
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # glibc sets trim to twice mmap when it raises the latter
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds at 32 / 64 MiB for this process; True if they are now set."""
    if not sys.platform.startswith("linux"):
        return False
    if any(name in os.environ for name in _USER_SETTINGS) or "glibc.malloc." in os.environ.get(
        "GLIBC_TUNABLES", ""
    ):
        log.debug("malloc thresholds left as the environment sets them")
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # musl's returns 0: not applied
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = (
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    )
    log.debug("malloc thresholds mmap %d, trim %d: %s", MMAP_THRESHOLD, TRIM_THRESHOLD, applied)
    return applied
