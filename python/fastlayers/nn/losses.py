"""Losses over the loss ops. `loss(pred, target)` returns the loss (a 0-d array for "mean"/"sum",
no device sync) and caches its arguments; `loss.backward()` returns d loss / d pred (for "none":
of loss.sum(), or pass grad_out shaped like the loss).

Each loss also knows how to turn user labels into its target form (`prepare_target`, which raises a
clear ValueError for a wrong shape) and how to score predictions (`correct`, the number of correct
predictions in a batch as a device scalar, or None for regression losses; for per-position
classification, e.g. (N, C, H, W) logits for segmentation, it is the batch's pixel accuracy over
the non-ignored positions times N, so that fit's correct / samples is the mean pixel accuracy).

Options that hold arrays (class weights, pos_weight) are kept as NumPy and moved once to the
predictions' device (CuPy) on first use; get_config stores them as lists (save/load).
"""

from __future__ import annotations

import numpy as np

from .._backend import array_module, is_cupy_array
from ._ops import F

__all__ = ["Loss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "SoftMarginLoss", "HingeEmbeddingLoss",
           "BCEWithLogitsLoss", "CrossEntropyLoss", "SoftmaxCrossEntropyLoss", "NLLLoss", "LogisticLoss",
           "HingeLoss", "get_loss"]

_REDUCTIONS = ("none", "mean", "sum")


class Loss:
    def __init__(self, reduction: str = "mean"):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self._config = dict(reduction=reduction)
        self._on_device = {}

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forward(self, pred, target):
        self._args = (pred, target)
        return self._op(pred, target)

    def backward(self, grad_out=None):
        """d loss / d pred for the last forward; grad_out: the upstream gradient shaped like the loss
        (None: 1, i.e. the gradient of the loss, or of loss.sum() for reduction="none")."""
        pred, target = self._args
        if grad_out is None:
            return self._op_backward(pred, target)
        return self._op_backward(pred, target, grad_out=grad_out)

    def get_config(self) -> dict:
        return dict(self._config)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._config.items())})"

    def _array(self, name, like):
        """The array option `name` (NumPy or None) on the device of `like`, cached per device."""
        value = getattr(self, name)
        if value is None or not is_cupy_array(like):
            return value
        key = (name, int(like.device.id))
        if key not in self._on_device:
            self._on_device[key] = array_module(like).asarray(value)
        return self._on_device[key]

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


def _as_option_array(value, name):
    if value is None:
        return None
    if is_cupy_array(value):
        value = value.get()
    arr = np.asarray(value, dtype=np.float32)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be an array of numbers, got {value!r}")
    return arr


def _listed(arr):
    return None if arr is None else arr.tolist()


class MSELoss(Loss):
    def _op(self, pred, target):
        return F.mse_loss(pred, target, reduction=self.reduction)

    def _op_backward(self, pred, target, **kw):
        return F.mse_loss_backward(pred, target, reduction=self.reduction, **kw)


class L1Loss(Loss):
    """|pred - target| (torch.nn.L1Loss)."""

    def _op(self, pred, target):
        return F.l1_loss(pred, target, reduction=self.reduction)

    def _op_backward(self, pred, target, **kw):
        return F.l1_loss_backward(pred, target, reduction=self.reduction, **kw)


class SmoothL1Loss(Loss):
    """torch.nn.SmoothL1Loss(reduction, beta): quadratic below beta, linear above."""

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        if not float(beta) >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.beta = float(beta)
        self._config = dict(reduction=reduction, beta=self.beta)

    def _op(self, pred, target):
        return F.smooth_l1_loss(pred, target, reduction=self.reduction, beta=self.beta)

    def _op_backward(self, pred, target, **kw):
        return F.smooth_l1_loss_backward(pred, target, reduction=self.reduction, beta=self.beta, **kw)


class HuberLoss(Loss):
    """torch.nn.HuberLoss(reduction, delta)."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        if not float(delta) > 0:
            raise ValueError(f"delta must be > 0, got {delta!r}")
        self.delta = float(delta)
        self._config = dict(reduction=reduction, delta=self.delta)

    def _op(self, pred, target):
        return F.huber_loss(pred, target, reduction=self.reduction, delta=self.delta)

    def _op_backward(self, pred, target, **kw):
        return F.huber_loss_backward(pred, target, reduction=self.reduction, delta=self.delta, **kw)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on raw logits; targets in [0, 1]; optional weight and pos_weight
    (torch.nn.BCEWithLogitsLoss(weight, reduction, pos_weight)). A prediction counts as correct
    when (logit > 0) == (target > 0.5)."""

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        if isinstance(weight, str):  # the historical BCEWithLogitsLoss(reduction)
            weight, reduction = None, weight
        super().__init__(reduction)
        self.weight = _as_option_array(weight, "weight")
        self.pos_weight = _as_option_array(pos_weight, "pos_weight")
        self._config = dict(weight=_listed(self.weight), reduction=reduction, pos_weight=_listed(self.pos_weight))

    def _kw(self, pred):
        return dict(weight=self._array("weight", pred), reduction=self.reduction,
                    pos_weight=self._array("pos_weight", pred))

    def _op(self, pred, target):
        return F.binary_cross_entropy_with_logits(pred, target, **self._kw(pred))

    def _op_backward(self, pred, target, **kw):
        return F.binary_cross_entropy_with_logits_backward(pred, target, **self._kw(pred), **kw)

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
        return F.logistic_loss(pred, target, reduction=self.reduction)

    def _op_backward(self, pred, target, **kw):
        return F.logistic_loss_backward(pred, target, reduction=self.reduction, **kw)


class SoftMarginLoss(_SignedLoss):
    """torch.nn.SoftMarginLoss: log(1 + exp(-y·x)), the logistic loss (targets need not be ±1)."""

    def _op(self, pred, target):
        return F.soft_margin_loss(pred, target, reduction=self.reduction)

    def _op_backward(self, pred, target, **kw):
        return F.soft_margin_loss_backward(pred, target, reduction=self.reduction, **kw)


class HingeLoss(_SignedLoss):
    """max(0, margin - y·s) with labels in {-1, +1}; margin 0 is the perceptron criterion."""

    def __init__(self, margin: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = float(margin)
        self._config = dict(margin=self.margin, reduction=reduction)

    def _op(self, pred, target):
        return F.hinge_loss(pred, target, self.margin, reduction=self.reduction)

    def _op_backward(self, pred, target, **kw):
        return F.hinge_loss_backward(pred, target, self.margin, reduction=self.reduction, **kw)


class HingeEmbeddingLoss(_SignedLoss):
    """torch.nn.HingeEmbeddingLoss(margin, reduction): x for y = 1, max(0, margin - x) for y = -1
    (x is typically a distance between two embeddings)."""

    def __init__(self, margin: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = float(margin)
        self._config = dict(margin=self.margin, reduction=reduction)

    def _op(self, pred, target):
        return F.hinge_embedding_loss(pred, target, self.margin, reduction=self.reduction)

    def _op_backward(self, pred, target, **kw):
        return F.hinge_embedding_loss_backward(pred, target, self.margin, reduction=self.reduction, **kw)

    def correct(self, pred, target):
        return None  # a distance, not a classifier's score


def _with_n(shape) -> str:
    """(3, 4) -> '(N, 3, 4)', () -> '(N,)'."""
    return "(N," + "".join(f" {d}," for d in shape).rstrip(",") + ")" if shape else "(N,)"


class _ClassLoss(Loss):
    """Shared by the class-dimension losses: logits (N, C) or (N, C, d1, ..., dK) with class indices
    (N,) / (N, d1, ..., dK) (ignore_index allowed) or, for cross-entropy, probabilities of the
    logits' shape."""

    _probabilities = True

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        self.weight = _as_option_array(weight, "weight")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__} {ignore_index!r}")
        self.ignore_index = int(ignore_index)

    def prepare_target(self, y, out_shape):
        y = np.asarray(y)
        name = type(self).__name__
        want = tuple(out_shape)
        if len(want) < 1:
            raise ValueError(f"{name} needs (N, C) or (N, C, d1, ...) outputs, the model outputs (N,)")
        c, spatial = want[0], want[1:]
        if tuple(y.shape[1:]) == spatial:  # class indices
            if y.dtype.kind not in "iu":
                if y.dtype.kind == "f" and np.all(y == np.round(y)):
                    y = y.astype(np.int64)
                else:
                    raise ValueError(f"{name}: class labels must be integers, got dtype {y.dtype}")
            bad = ((y < 0) | (y >= c)) & (y != self.ignore_index)
            if bad.any():
                raise ValueError(f"{name}: labels must be in [0, {c}) or equal ignore_index "
                                 f"({self.ignore_index}), got a label {int(y[bad].reshape(-1)[0])}")
            return y.astype(np.int64)
        if self._probabilities and tuple(y.shape[1:]) == want:
            return y.astype(np.float32)
        shapes = f"class labels {_with_n(spatial)}" + (f" or probabilities {_with_n(want)}" if self._probabilities else "")
        raise ValueError(f"{name}: y must be {shapes}, got shape {tuple(y.shape)}")

    def correct(self, pred, target):
        """Classifiers (N, C): the number of samples whose top class is the target. Per-position
        outputs (N, C, d1, ...): N times the batch's accuracy over its non-ignored positions."""
        xp = array_module(pred)
        if target.dtype.kind == "f":  # probabilities: compare with their top class
            labels = xp.argmax(target, axis=1)
            valid = None
        else:
            labels = target
            valid = target != self.ignore_index
        hit = xp.argmax(pred, axis=1) == labels
        if pred.ndim == 2:
            if valid is not None:
                hit = hit & valid
            return xp.sum(hit)
        if valid is None:
            return xp.mean(hit) * pred.shape[0]
        n_valid = xp.sum(valid)
        return xp.sum(hit & valid) * pred.shape[0] / xp.maximum(n_valid, 1)


class CrossEntropyLoss(_ClassLoss):
    """torch.nn.CrossEntropyLoss(weight, ignore_index, reduction, label_smoothing): fused softmax +
    cross-entropy on logits (N, C) or (N, C, d1, ..., dK) (per-pixel classification, e.g.
    segmentation); labels are class indices (N,) / (N, d1, ..., dK) or probabilities of the logits'
    shape."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(weight, ignore_index, reduction)
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self._config = dict(weight=_listed(self.weight), ignore_index=self.ignore_index, reduction=reduction,
                            label_smoothing=self.label_smoothing)

    def _kw(self, pred):
        return dict(weight=self._array("weight", pred), ignore_index=self.ignore_index,
                    reduction=self.reduction, label_smoothing=self.label_smoothing)

    def _op(self, pred, target):
        return F.cross_entropy(pred, target, **self._kw(pred))

    def _op_backward(self, pred, target, **kw):
        return F.cross_entropy_backward(pred, target, **self._kw(pred), **kw)


class SoftmaxCrossEntropyLoss(CrossEntropyLoss):
    """CrossEntropyLoss under fastlayers' original name; SoftmaxCrossEntropyLoss(reduction) keeps
    working (the reduction first), the options as keywords."""

    def __init__(self, reduction: str = "mean", *, weight=None, ignore_index: int = -100,
                 label_smoothing: float = 0.0):
        super().__init__(weight, ignore_index, reduction, label_smoothing)


class NLLLoss(_ClassLoss):
    """torch.nn.NLLLoss(weight, ignore_index, reduction) on log-probabilities (e.g. a LogSoftmax
    layer's output)."""

    _probabilities = False

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight, ignore_index, reduction)
        self._config = dict(weight=_listed(self.weight), ignore_index=self.ignore_index, reduction=reduction)

    def _kw(self, pred):
        return dict(weight=self._array("weight", pred), ignore_index=self.ignore_index, reduction=self.reduction)

    def _op(self, pred, target):
        return F.nll_loss(pred, target, **self._kw(pred))

    def _op_backward(self, pred, target, **kw):
        return F.nll_loss_backward(pred, target, **self._kw(pred), **kw)


_LOSSES = {"mse": MSELoss, "l1": L1Loss, "smooth_l1": SmoothL1Loss, "huber": HuberLoss, "bce": BCEWithLogitsLoss,
           "softmax_cross_entropy": SoftmaxCrossEntropyLoss, "cross_entropy": CrossEntropyLoss, "nll": NLLLoss,
           "logistic": LogisticLoss, "soft_margin": SoftMarginLoss, "hinge": HingeLoss,
           "hinge_embedding": HingeEmbeddingLoss}


def get_loss(loss) -> Loss:
    """A Loss instance, a Loss class, or a name (one of _LOSSES: 'mse', 'bce', 'cross_entropy', ...)."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str) and loss in _LOSSES:
        return _LOSSES[loss]()
    raise ValueError(f"loss must be a Loss or one of {sorted(_LOSSES)}, got {loss!r}")
