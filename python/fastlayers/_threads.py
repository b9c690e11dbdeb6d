"""Thread count of the CPU kernels (OpenMP). Follows OMP_NUM_THREADS until set here."""

from . import _cpu
from ._checks import as_int


def set_num_threads(n: int) -> None:
    n = as_int(n, "n")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    _cpu.set_num_threads(n)


def get_num_threads() -> int:
    return _cpu.get_num_threads()
