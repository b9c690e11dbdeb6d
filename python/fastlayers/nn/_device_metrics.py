"""Pieces of the training loop that keep a GPU step free of host synchronisation (used by
TrainableModel.fit / evaluate in nn/training.py, so by Sequential and the graph Model alike).

- `Totals`: the running loss sum and correct count of an epoch. For device (CuPy) values they are
  added on the device, with no host read, and read once when the epoch ends (`result`); for NumPy
  values they are plain Python numbers, as before.
- `Batches`: the training set on the model's device. On the GPU it is copied there once per fit
  (when it fits in half the free device memory) and each epoch's permutation once per epoch; a
  batch is then a device gather, with no host-to-device copy (a copy from pageable memory
  synchronises the stream) and no host read. Otherwise each batch is copied as before. A model
  with several inputs or outputs passes them as one object that indexes them together (training's
  _Arrays, `.arrays`); its device copy is then a list of arrays, gathered each.
"""

from __future__ import annotations

import numpy as np

from .. import _backend


class Totals:
    """Loss sum (weighted by batch size for 'mean' losses) and correct count over batches. The count
    is summed as a float: for per-position classification a loss's `correct` is the batch's pixel
    accuracy times N (nn/losses.py), not an integer."""

    def __init__(self):
        self.loss = 0.0
        self.correct = 0.0
        self.seen = 0
        self.has_accuracy = False
        self._device = False

    def add(self, loss_value, batch: int, reduction: str, correct) -> None:
        weight = batch if reduction == "mean" else 1
        self.seen += batch
        self.has_accuracy = correct is not None
        if _backend.is_cupy_array(loss_value):
            xp = _backend.array_module(loss_value)
            if not self._device:
                self._device = True
                self.loss = xp.zeros((), dtype=xp.float64) + self.loss
                self.correct = xp.zeros((), dtype=xp.float64) + self.correct
            self.loss = self.loss + loss_value.astype(xp.float64) * weight  # device ops, queued
            if correct is not None:
                self.correct = self.correct + correct.astype(xp.float64)
        else:
            self.loss += float(loss_value) * weight
            if correct is not None:
                self.correct += float(correct)

    def result(self) -> tuple[float, float]:
        """(loss sum, correct count) as Python floats: the one host read of the epoch's figures."""
        if self._device:
            xp = _backend.array_module(self.loss)
            both = xp.stack([self.loss, self.correct]).get()
            return float(both[0]), float(both[1])
        return float(self.loss), float(self.correct)


def _nbytes(a) -> int:
    return sum(np.asarray(v).nbytes for v in a.arrays) if hasattr(a, "arrays") else np.asarray(a).nbytes


def _take(a, idx):
    """a[idx] for a device array, or for each of a list of them (several inputs or outputs)."""
    return [v[idx] for v in a] if isinstance(a, list) else a[idx]


class Batches:
    """x[idx], t[idx] for index arrays idx of the host arrays x, t, on the model's device."""

    def __init__(self, x, t, put, put_target, device: str):
        self._put, self._put_target = put, put_target
        self._x, self._t = x, t
        self._dev_x = self._dev_t = None
        if device == "cuda" and self._fits(_nbytes(x) + _nbytes(t)):
            self._dev_x, self._dev_t = put(x), put_target(t)
        self._order = None

    @staticmethod
    def _fits(nbytes: int) -> bool:
        import cupy

        free, _ = cupy.cuda.runtime.memGetInfo()
        return nbytes <= free // 2

    def epoch(self, order: np.ndarray) -> None:
        """Use this permutation (host int array) for the next batches."""
        self._order = order
        if self._dev_x is not None:
            first = self._dev_x[0] if isinstance(self._dev_x, list) else self._dev_x
            self._order_dev = _backend.array_module(first).asarray(order)

    def batch(self, start: int, stop: int):
        if self._dev_x is not None:
            idx = self._order_dev[start:stop]
            return _take(self._dev_x, idx), _take(self._dev_t, idx)
        idx = self._order[start:stop]
        return self._put(self._x[idx]), self._put_target(self._t[idx])
