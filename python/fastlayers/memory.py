"""Where the models' large arrays live: a cache of big memory blocks (csrc/cpu/arena.h).

A training step frees and re-allocates the same few hundred MB of activations and gradients every
step. From the C library that memory often comes back as fresh pages (glibc maps blocks above its
mmap threshold anew each time and trims its heap), so each step pays page faults and zeroing, by an
amount that depends on what else the process did. While `arena()` is active, NumPy arrays of at
least 1 MiB take their memory from fastlayers' block cache instead, and give it back to the cache
when freed; smaller arrays use malloc as usual. The layer-by-layer passes of Sequential and Model
(training, and eval mode off the inference plan) run inside it.

- `arena()`: a context manager (nestable, per thread/async context: it is NumPy's handler of the
  current context, NEP 49). Arrays remember the handler that made them: one made inside and freed
  later still returns to the cache.
- `arena_stats()`: bytes in use and cached, peak, hits and misses.
- `release_cached()`: gives every cached free block back to the system (e.g. after training).
- `set_arena_limit(nbytes)`: free blocks kept at most (default 1 GiB, or the environment's
  FASTLAYERS_ARENA_LIMIT_MB at import); past it the largest free blocks are unmapped.
- FASTLAYERS_ARENA=0 in the environment (read at import) turns `arena()` into a no-op.
"""

from __future__ import annotations

import contextlib
import os

from . import _cpu

_ENABLED = os.environ.get("FASTLAYERS_ARENA", "1") != "0"
_HANDLER = _cpu.arena_handler() if _ENABLED else None


@contextlib.contextmanager
def arena():
    """NumPy allocations of >= 1 MiB come from fastlayers' block cache inside the block."""
    if _HANDLER is None:
        yield
        return
    old = _cpu.arena_set_handler(_HANDLER)
    try:
        yield
    finally:
        _cpu.arena_set_handler(old)


def arena_enabled() -> bool:
    return _HANDLER is not None


def arena_stats() -> dict:
    """in_use_bytes, cached_bytes (free blocks kept), peak_bytes (of both), hits, misses (new
    mappings), limit_bytes, min_block_bytes."""
    return dict(_cpu.arena_stats())


def release_cached() -> int:
    """Unmaps every cached free block; returns the bytes given back."""
    return int(_cpu.arena_release_free())


def set_arena_limit(nbytes: int) -> None:
    """Keep at most `nbytes` of free blocks cached (the largest beyond it are unmapped now)."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or not 0 <= nbytes < 2**63:
        raise ValueError(f"nbytes must be an int in [0, 2**63), got {nbytes!r}")
    _cpu.arena_set_limit(nbytes)
