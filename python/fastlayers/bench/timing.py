"""Timing: warm-up, then as many repetitions as fit a time budget (within bounds); per-call times.

CPU calls are timed with time.perf_counter around the call. GPU calls are timed with CUDA events
recorded on the current stream around each call (CuPy's events for CuPy/fastlayers work, PyTorch's
for PyTorch work), so host-side launch overhead that overlaps the GPU is not counted twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """How long to measure one (op, case, backend)."""

    seconds: float = 1.0  # time budget for the timed repetitions
    min_reps: int = 5
    max_reps: int = 200
    warmup: int = 2  # untimed calls first (only 1 when a call is slower than the budget)


QUICK = Budget(seconds=0.08, min_reps=2, max_reps=10, warmup=1)
FULL = Budget(seconds=1.0, min_reps=5, max_reps=200, warmup=2)


def budget_for(quick: bool = False, seconds: float | None = None) -> Budget:
    """QUICK or FULL, with the time budget replaced by `seconds` when given (--quick / --budget)."""
    budget = QUICK if quick else FULL
    if seconds:
        budget = Budget(seconds, budget.min_reps, budget.max_reps, budget.warmup)
    return budget


def _reps_for(estimate: float, budget: Budget) -> int:
    if estimate <= 0:
        return budget.max_reps
    return int(min(budget.max_reps, max(budget.min_reps, budget.seconds / estimate)))


def time_cpu(fn, budget: Budget = FULL) -> list[float]:
    """Per-call wall seconds of fn() (a synchronous CPU call)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first < budget.seconds:
        for _ in range(budget.warmup - 1):
            fn()
    times = []
    for _ in range(_reps_for(first, budget)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def time_gpu(fn, budget: Budget = FULL, events: str = "cupy") -> list[float]:
    """Per-call GPU seconds of fn() between two CUDA events on the current stream.

    events: "cupy" (fastlayers CUDA ops, CuPy) or "torch" (PyTorch ops on torch's current stream)."""
    if events == "torch":
        import torch

        def make():
            return torch.cuda.Event(enable_timing=True)

        def elapsed(a, b):
            return a.elapsed_time(b) * 1e-3

        def sync():
            torch.cuda.synchronize()
    else:
        import cupy

        def make():
            return cupy.cuda.Event()

        def elapsed(a, b):
            return cupy.cuda.get_elapsed_time(a, b) * 1e-3

        def sync():
            cupy.cuda.get_current_stream().synchronize()

    def one():
        start, stop = make(), make()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        return elapsed(start, stop)

    sync()
    first = one()
    if first < budget.seconds:
        for _ in range(budget.warmup - 1):
            fn()
    sync()
    return [one() for _ in range(_reps_for(first, budget))]


def interleaved(fns: dict, rounds: int, reps: int | dict | None = None, target_s: float = 0.05,
                warmup: int = 2) -> tuple[dict[str, list[float]], dict[str, int]]:
    """A/B(/C...) timing of the CPU callables in `fns` ({name: fn}) in one process: `warmup` calls
    each, then `rounds` rounds, each timing every fn in turn over `reps` back-to-back calls, so that
    a slow spell of a shared machine hits every fn alike. reps: an int, a {name: int}, or None for
    about `target_s` seconds per fn and round (from one call, 1-500). Returns ({name: per-call
    seconds, one per round}, {name: calls per round}); compare medians, or pair rounds
    (paired_ratios)."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    if reps is None:
        reps = {}
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            reps[k] = max(1, min(500, int(target_s / max(time.perf_counter() - t0, 1e-7))))
    elif isinstance(reps, int):
        reps = dict.fromkeys(fns, reps)
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            n = reps[k]
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            times[k].append((time.perf_counter() - t0) / n)
    return times, reps


def paired_ratios(anchor: list[float], ours: list[float]) -> tuple[float, float, float]:
    """Median, min and max over rounds of anchor time / our time of the same round (> 1: ours
    faster); steadier than the ratio of the two medians when the machine drifts between rounds."""
    if len(anchor) != len(ours) or not ours:
        raise ValueError("paired_ratios: need the same number (> 0) of rounds on both sides")
    r = sorted(a / o for a, o in zip(anchor, ours))
    n = len(r)
    med = r[n // 2] if n % 2 else 0.5 * (r[n // 2 - 1] + r[n // 2])
    return med, r[0], r[-1]
