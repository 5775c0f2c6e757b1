"""A long-running server's native heap: glibc malloc settings that keep it a quarter smaller.

Under a soak the server's live Python objects stay flat once its trace store is full, but the
heap the kernel sees grows in steps (benchmarks/results/heap-8k.md): the C allocator keeps the
pages of large, short-lived buffers (decoded photos, numpy and onnxruntime arrays) in one
arena per thread and, once such a buffer has been freed, raises its threshold for serving large
buffers from fresh mappings. Fixing that threshold (large buffers go back to the kernel when
freed), trimming the heap's top sooner and capping the arenas takes a quarter off the heap at
the same speed (benchmarks/results/soak-8k-malloc-tuned.md: 893-902 MB instead of 1,220-1,228).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

# mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

LARGE_BUFFER_BYTES = 128 * 1024  # glibc's own starting threshold, kept fixed
ARENAS = 2


def settle_native_heap() -> dict[str, int]:
    """Apply the settings with ``mallopt`` where the C library is glibc; what was applied
    (empty elsewhere, which is logged). The arena cap holds for arenas made afterwards, so call
    it before threads start allocating."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already in the process: its C library
    except OSError as error:
        log.warning("cannot open the C library (%s): its heap settings are left as they are", error)
        return {}
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
        log.info("the C library is not glibc: its heap settings are left as they are")
        return {}
    wanted = {
        "mmap_threshold": (M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES),
        "trim_threshold": (M_TRIM_THRESHOLD, LARGE_BUFFER_BYTES),
        "arena_max": (M_ARENA_MAX, ARENAS),
    }
    applied = {}
    for key, (parameter, value) in wanted.items():
        if mallopt(ctypes.c_int(parameter), ctypes.c_int(value)) == 1:
            applied[key] = value
        else:
            log.warning("mallopt refused %s = %d", key, value)
    log.info("native heap settings: %s", applied)
    return applied
