"""Thread count of the CPU kernels (OpenMP), process-wide.

It follows OMP_NUM_THREADS (or the CPU count) until set here. Unlike omp_set_num_threads, which
OpenMP keeps per thread, fl.set_num_threads(n) applies to every Python thread, including ones
started later: the kernels keep their own global and pass it to each parallel region
(csrc/cpu/parallel.h). In a child process made by os.fork() the kernels run on one thread (see
docs/ops.md, "Errors and limits").
"""

import os

from . import _cpu
from ._checks import as_int

# Far more threads than cores only costs time; more than this is refused rather than risking
# libgomp aborting when the OS cannot start them.
MAX_THREADS = max(512, 4 * (os.cpu_count() or 1))


def set_num_threads(n: int) -> None:
    """Sets the CPU kernels' thread count for the whole process (1 <= n <= MAX_THREADS)."""
    n = as_int(n, "n")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n must be in [1, {MAX_THREADS}] (threads for the CPU kernels), got {n}")
    _cpu.set_num_threads(n)


def get_num_threads() -> int:
    """The CPU kernels' thread count (1 in a child made by os.fork())."""
    return _cpu.get_num_threads()
