"""The NCCL path (fastlayers.distributed._nccl) against a fake cupy / cupy.cuda.nccl, since no GPU is
at hand here: it checks the calls (device pointers, counts, dtype and op codes, which stream, the
unique id travelling from rank 0, events ordering the streams) and computes the collective on the
host from those pointers, with two ranks simulated in one process. It is NOT a run on GPUs: the
NCCL path has not run on a GPU yet."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from fastlayers.distributed import _nccl


class FakeArray:
    """What the backend reads of a CuPy array: .data.ptr, .size, .dtype, .flags, .device."""

    def __init__(self, a, device=0):
        self.a = np.ascontiguousarray(a)
        self.size, self.dtype, self.flags = self.a.size, self.a.dtype, self.a.flags
        self.data = type("Mem", (), {"ptr": self.a.ctypes.data})()
        self.device = type("Dev", (), {"id": device})()


class FakeStream:
    def __init__(self, ptr):
        self.ptr = ptr
        self.waited = []

    def wait_event(self, ev):
        self.waited.append(ev)


class FakeEvent:
    def __init__(self, disable_timing=True):
        self.recorded_on = None
        self.done = True

    def record(self, stream):
        self.recorded_on = stream


class FakeNccl:
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_FLOAT16, NCCL_INT32, NCCL_INT64 = 7, 8, 6, 2, 4
    NCCL_UINT8, NCCL_INT8, NCCL_UINT32, NCCL_UINT64 = 1, 0, 3, 5
    NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN = 0, 1, 2, 3
    available = True

    def __init__(self):
        self.calls = []
        self.comms = []
        self.pending = {}  # call number -> contributions, to simulate the ranks

    def get_unique_id(self):
        return (42,) * 8

    def NcclCommunicator(self, ndev, uid, rank):  # noqa: N802 (cupy's name)
        fake = self

        class Comm:
            def allReduce(self, send, recv, count, dtype, op, stream):  # noqa: N802
                fake.calls.append(("allReduce", rank, send, recv, count, dtype, op, stream))
                npd = {7: np.float32, 8: np.float64, 2: np.int32}[dtype]
                buf = np.ctypeslib.as_array(ctypes.cast(recv, ctypes.POINTER(np.ctypeslib.as_ctypes_type(npd))),
                                            shape=(count,))
                key = len([c for c in fake.calls if c[0] == "allReduce" and c[1] == rank])
                fake.pending.setdefault(key, []).append(buf)
                if len(fake.pending[key]) == ndev:  # every rank has called: write the sum to all
                    total = np.sum([b.copy() for b in fake.pending[key]], axis=0)
                    for b in fake.pending[key]:
                        b[...] = total

            def bcast(self, buf, count, dtype, root, stream):
                fake.calls.append(("bcast", rank, buf, count, dtype, root, stream))

        fake.comms.append((ndev, uid, rank))
        return Comm()


class FakeCupy:
    def __init__(self):
        self.current = FakeStream(1111)
        self.used = []
        cp = self

        class Device:
            def __init__(self, i):
                self.id = i

            def use(self):
                cp.used.append(self.id)

        class Runtime:
            @staticmethod
            def getDeviceCount():  # noqa: N802
                return 2

        self.cuda = type("cuda", (), {"Device": Device, "runtime": Runtime,
                                      "Stream": lambda non_blocking=True: FakeStream(2222),
                                      "Event": FakeEvent, "get_current_stream": lambda: cp.current})


def _backends(world=2):
    cupy, nccl = FakeCupy(), FakeNccl()
    uid_box = {}

    def bcast(obj):
        if obj is not None:
            uid_box["uid"] = obj
        return uid_box["uid"]

    bs = [_nccl.NcclBackend(cupy, nccl, rank=r, world_size=world, local_rank=r + 1, bcast_object=bcast)
          for r in range(world)]
    return cupy, nccl, bs


def test_communicator_setup_uses_rank0_unique_id_and_local_gpu():
    cupy, nccl, bs = _backends()
    assert nccl.comms == [(2, (42,) * 8, 0), (2, (42,) * 8, 1)]
    assert cupy.used == [1, 0]  # local_rank % device count


def test_allreduce_and_start_pass_pointers_counts_codes_and_streams():
    cupy, nccl, bs = _backends()
    arrs = [FakeArray(np.arange(5, dtype=np.float32) * (r + 1), device=bs[r].device.id) for r in range(2)]
    for b, a in zip(bs, arrs):
        b.allreduce(a, "sum")
    for r, a in enumerate(arrs):
        np.testing.assert_array_equal(a.a, np.arange(5) * 3.0)
        call = nccl.calls[r]
        assert call[2] == call[3] == a.data.ptr and call[4] == 5 and call[5] == FakeNccl.NCCL_FLOAT32
        assert call[6] == FakeNccl.NCCL_SUM and call[7] == 1111  # the current stream
    handles = [b.start(a, "max") for b, a in zip(bs, arrs)]
    assert nccl.calls[-1][7] == 2222 and nccl.calls[-1][6] == FakeNccl.NCCL_MAX  # the side stream
    assert bs[0].stream.waited and bs[0].stream.waited[0].recorded_on is cupy.current  # after compute
    for h in handles:
        h.wait()
    assert cupy.current.waited[-1].recorded_on.ptr == 2222  # compute waits for the collective
    bs[0].broadcast(arrs[0], root=1)
    assert nccl.calls[-1][:2] == ("bcast", 0) and nccl.calls[-1][5] == 1


def test_wrong_arrays_are_refused():
    _, _, bs = _backends()
    with pytest.raises(TypeError, match="NCCL cannot reduce dtype"):
        bs[0].allreduce(FakeArray(np.zeros(3, np.complex64), device=bs[0].device.id))
    with pytest.raises(ValueError, match="is on GPU"):
        bs[0].allreduce(FakeArray(np.zeros(3, np.float32), device=7))


def test_missing_cupy_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(RuntimeError, match=r"fastlayers\[nccl\]"):
        _nccl._modules()
    assert _nccl.available() is False
