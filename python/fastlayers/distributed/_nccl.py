"""NCCL for CuPy arrays (cupy.cuda.nccl): all-reduce and broadcast of device buffers, with no host
copies, ordered against the compute stream by CUDA events.

The communicator is made on the first CuPy collective: rank 0 draws NCCL's unique id and MPI
broadcasts it (so a multi-GPU job is still started with mpiexec, one rank per GPU); each rank uses
the GPU `local_rank % device count`.

Overlap: `start()` records an event on the current (compute) stream, makes a side stream wait for
it and queues the NCCL kernel there; the returned handle's `wait()` makes the compute stream wait
for the collective's completion event. The host never blocks, so backward keeps queuing kernels
while the gradients of finished buckets travel.

NOTE: this path has been checked only against a fake NCCL module on a machine without a GPU
(tests/distributed/test_nccl_fake.py); it has not yet run on GPUs.
"""

from __future__ import annotations

import numpy as np

from ._comm import NCCL_HINT, S


def _modules():
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as e:
        raise RuntimeError(f"collectives on CuPy arrays need CuPy with NCCL ({e}); {NCCL_HINT}") from None
    if not getattr(nccl, "available", True):
        raise RuntimeError(f"CuPy is installed but its NCCL support is not available; {NCCL_HINT}")
    return cupy, nccl


def _dtype_code(nccl, dtype) -> int:
    dtype = np.dtype(dtype)
    names = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64", "float16": "NCCL_FLOAT16",
             "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8", "int8": "NCCL_INT8",
             "uint32": "NCCL_UINT32", "uint64": "NCCL_UINT64"}
    if dtype.name not in names:
        raise TypeError(f"NCCL cannot reduce dtype {dtype}; use one of {', '.join(names)}")
    return getattr(nccl, names[dtype.name])


def _op_code(nccl, op: str) -> int:
    return {"sum": nccl.NCCL_SUM, "mean": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN,
            "prod": nccl.NCCL_PROD}[op]


class NcclHandle:
    """A collective queued on the communication stream; wait() orders the current stream after it
    (no host synchronisation) and returns the array."""

    def __init__(self, array, event, cupy):
        self.array, self._event, self._cupy = array, event, cupy

    def test(self) -> bool:
        return bool(self._event.done)

    def wait(self):
        self._cupy.cuda.get_current_stream().wait_event(self._event)
        return self.array


class NcclBackend:
    def __init__(self, cupy=None, nccl=None, rank=None, world_size=None, local_rank=None, bcast_object=None):
        if cupy is None or nccl is None:
            cupy, nccl = _modules()
        self.cupy, self.nccl = cupy, nccl
        rank = S.rank if rank is None else rank
        world_size = S.world_size if world_size is None else world_size
        local_rank = S.local_rank if local_rank is None else local_rank
        n_dev = cupy.cuda.runtime.getDeviceCount()
        if n_dev < 1:
            raise RuntimeError("collectives on CuPy arrays need a CUDA device; none is visible")
        self.device = cupy.cuda.Device(local_rank % n_dev)
        self.device.use()
        if bcast_object is None:
            from .collectives import broadcast_object as bcast_object
        uid = bcast_object(nccl.get_unique_id() if rank == 0 else None)
        self.comm = nccl.NcclCommunicator(world_size, uid, rank)
        self.rank, self.world_size = rank, world_size
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def _check(self, a):
        if not a.flags.c_contiguous:
            raise ValueError("NCCL collectives need a C-contiguous CuPy array")
        if a.device.id != self.device.id:
            raise ValueError(f"the array is on GPU {a.device.id}, this rank's communicator on GPU {self.device.id}")

    def allreduce(self, a, op: str = "sum"):
        """In place, queued on the current stream (ordered like any kernel launched after it)."""
        self._check(a)
        stream = self.cupy.cuda.get_current_stream()
        self.comm.allReduce(a.data.ptr, a.data.ptr, a.size, _dtype_code(self.nccl, a.dtype),
                            _op_code(self.nccl, op), stream.ptr)
        return a

    def start(self, a, op: str = "sum") -> NcclHandle:
        """In place, on the communication stream after what the current stream has queued so far."""
        self._check(a)
        ready = self.cupy.cuda.Event(disable_timing=True)
        ready.record(self.cupy.cuda.get_current_stream())
        self.stream.wait_event(ready)
        self.comm.allReduce(a.data.ptr, a.data.ptr, a.size, _dtype_code(self.nccl, a.dtype),
                            _op_code(self.nccl, op), self.stream.ptr)
        done = self.cupy.cuda.Event(disable_timing=True)
        done.record(self.stream)
        return NcclHandle(a, done, self.cupy)

    def broadcast(self, a, root: int = 0):
        self._check(a)
        stream = self.cupy.cuda.get_current_stream()
        self.comm.bcast(a.data.ptr, a.size, _dtype_code(self.nccl, a.dtype), root, stream.ptr)
        return a


def backend() -> NcclBackend:
    """This process's NCCL backend (made on first use; a clear error without CuPy/NCCL)."""
    if S.nccl is None:
        S.nccl = NcclBackend()
    return S.nccl


def available() -> bool:
    """Whether CuPy with NCCL can be imported (not whether a GPU is present)."""
    try:
        _modules()
        return True
    except RuntimeError:
        return False
