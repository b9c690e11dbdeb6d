"""Collectives on arrays: NumPy through MPI (mpi4py), CuPy through NCCL (cupy.cuda.nccl) on the
current CuPy stream, with no host copies. A single process (world size 1) needs neither: the
result is the input (copied unless out= says otherwise).

    fl.distributed.allreduce(a, op="sum")            # a new array: the sum over ranks
    fl.distributed.allreduce(a, op="mean", out=a)    # in place (torch.distributed.all_reduce's way)
    h = fl.distributed.allreduce_async(a, out=a)     # started now; h.wait() returns the result
    fl.distributed.broadcast(a, root=0)              # in place: every rank gets root's values
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from . import _comm
from ._comm import S

__all__ = ["allreduce", "allreduce_async", "broadcast", "broadcast_object", "allgather_object", "Handle",
           "OPS"]

OPS = ("sum", "mean", "max", "min", "prod")


def _check_op(op):
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(map(repr, OPS))}, got {op!r}")


def _check_array(x, name="x"):
    if _backend.is_cupy_array(x):
        return True
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(x).__name__}")
    if x.dtype.kind not in "fiub" or x.dtype.byteorder == ">":
        raise TypeError(f"{name} must be a native-endian numeric array, got dtype {x.dtype}")
    return False


def _check_out(x, out):
    if out is None:
        return
    if type(out) is not type(x) or out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(f"out must be an array like x ({type(x).__name__}, shape {tuple(x.shape)}, dtype {x.dtype}), "
                         f"got {type(out).__name__}, shape {tuple(getattr(out, 'shape', ()))}, "
                         f"dtype {getattr(out, 'dtype', None)}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous (the engines write it in place)")
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError("out must be writeable")


class Handle:
    """A started collective: wait() blocks until it is done and returns the result array; test()
    says whether it is done (and moves it on: MPI progresses non-blocking collectives inside calls)."""

    def __init__(self, result, request=None, finish=None):
        self._result, self._request, self._finish = result, request, finish
        self._done = request is None

    def test(self) -> bool:
        if not self._done and self._request is not None:
            self._done = bool(self._request.Test())
        return self._done

    def wait(self):
        if self._request is not None and not self._done:
            self._request.Wait()
        self._done = True
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish(self._result)
        return self._result


def _mpi_op(op):
    MPI = S.MPI
    return {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN, "prod": MPI.PROD}[op]


def allreduce_async(x, op: str = "sum", out=None) -> Handle:
    """Start an all-reduce of x over all ranks (non-blocking); returns a Handle. With out=None the
    result goes to a new array (x is never modified), with out=x in place. op='mean' divides the
    sum by the world size (floating dtypes only)."""
    _check_op(op)
    is_cupy = _check_array(x)
    _check_out(x, out)
    if op == "mean" and np.dtype(x.dtype).kind != "f":
        raise TypeError(f"op='mean' needs a floating-point array, got dtype {x.dtype}")
    _comm.ensure_init()
    xp = _backend.array_module(x)
    if out is None:
        out = xp.array(x, copy=True, order="C")
    elif out is not x:
        out[...] = x
    elif not out.flags.c_contiguous:
        raise ValueError("in-place all-reduce (out=x) needs a C-contiguous x")
    if S.world_size == 1:
        return Handle(out)
    finish = (lambda r: r.__imul__(r.dtype.type(1.0 / S.world_size))) if op == "mean" else None
    if is_cupy:
        from ._nccl import backend

        backend().allreduce(out, op)
        return Handle(out, None, finish)
    req = S.comm.Iallreduce(S.MPI.IN_PLACE, out, op=_mpi_op(op))
    return Handle(out, req, finish)


def allreduce(x, op: str = "sum", out=None):
    """The all-reduce of x over all ranks (blocking); see allreduce_async. Python numbers are
    reduced too (the result is a Python number)."""
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool):
        _check_op(op)
        _comm.ensure_init()
        if S.world_size == 1:
            return x
        v = S.comm.allreduce(x, op=_mpi_op(op))
        return v / S.world_size if op == "mean" else v
    return allreduce_async(x, op, out).wait()


def broadcast(x, root: int = 0):
    """Give every rank root's values of x, in place (x must be C-contiguous and the same shape and
    dtype on every rank); returns x."""
    is_cupy = _check_array(x)
    _comm.ensure_init()
    if not isinstance(root, (int, np.integer)) or isinstance(root, bool) or not 0 <= root < S.world_size:
        raise ValueError(f"root must be a rank in [0, {S.world_size}), got {root!r}")
    if not x.flags.c_contiguous:
        raise ValueError("broadcast needs a C-contiguous array (it writes in place)")
    if S.world_size == 1:
        return x
    if is_cupy:
        from ._nccl import backend

        backend().broadcast(x, int(root))
    else:
        S.comm.Bcast(x, root=int(root))
    return x


def broadcast_object(obj, root: int = 0):
    """root's Python object (pickled), on every rank."""
    _comm.ensure_init()
    if S.world_size == 1:
        return obj
    return S.comm.bcast(obj, root=root)


def allgather_object(obj) -> list:
    """Every rank's object, as a list indexed by rank."""
    _comm.ensure_init()
    if S.world_size == 1:
        return [obj]
    return S.comm.allgather(obj)
