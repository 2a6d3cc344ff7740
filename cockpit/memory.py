"""Giving freed heap back to the system (glibc), so a web process's RSS follows what it holds.

CPython frees the objects of a one-off build (a grid set parsed from Redis, a GeoJSON written
for the map) into malloc's heap, which glibc keeps; ``malloc_trim`` returns the free pages.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from functools import lru_cache


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - glibc only (musl and macOS have none)
    except (OSError, AttributeError):
        return None
    return libc


def release_free_heap() -> bool:
    """``malloc_trim(0)``: True when glibc gave memory back; False elsewhere or when none was
    free. Cheap next to the builds it follows (a few ms for a few hundred MB of heap)."""
    libc = _libc()
    if libc is None:
        return False
    with contextlib.suppress(OSError):
        return bool(libc.malloc_trim(0))
    return False
