"""SyncBatchNorm: batch normalisation with the statistics of the global batch (all ranks).

In training, each rank sums x and x² per channel over its shard (float64) and one all-reduce gives
the global mean and (biased) variance; the output is then the eval-mode batch_norm kernel with those
statistics, and the running statistics are updated with them (unbiased variance, M values per
channel over all ranks) exactly as BatchNorm's. Backward all-reduces Σg and Σg·x̂ per channel, so
the input gradient is that of the global batch. With one rank it is BatchNorm.

    fl.distributed.DataParallel(model, sync_batchnorm=True)   # every BatchNorm*d, for the fit
    fl.distributed.convert_sync_batchnorm(model)              # by hand: in place; revert_sync_batchnorm

Data-parallel fit weights each rank's gradient by its share n_r / N (see reducer); the all-reduced
sums in backward carry the same weight, so uneven shards give the single-process gradients too. The
layer's own weight/bias gradients are the rank's local sums (the reducer adds them up).

A rank without a sample in a (short, last) batch still takes part in every all-reduce, with zeros,
in the order the layers ran on the last step where it had samples. The statistics travel on a
duplicate of the data-parallel communicator, so they never wait behind gradient buckets. On CuPy
arrays the sums go through NCCL (untested on GPUs, as the rest of the NCCL path).
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from ..nn.layers import Layer, _BatchNorm
from . import _comm
from ._comm import S

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm", "revert_sync_batchnorm"]


class _Group:
    comm = None        # duplicate communicator for the statistics (made collectively)
    weight = 1.0       # this rank's weight n_r / N in the current step (set by DataParallel)
    order: list = []   # SyncBatchNorm layers in the order their forward ran in the last full step


G = _Group()


def setup_group() -> None:
    """Make the statistics' communicator (a collective call: every rank at the same point)."""
    _comm.ensure_init()
    if G.comm is None and S.comm is not None and S.world_size > 1:
        G.comm = S.comm.Dup()


def _allreduce(buf):
    """Sum buf (float64, 1-D) over ranks in place."""
    if S.world_size == 1:
        return buf
    if _backend.is_cupy_array(buf):
        from ._nccl import backend

        return backend().allreduce(buf, "sum")
    setup_group()
    G.comm.Allreduce(S.MPI.IN_PLACE, buf, op=S.MPI.SUM)
    return buf


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


class SyncBatchNorm(_BatchNorm):
    """torch.nn.SyncBatchNorm: BatchNorm over (N, C, *) input with the global batch's statistics."""

    _input_ndims = (2, 3, 4, 5)
    _layout = "(N, C, ...)"

    def forward(self, x, training=None):
        tracking = self.track_running_stats
        batch = (self._is_training(training) and self.trainable) or not tracking
        if not batch or S.world_size == 1:
            self._sync = False
            return super().forward(x, training)
        if x.ndim not in self._input_ndims or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: input must be (N, C, ...) with C = num_features = {self.num_features}, "
                             f"got {tuple(x.shape)}")
        xp = _backend.array_module(x)
        c = self.num_features
        per = x.size // c if c else 0
        buf = xp.empty(2 * c + 1, dtype=xp.float64)
        axes = _axes(x)
        buf[:c] = x.sum(axis=axes, dtype=xp.float64)
        buf[c:2 * c] = (x.astype(xp.float64) ** 2).sum(axis=axes)
        buf[2 * c] = per
        _allreduce(buf)
        m = float(buf[2 * c])
        if m <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all ranks when training, "
                             f"got input size {tuple(x.shape)} and {int(m)} values in all")
        mean = buf[:c] / m
        var = xp.maximum(buf[c:2 * c] / m - mean * mean, 0.0)
        if self not in G.order:
            G.order.append(self)
        if tracking:
            count = self._buffers["num_batches_tracked"]
            count += 1
            f = 1.0 / float(count[0]) if self.momentum is None else self.momentum
            rm, rv = self._buffers["running_mean"], self._buffers["running_var"]
            rm *= (1 - f)
            rm += (f * mean).astype(rm.dtype)
            rv *= (1 - f)
            rv += (f * var * (m / (m - 1))).astype(rv.dtype)
        self._sync, self._x, self._m = True, x, m
        self._mean, self._invstd = mean, 1.0 / xp.sqrt(var + self.eps)
        w, b = self.weight, self.bias
        from ..nn._ops import F

        return F.batch_norm(x, mean.astype(np.float32), var.astype(np.float32), None if w is None else w.data,
                            None if b is None else b.data, training=False, eps=self.eps)

    def backward(self, grad_out):
        if not getattr(self, "_sync", False):
            return super().backward(grad_out)
        xp = _backend.array_module(grad_out)
        x, c, m = self._x, self.num_features, self._m
        shape = (1, c) + (1,) * (x.ndim - 2)
        mean, invstd = self._mean.reshape(shape), self._invstd.reshape(shape)
        xhat = (x.astype(xp.float64) - mean) * invstd
        g = grad_out.astype(xp.float64)
        axes = _axes(x)
        gb_loc, gw_loc = g.sum(axis=axes), (g * xhat).sum(axis=axes)
        buf = xp.concatenate([gb_loc, gw_loc]) * G.weight  # in units of the global loss
        _allreduce(buf)
        w = xp.ones(c) if self.weight is None else self.weight.data.astype(xp.float64)
        scale = (w.reshape(shape) * invstd)
        gx = scale * (g - (buf[:c].reshape(shape) + xhat * buf[c:].reshape(shape)) / (m * G.weight))
        if self.affine:
            self._set_grad("weight", gw_loc.astype(np.float32))
            self._set_grad("bias", gb_loc.astype(np.float32))
        self._x = None
        return gx.astype(np.float32)

    def idle(self, phase: str) -> None:
        """Take part in this layer's all-reduce with zeros (a rank without samples in this step)."""
        c = self.num_features
        _allreduce(np.zeros(2 * c + (1 if phase == "forward" else 0), np.float64))
        if phase == "forward" and self.track_running_stats:
            pass  # the statistics of the others: the buffers are rank 0's again after the epoch


def _walk(layer):
    yield layer
    for child in layer.children():
        yield from _walk(child)


def sync_layers(model) -> list:
    return [la for la in _walk(model) if isinstance(la, SyncBatchNorm)]


def idle_step(model) -> None:
    """A step without samples on this rank: every SyncBatchNorm all-reduce, with zeros, in the order
    of the last step (forward), then reversed (backward)."""
    order = [la for la in G.order if la in set(sync_layers(model))] or sync_layers(model)
    for la in order:
        la.idle("forward")
    for la in reversed(order):
        la.idle("backward")


def convert_sync_batchnorm(model: Layer) -> Layer:
    """Every BatchNorm1d/2d/3d in model becomes a SyncBatchNorm, in place (same parameters and
    buffers); revert_sync_batchnorm undoes it. Collective: call it on every rank."""
    for la in _walk(model):
        if isinstance(la, _BatchNorm) and not isinstance(la, SyncBatchNorm):
            la.__dict__["_unsynced_class"] = type(la)
            la.__class__ = SyncBatchNorm
    setup_group()
    G.order = []
    return model


def revert_sync_batchnorm(model: Layer) -> Layer:
    for la in _walk(model):
        cls = la.__dict__.pop("_unsynced_class", None)
        if cls is not None:
            la.__class__ = cls
    return model
