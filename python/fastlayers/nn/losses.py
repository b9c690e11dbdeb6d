"""Losses over the loss ops. `loss(pred, target)` returns a 0-d array (no device sync) and caches its
arguments; `loss.backward()` returns d loss / d pred.

Each loss also knows how to turn user labels into its target form (`prepare_target`, which raises a
clear ValueError for a wrong shape) and how to score predictions (`correct`, the number of correct
predictions in a batch, or None for regression losses).
"""

from __future__ import annotations

import numpy as np

from .._backend import array_module
from ._ops import F

__all__ = ["Loss", "MSELoss", "BCEWithLogitsLoss", "SoftmaxCrossEntropyLoss", "LogisticLoss", "HingeLoss",
           "get_loss"]


class Loss:
    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self._config = dict(reduction=reduction)

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forward(self, pred, target):
        self._args = (pred, target)
        return self._op(pred, target)

    def backward(self):
        return self._op_backward(*self._args)

    def get_config(self) -> dict:
        return dict(self._config)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._config.items())})"

    # --- labels -----------------------------------------------------------------------------------
    def prepare_target(self, y, out_shape):
        """y (NumPy, one row per sample) -> the float32 target the op expects for outputs of out_shape
        (the per-sample shape, without N). Same-shape targets pass; (N,) targets for (N, 1) outputs
        are reshaped."""
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            raise TypeError(f"y must be numeric, got dtype {y.dtype}")
        want = tuple(out_shape)
        if tuple(y.shape[1:]) == want:
            return y.astype(np.float32)
        if y.ndim == 1 and want == (1,):
            return y.reshape(-1, 1).astype(np.float32)
        raise ValueError(f"{type(self).__name__}: y must have shape (N,) + {want} to match the model's "
                         f"output, got {tuple(y.shape)}")

    def correct(self, pred, target):
        """Number of correct predictions in the batch (a device scalar), or None (regression)."""
        return None


class MSELoss(Loss):
    def _op(self, pred, target):
        return F.mse_loss(pred, target, self.reduction)

    def _op_backward(self, pred, target):
        return F.mse_loss_backward(pred, target, self.reduction)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on raw logits; targets in [0, 1]. A prediction counts as correct when
    (logit > 0) == (target > 0.5)."""

    def _op(self, pred, target):
        return F.binary_cross_entropy_with_logits(pred, target, self.reduction)

    def _op_backward(self, pred, target):
        return F.binary_cross_entropy_with_logits_backward(pred, target, self.reduction)

    def prepare_target(self, y, out_shape):
        t = super().prepare_target(y, out_shape)
        if t.size and (t.min() < 0 or t.max() > 1):
            raise ValueError(f"BCEWithLogitsLoss: targets must be in [0, 1], got range [{t.min()}, {t.max()}]")
        return t

    def correct(self, pred, target):
        xp = array_module(pred)
        return xp.sum(((pred > 0) == (target > 0.5)).reshape(pred.shape[0], -1).all(axis=1))


class _SignedLoss(Loss):
    """Losses on labels in {-1, +1} (logistic, hinge). Labels in {0, 1} are mapped to -1/+1; integer
    class labels (N,) for C > 1 outputs become one-vs-rest ±1 rows."""

    def prepare_target(self, y, out_shape):
        y = np.asarray(y)
        want = tuple(out_shape)
        if y.ndim == 1 and len(want) == 1 and want[0] > 1:
            if y.dtype.kind not in "iu" or y.size and (y.min() < 0 or y.max() >= want[0]):
                raise ValueError(f"{type(self).__name__}: class labels must be integers in [0, {want[0]}), "
                                 f"got dtype {y.dtype}" + (f", range [{y.min()}, {y.max()}]" if y.size else ""))
            t = -np.ones((len(y), want[0]), np.float32)
            t[np.arange(len(y)), y] = 1
            return t
        t = super().prepare_target(y, out_shape)
        values = set(np.unique(t).tolist())
        if values <= {0.0, 1.0}:
            t = 2 * t - 1
        elif not values <= {-1.0, 1.0}:
            raise ValueError(f"{type(self).__name__}: labels must be in {{-1, +1}} (or {{0, 1}}), "
                             f"got values {sorted(values)[:5]}")
        return t

    def correct(self, pred, target):
        xp = array_module(pred)
        if pred.ndim == 2 and pred.shape[1] > 1:
            return xp.sum(xp.argmax(pred, axis=1) == xp.argmax(target, axis=1))
        return xp.sum(((pred > 0) == (target > 0)).reshape(pred.shape[0], -1).all(axis=1))


class LogisticLoss(_SignedLoss):
    """log(1 + exp(-y·s)) with labels y in {-1, +1}."""

    def _op(self, pred, target):
        return F.logistic_loss(pred, target, self.reduction)

    def _op_backward(self, pred, target):
        return F.logistic_loss_backward(pred, target, self.reduction)


class HingeLoss(_SignedLoss):
    """max(0, margin - y·s) with labels in {-1, +1}; margin 0 is the perceptron criterion."""

    def __init__(self, margin: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = float(margin)
        self._config = dict(margin=self.margin, reduction=reduction)

    def _op(self, pred, target):
        return F.hinge_loss(pred, target, self.margin, self.reduction)

    def _op_backward(self, pred, target):
        return F.hinge_loss_backward(pred, target, self.margin, self.reduction)


class SoftmaxCrossEntropyLoss(Loss):
    """Fused softmax + cross-entropy on logits (N, C); labels are class indices (N,) or probabilities (N, C)."""

    def _op(self, pred, target):
        return F.softmax_cross_entropy(pred, target, self.reduction)

    def _op_backward(self, pred, target):
        return F.softmax_cross_entropy_backward(pred, target, self.reduction)

    def prepare_target(self, y, out_shape):
        y = np.asarray(y)
        if len(out_shape) != 1:
            raise ValueError(f"SoftmaxCrossEntropyLoss needs (N, C) logits, the model outputs (N,) + {tuple(out_shape)}")
        c = out_shape[0]
        if y.ndim == 1:
            if y.dtype.kind not in "iu":
                if y.dtype.kind == "f" and np.all(y == np.round(y)):
                    y = y.astype(np.int64)
                else:
                    raise ValueError(f"SoftmaxCrossEntropyLoss: class labels must be integers, got dtype {y.dtype}")
            if y.size and (y.min() < 0 or y.max() >= c):
                raise ValueError(f"SoftmaxCrossEntropyLoss: labels must be in [0, {c}), got range "
                                 f"[{y.min()}, {y.max()}]")
            return y.astype(np.int64)
        if y.ndim == 2 and y.shape[1] == c:
            return y.astype(np.float32)
        raise ValueError(f"SoftmaxCrossEntropyLoss: y must be class labels (N,) or probabilities (N, {c}), "
                         f"got shape {tuple(y.shape)}")

    def correct(self, pred, target):
        xp = array_module(pred)
        labels = target if target.ndim == 1 else xp.argmax(target, axis=1)
        return xp.sum(xp.argmax(pred, axis=1) == labels)


_LOSSES = {"mse": MSELoss, "bce": BCEWithLogitsLoss, "softmax_cross_entropy": SoftmaxCrossEntropyLoss,
           "cross_entropy": SoftmaxCrossEntropyLoss, "logistic": LogisticLoss, "hinge": HingeLoss}


def get_loss(loss) -> Loss:
    """A Loss instance, a Loss class, or a name ('mse', 'bce', 'cross_entropy', 'logistic', 'hinge')."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str) and loss in _LOSSES:
        return _LOSSES[loss]()
    raise ValueError(f"loss must be a Loss or one of {sorted(_LOSSES)}, got {loss!r}")
