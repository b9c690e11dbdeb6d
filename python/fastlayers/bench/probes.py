"""Machine limits for the roofline: peak FLOP/s and memory bandwidth, measured now.

CPU: the C++ probes in csrc/cpu/probe*.cpp (independent FMA chains with the active ISA on every
OpenMP thread; a STREAM triad over arrays far larger than the last-level cache). GPU: a large
device-to-device copy (bytes read + written) and cupy.matmul in FP32 as the compute ceiling.
"""

from __future__ import annotations

from .. import _cpu


def cpu_peak_gflops(threads: int = 1, isa: str = "", iters: int = 1 << 21, reps: int = 5) -> float:
    """Best-of-`reps` FP32 FMA rate in GFLOP/s on `threads` threads (isa '' = the active ISA)."""
    return _cpu.probe_peak_gflops(isa, int(threads), int(iters), int(reps))


def cpu_triad_gbps(threads: int = 1, n: int = 1 << 25, passes: int = 5) -> float:
    """Best-of-`passes` STREAM-triad bandwidth in GB/s over three arrays of n floats (default
    128 MiB each, 4x a 32 MiB L3), counting 12 bytes per element."""
    return _cpu.probe_triad_gbps(int(n), int(threads), int(passes))


def cpu_peaks(threads: int, quick: bool = False) -> dict:
    """Peaks for 1 thread and for `threads` threads; `gflops`/`gbps` are the `threads` figures that
    records are compared against."""
    n = 1 << 24 if quick else 1 << 25
    passes = 3 if quick else 6
    reps = 5 if quick else 12  # best of many short runs: a busy neighbour lowers the result less
    out = {"isa": _cpu.active_isa(), "threads": threads,
           "gflops_1t": cpu_peak_gflops(1, reps=reps), "gbps_1t": cpu_triad_gbps(1, n, passes)}
    out["gflops_measured"] = cpu_peak_gflops(threads, reps=reps) if threads > 1 else out["gflops_1t"]
    out["gbps_measured"] = cpu_triad_gbps(threads, n, passes) if threads > 1 else out["gbps_1t"]
    # More threads cannot lower the machine's limit: an all-thread figure under the 1-thread one only
    # means a neighbour was busy, so the roof the records are compared against is the larger.
    out["gflops"] = max(out["gflops_measured"], out["gflops_1t"])
    out["gbps"] = max(out["gbps_measured"], out["gbps_1t"])
    out["triad_bytes"] = 3 * 4 * n
    return out


def gpu_copy_gbps(nbytes: int = 1 << 31, reps: int = 10) -> float:
    """Best device-to-device copy rate of a large buffer, counting bytes read + written."""
    import cupy

    src = cupy.ones(nbytes // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    best = 0.0
    for i in range(reps + 1):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        dst[...] = src
        stop.record()
        stop.synchronize()
        if i:  # the first copy is a warm-up
            best = max(best, 2 * src.nbytes / (cupy.cuda.get_elapsed_time(start, stop) * 1e-3) * 1e-9)
    del src, dst
    return best


def gpu_matmul_gflops(n: int = 8192, reps: int = 10) -> float:
    """Best cupy.matmul FP32 rate (cuBLAS SGEMM; TF32 stays off unless CUPY_TF32=1) on n x n."""
    import cupy

    a = cupy.random.random((n, n), dtype=cupy.float32)
    b = cupy.random.random((n, n), dtype=cupy.float32)
    c = cupy.empty((n, n), dtype=cupy.float32)
    best = 0.0
    for i in range(reps + 1):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        cupy.matmul(a, b, out=c)
        stop.record()
        stop.synchronize()
        if i:
            best = max(best, 2.0 * n**3 / (cupy.cuda.get_elapsed_time(start, stop) * 1e-3) * 1e-9)
    return best


def gpu_peaks(quick: bool = False) -> dict:
    import cupy

    dev = cupy.cuda.Device()
    return {"device": f"cuda:{dev.id}",
            "gbps": gpu_copy_gbps(1 << 29 if quick else 1 << 31),
            "gflops": gpu_matmul_gflops(4096 if quick else 8192),
            "gflops_source": "cupy.matmul FP32", "gbps_source": "device-to-device copy (read + write)"}
