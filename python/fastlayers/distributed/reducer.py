"""Gradient averaging in buckets, overlapped with backward (PyTorch DDP's reducer, on MPI / NCCL).

The trainable parameters are laid out in reverse registration order (about the order backward
produces their gradients) and cut into buckets of about `bucket_cap_mb` MB, each with one
contiguous float32 buffer. While backward runs, every assignment of a gradient (`p.grad = g`, the
way every layer hands over its gradient) is seen by a hook: the gradient is copied into its slot of
the bucket, multiplied by this rank's weight, and when a bucket's last gradient has arrived (and all
buckets before it have been started) its all-reduce is started non-blocking (MPI_Iallreduce, or
NCCL on a side stream). Then backward goes on with the next layers while the bucket travels; the
hook also tests the pending requests, which is how MPI moves non-blocking collectives along.
`finish()` (before the optimizer's step) starts what is left, waits, and points each `p.grad` at its
slot of the reduced buffer (no copy).

Weights: with a 'mean' loss every rank's gradient is the mean over its own shard, so rank r weighs
it by n_r / N (its share of the global batch of N samples); the sum over ranks is then exactly the
gradient of the global batch, also for uneven shards. With a 'sum' loss the weight is 1.

A parameter whose gradient is assigned several times in one backward (a layer used at several
nodes of a graph model, whose gradient the graph sums) is counted on the first step and its bucket
waits for that many assignments from then on. Frozen parameters (trainable False) are not sent.
Gradients are not assigned on a rank without samples in a (short, last) batch: its buckets are
then zeros.
"""

from __future__ import annotations

import time

import numpy as np

from .. import _backend
from ..nn.layers import Parameter
from . import _comm
from ._comm import S


class _HookedParameter(Parameter):
    """A Parameter whose `grad` assignments are reported to a reducer (the class of a model's
    parameters while a DataParallel wraps it; `detach()` restores Parameter)."""

    @property
    def grad(self):
        return self.__dict__.get("_grad")

    @grad.setter
    def grad(self, value):
        self.__dict__["_grad"] = value
        hook = self.__dict__.get("_grad_hook")
        if hook is not None and value is not None:
            hook(self)


def hook_parameters(params, hook) -> None:
    for p in params:
        if type(p) is Parameter:
            g = p.__dict__.pop("grad", None)
            p.__class__ = _HookedParameter
            p.__dict__["_grad"] = g
        elif not isinstance(p, _HookedParameter):
            raise TypeError(f"cannot hook a parameter of class {type(p).__name__}")
        p.__dict__["_grad_hook"] = hook


def unhook_parameters(params) -> None:
    for p in params:
        if isinstance(p, _HookedParameter):
            g = p.__dict__.pop("_grad", None)
            p.__dict__.pop("_grad_hook", None)
            p.__class__ = Parameter
            p.__dict__["grad"] = g


class _Bucket:
    def __init__(self, index, params, xp):
        self.index = index
        self.params = params
        self.offsets = []
        off = 0
        for p in params:
            self.offsets.append(off)
            off += p.size
        self.size = off
        self.buffer = xp.zeros(off, dtype=np.float32)
        self.nbytes = off * 4
        self.filled = set()
        self.handle = None
        self.late = False


class Reducer:
    def __init__(self, params, bucket_cap_mb: float = 4.0):
        if not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        _comm.ensure_init()
        self.params = [p for p in params if p.trainable]
        devices = {_backend.is_cupy_array(p.data) for p in self.params}
        if len(devices) > 1:
            raise ValueError("the model's parameters are on different devices (some NumPy, some CuPy); move the "
                             "whole model with model.to(device) first")
        self.is_cupy = devices == {True}
        xp = _backend.array_module(self.params[0].data) if self.params else np
        cap = int(bucket_cap_mb * 2**20)
        self.buckets: list[_Bucket] = []
        cur, cur_bytes = [], 0
        for p in reversed(self.params):  # backward produces the last layer's gradients first
            if cur and cur_bytes + p.size * 4 > cap:
                self.buckets.append(_Bucket(len(self.buckets), cur, xp))
                cur, cur_bytes = [], 0
            cur.append(p)
            cur_bytes += p.size * 4
        if cur:
            self.buckets.append(_Bucket(len(self.buckets), cur, xp))
        self.where = {}  # id(param) -> (bucket, slot index)
        for b in self.buckets:
            for i, p in enumerate(b.params):
                self.where[id(p)] = (b, i)
        self.overlap = True   # False: every bucket starts in finish() (for measuring what overlap saves)
        self.expected = None  # id(param) -> assignments per backward (learned on the first step)
        self.counts = {}
        self.weight = 1.0
        self.next_launch = 0
        self.active = False
        self.wait_s = 0.0      # time finish() spent blocked on communication, summed over steps
        # Benchmarks only: a barrier at the start of finish() separates the time spent waiting for a
        # slower rank (skew_s) from the time the communication itself still needs (wait_s).
        self.skew_barrier = False
        self.skew_s = 0.0
        self.steps = 0
        self.bytes_per_step = sum(b.nbytes for b in self.buckets)
        hook_parameters(self.params, self._on_grad)

    def detach(self):
        unhook_parameters(self.params)

    # --- one step ----------------------------------------------------------------------------------
    def start_step(self, weight: float) -> None:
        """Before backward: this rank's weight n_r / N (mean loss) or 1 (sum loss)."""
        self.weight = float(weight)
        self.counts = {}
        self.next_launch = 0
        for b in self.buckets:
            b.filled.clear()
            b.handle = None
            b.late = False
        self.active = True

    def _pack(self, b: _Bucket, i: int, p) -> None:
        off = b.offsets[i]
        dst = b.buffer[off:off + p.size]
        g = p.grad.reshape(-1)
        if self.weight == 1.0:
            dst[...] = g
        else:
            xp = _backend.array_module(dst)
            xp.multiply(g, np.float32(self.weight), out=dst)

    def _on_grad(self, p) -> None:
        if not self.active:
            return
        loc = self.where.get(id(p))
        if loc is None:
            return
        b, i = loc
        n = self.counts.get(id(p), 0) + 1
        self.counts[id(p)] = n
        if self.expected is None or not self.overlap:  # first step: learn the counts; all starts in finish()
            return
        if b.handle is not None:  # assigned again after its bucket left: redo it in finish()
            b.late = True
            return
        if n == self.expected.get(id(p), 1):
            self._pack(b, i, p)
            b.filled.add(i)
            self._launch_ready()
        self._progress()

    def _launch(self, b: _Bucket) -> None:
        if S.world_size == 1:
            b.handle = True
        elif self.is_cupy:
            from ._nccl import backend

            b.handle = backend().start(b.buffer, "sum")
        else:
            b.handle = S.comm.Iallreduce(S.MPI.IN_PLACE, b.buffer, op=S.MPI.SUM)

    def _launch_ready(self) -> None:
        # Buckets start in index order on every rank (collectives must be issued in the same order).
        while self.next_launch < len(self.buckets):
            b = self.buckets[self.next_launch]
            if len(b.filled) < len(b.params):
                break
            self._launch(b)
            self.next_launch += 1

    def _progress(self) -> None:
        if S.world_size > 1 and not self.is_cupy:
            for b in self.buckets[:self.next_launch]:
                h = b.handle
                if h is not None and h is not True:
                    if h.Test():
                        b.handle = True

    def finish(self) -> None:
        """After backward: start the remaining buckets (gradients never assigned count as zeros),
        wait for all, and set every p.grad to its averaged slot."""
        first = self.expected is None
        for b in self.buckets[self.next_launch:]:
            for i, p in enumerate(b.params):
                if i not in b.filled:
                    if p.grad is None or id(p) not in self.counts:
                        b.buffer[b.offsets[i]:b.offsets[i] + p.size] = 0
                    else:
                        self._pack(b, i, p)
                    b.filled.add(i)
        self._launch_ready()
        if self.skew_barrier and S.world_size > 1 and not self.is_cupy:
            t0 = time.perf_counter()
            S.comm.Barrier()
            self.skew_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in self.buckets:
            self._wait(b)
        for b in self.buckets:  # a gradient assigned after its bucket left (structural, so on every rank)
            if b.late:
                for i, p in enumerate(b.params):
                    self._pack(b, i, p)
                self._launch(b)
                self._wait(b)
        self.wait_s += time.perf_counter() - t0
        self.active = False
        if first or any(b.late for b in self.buckets):
            self.expected = dict(self.counts)
        for b in self.buckets:
            for i, p in enumerate(b.params):
                off = b.offsets[i]
                p.__dict__["_grad"] = b.buffer[off:off + p.size].reshape(p.shape)
        self.steps += 1

    def _wait(self, b: _Bucket) -> None:
        h = b.handle
        if h is None or h is True:
            return
        if self.is_cupy:
            h.wait()
        else:
            h.Wait()
        b.handle = True

    def zero_step(self) -> None:
        """A step in which this rank has no sample: every gradient is zero (the others' are summed)."""
        self.start_step(0.0)
        for p in self.params:
            p.__dict__["_grad"] = None
        self.counts = {}
        for b in self.buckets:
            b.buffer[...] = 0
            b.filled = set(range(len(b.params)))
        self._launch_ready()
        t0 = time.perf_counter()
        for b in self.buckets:
            self._wait(b)
        self.wait_s += time.perf_counter() - t0
        self.active = False
        for b in self.buckets:
            for i, p in enumerate(b.params):
                off = b.offsets[i]
                p.__dict__["_grad"] = b.buffer[off:off + p.size].reshape(p.shape)
        self.steps += 1
