"""Losses: mse_loss, binary_cross_entropy_with_logits, softmax_cross_entropy, logistic_loss,
hinge_loss, each with `<loss>_backward` (same arguments, returns d loss / d first argument).

reduction="mean" (default) divides the summed loss by the number of elements (by the batch N for
softmax_cross_entropy); "sum" does not. The loss is a 0-d float32 array on the inputs' device,
computed without a host sync; float(loss) gives the number. The sums are accumulated in double
and are bitwise reproducible for any thread count. A mean over zero elements is NaN (as NumPy and
PyTorch).
"""

from __future__ import annotations

import math

from .._backend import backend_for
from .._checks import as_float, as_float32, as_labels, check_ndim, check_reduction, check_shape

__all__ = [
    "mse_loss", "mse_loss_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "softmax_cross_entropy", "softmax_cross_entropy_backward",
    "logistic_loss", "logistic_loss_backward",
    "hinge_loss", "hinge_loss_backward",
]


def _scale(reduction: str, count: int) -> float:
    check_reduction(reduction)
    if reduction == "sum":
        return 1.0
    return 1.0 / count if count else math.nan


def _same_shape_pair(a, b, a_name: str, b_name: str):
    be = backend_for(**{a_name: a, b_name: b})
    a = as_float32(a, a_name, be)
    b = as_float32(b, b_name, be)
    check_shape(b, a.shape, b_name)
    return be, a, b


def _pm1_labels(scores, labels):
    be, scores, labels = _same_shape_pair(scores, labels, "scores", "labels")
    bad = (labels != 1) & (labels != -1)
    if labels.size and bool(bad.any()):
        value = float(labels.reshape(-1)[int(bad.reshape(-1).argmax())])
        raise ValueError(f"labels must be -1 or +1, got a label {value!r}")
    return be, scores, labels


def _elementwise_loss(kernel: str, be, a, b, reduction: str, *extra):
    scale = _scale(reduction, a.size)
    loss = be.empty(())
    be.run(kernel + "_forward", a, b, loss, a.size, *extra, scale)
    return loss


def _elementwise_grad(kernel: str, be, a, b, reduction: str, *extra):
    scale = _scale(reduction, a.size)
    grad = be.empty(a.shape)
    be.run(kernel + "_backward", a, b, grad, a.size, *extra, scale)
    return grad


# --- mean squared error ---------------------------------------------------------------------------

def mse_loss(pred, target, reduction="mean"):
    """sum((pred - target)^2), divided by pred.size for "mean". target has pred's shape."""
    be, pred, target = _same_shape_pair(pred, target, "pred", "target")
    return _elementwise_loss("mse_loss", be, pred, target, reduction)


def mse_loss_backward(pred, target, reduction="mean"):
    """2 (pred - target), divided by pred.size for "mean"."""
    be, pred, target = _same_shape_pair(pred, target, "pred", "target")
    return _elementwise_grad("mse_loss", be, pred, target, reduction)


# --- binary cross-entropy on logits ---------------------------------------------------------------

def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """Sum of max(z, 0) - z t + log1p(exp(-|z|)) over the elements (z = logits, t = target in
    [0, 1], same shape): the cross-entropy of sigmoid(z) against t, finite for any finite logit."""
    be, logits, target = _same_shape_pair(logits, target, "logits", "target")
    return _elementwise_loss("bce_with_logits", be, logits, target, reduction)


def binary_cross_entropy_with_logits_backward(logits, target, reduction="mean"):
    """sigmoid(logits) - target (stable for either sign), divided by the size for "mean"."""
    be, logits, target = _same_shape_pair(logits, target, "logits", "target")
    return _elementwise_grad("bce_with_logits", be, logits, target, reduction)


# --- softmax cross-entropy ------------------------------------------------------------------------

def _softmax_ce_args(logits, labels):
    be = backend_for(logits=logits, labels=labels)
    logits = as_float32(logits, "logits", be)
    check_ndim(logits, 2, "logits", "(N, C)")
    n, c = logits.shape
    if c == 0:
        raise ValueError(f"logits must have at least one class, got shape {tuple(logits.shape)}")
    if labels is None:
        raise TypeError("labels must be an array, got None")
    if not hasattr(labels, "dtype"):  # a list of labels
        labels = be.xp.asarray(labels)
    if labels.dtype.kind in "iu":
        return be, logits, as_labels(labels, "labels", be, batch=n, num_classes=c), False
    if labels.dtype.kind == "f":
        if labels.shape != (n, c):
            raise ValueError(
                f"labels must be integer class indices of shape ({n},) or float probabilities of "
                f"shape ({n}, {c}), got a float array of shape {tuple(labels.shape)}")
        return be, logits, as_float32(labels, "labels", be), True
    raise TypeError(f"labels must hold integer class indices or float probabilities, got dtype {labels.dtype}")


def softmax_cross_entropy(logits, labels, reduction="mean"):
    """Cross-entropy of softmax(logits) against the labels, fused (log-softmax + NLL in one pass).

    logits (N, C). labels: integer class indices (N,) in [0, C), or float probability targets
    (N, C) (the loss of row i is then -sum_j t_ij log softmax(z_i)_j). "mean" divides by N.
    The row maximum is subtracted before exp, so logits of +-1e4 give a finite loss.
    """
    be, logits, labels, probs = _softmax_ce_args(logits, labels)
    n, c = logits.shape
    loss = be.empty(())
    kernel = "softmax_cross_entropy_prob_forward" if probs else "softmax_cross_entropy_forward"
    be.run(kernel, logits, labels, loss, n, c, _scale(reduction, n))
    return loss


def softmax_cross_entropy_backward(logits, labels, reduction="mean"):
    """d loss / d logits = softmax(logits) - onehot(labels) (divided by N for "mean").

    For probability targets it is softmax(logits) * sum_j t_ij - t_i, the exact gradient, which is
    softmax(logits) - t when each row of t sums to 1."""
    be, logits, labels, probs = _softmax_ce_args(logits, labels)
    n, c = logits.shape
    scale = _scale(reduction, n)
    grad = be.empty(logits.shape)
    kernel = "softmax_cross_entropy_prob_backward" if probs else "softmax_cross_entropy_backward"
    be.run(kernel, logits, labels, grad, n, c, scale)
    return grad


# --- logistic and hinge losses on +-1 labels ------------------------------------------------------

def logistic_loss(scores, labels, reduction="mean"):
    """Sum of log(1 + exp(-y s)) (computed as a stable softplus), labels y in {-1, +1} with the
    shape of scores. Equals torch.nn.functional.soft_margin_loss. ValueError if a label is not +-1."""
    be, scores, labels = _pm1_labels(scores, labels)
    return _elementwise_loss("logistic_loss", be, scores, labels, reduction)


def logistic_loss_backward(scores, labels, reduction="mean"):
    """-y sigmoid(-y s), divided by the size for "mean"."""
    be, scores, labels = _pm1_labels(scores, labels)
    return _elementwise_grad("logistic_loss", be, scores, labels, reduction)


def _margin(margin) -> float:
    margin = as_float(margin, "margin")
    if not (0.0 <= margin < math.inf):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    return margin


def hinge_loss(scores, labels, margin=1.0, reduction="mean"):
    """Sum of max(0, margin - y s), labels y in {-1, +1} with the shape of scores.

    margin=1 is the SVM hinge loss; margin=0 is the perceptron criterion (a loss only for
    misclassified points). ValueError if a label is not +-1 or margin is negative."""
    margin = _margin(margin)
    be, scores, labels = _pm1_labels(scores, labels)
    return _elementwise_loss("hinge_loss", be, scores, labels, reduction, margin)


def hinge_loss_backward(scores, labels, margin=1.0, reduction="mean"):
    """Subgradient -y where margin - y s > 0, else 0; at the kink margin - y s == 0 it is 0 (as
    relu'(0) = 0). With margin 0 a point exactly on the boundary (y s == 0) therefore gives no
    update: a perceptron started from all-zero weights never moves, so start it from small random
    weights (or use a small positive margin). Divided by the size for "mean"."""
    margin = _margin(margin)
    be, scores, labels = _pm1_labels(scores, labels)
    return _elementwise_grad("hinge_loss", be, scores, labels, reduction, margin)
