"""Process-wide settings for the device's long-running process, applied once at start.

* glibc keeps one malloc arena per thread that allocates (up to 8 per core); with a frame loop, encoders,
  sealer, uplink and anchoring threads, freed frame buffers then stay spread over many arenas. Two arenas
  keep the resident set about 10 MB lower at no measurable CPU cost (``mallopt(M_ARENA_MAX, 2)``).
* numpy's OpenBLAS starts a thread per core; the device does no BLAS work (analytics use sums and FFTs), so
  one thread is enough (``OPENBLAS_NUM_THREADS``, read when numpy is first imported: see ``agent/device/__init__``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas; False (and nothing done) on a C library without mallopt (musl)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(M_ARENA_MAX, arenas))
    log.debug("malloc arenas capped at %d: %s", arenas, ok)
    return ok
