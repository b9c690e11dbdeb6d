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
- The ops' own outputs and scratch arrays (`fastlayers.ops`, NumPy arrays) of at least 1 MiB come
  from the cache too, inside `arena()` or not (`cached_empty`; `cached_float32` in the fast paths
  that already know the element count): a loop of large calls reuses its memory instead of
  faulting in fresh pages each call (a 7 MiB conv output: 1.56 ms warm against up to 4 ms in fresh
  pages). Lower the limit, or call `release_cached()`, to hold less.
- FASTLAYERS_ARENA=0 in the environment (read at import) turns `arena()` into a no-op and the ops
  back to NumPy's allocator.
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np

from . import _cpu

_ENABLED = os.environ.get("FASTLAYERS_ARENA", "1") != "0"
_HANDLER = _cpu.arena_handler() if _ENABLED else None
_MIN_BYTES = int(_cpu.arena_stats()["min_block_bytes"])


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


def cached_empty(shape, dtype=np.float32, *, zeroed: bool = False) -> np.ndarray:
    """np.empty (np.zeros if zeroed) whose memory comes from the cache when it is at least 1 MiB:
    how the ops allocate their NumPy outputs. Smaller arrays, and every array with the cache off,
    are NumPy's own."""
    make = np.zeros if zeroed else np.empty
    if _HANDLER is not None:
        try:  # float32 without np.dtype(): this runs on every op call, small ones included
            itemsize = 4 if dtype is np.float32 else np.dtype(dtype).itemsize
            nbytes = itemsize * (shape if isinstance(shape, int) else math.prod(shape))
        except TypeError:
            nbytes = 0  # not a shape or a dtype: NumPy raises its own error below
        if nbytes >= _MIN_BYTES:
            return _from_cache(make, shape, dtype)
    return make(shape, dtype)


def cached_float32(shape, count: int) -> np.ndarray:
    """cached_empty(shape) for a caller that already knows the element count: the ops' fast paths
    (the residual add, the plain gemm), which skip even working out the size."""
    if _HANDLER is not None and 4 * count >= _MIN_BYTES:
        return _from_cache(np.empty, shape, np.float32)
    return np.empty(shape, np.float32)


def _from_cache(make, shape, dtype) -> np.ndarray:
    old = _cpu.arena_set_handler(_HANDLER)
    try:
        return make(shape, dtype)
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
