"""glibc malloc settings for the device's long-running process (stdlib ctypes only).

* glibc keeps one malloc arena per thread that allocates (up to 8 per core); with a frame loop, encoders,
  sealer, uplink and anchoring threads, freed frame buffers then stay spread over many arenas. Two arenas
  keep the resident set about 10 MB lower at no measurable CPU cost (``mallopt(M_ARENA_MAX, 2)``).
* numpy's OpenBLAS starts a thread per core; the device does no BLAS work (analytics use sums and FFTs), so
  one thread is enough (``OPENBLAS_NUM_THREADS``, read when numpy is first imported: see ``agent/device/__init__``).
* Frames (1.4 MB at 720p in I420) are allocated and freed ten times a second. glibc raises its mmap threshold
  after the first such free, so later frames come from the heap, which grows by ~20 MB over the first minute
  (measured). A fixed 1 MB threshold (``mmap_threshold=``) keeps the resident set flat but costs ~9 % more
  CPU in page faults, so it is not the default.
* :func:`trim_heap` hands freed heap pages back to the system (``malloc_trim``): called after each sealed
  segment, whose C2PA signing and hashing leave megabytes of freed buffers behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter numbers
M_MMAP_THRESHOLD = -3
ARENAS = 2


def _libc_function(name: str) -> Any:
    """A glibc function, or None on another C library."""
    lib = ctypes.util.find_library("c")
    if lib is None:
        return None
    try:
        return getattr(ctypes.CDLL(lib), name)
    except (OSError, AttributeError):
        return None


def limit_malloc_arenas(arenas: int = ARENAS, mmap_threshold: int | None = None) -> bool:
    """Cap glibc's malloc arenas (and fix its mmap threshold if given); False (nothing done) without mallopt."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    ok = bool(mallopt(M_ARENA_MAX, arenas))
    if mmap_threshold is not None:
        ok = ok and bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold))
    log.debug("malloc arenas capped at %d, mmap threshold %d: %s", arenas, mmap_threshold, ok)
    return ok


_TRIM: list[Any] = []


def trim_heap() -> bool:
    """Return freed heap memory to the system; False where ``malloc_trim`` does not exist."""
    if not _TRIM:
        _TRIM.append(_libc_function("malloc_trim"))
    fn = _TRIM[0]
    return fn is not None and bool(fn(0))
