"""NumPy reference for the losses. Works in the dtype it is given (float32 or float64); the loss
is a 0-d array of that dtype. Same names and signatures as fastlayers.ops.loss. Written to be
obviously right (and stable at large logits), not fast."""

import numpy as np

__all__ = [
    "mse_loss", "mse_loss_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "softmax_cross_entropy", "softmax_cross_entropy_backward",
    "logistic_loss", "logistic_loss_backward",
    "hinge_loss", "hinge_loss_backward",
]


def _reduce(terms, reduction, count):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    total = np.sum(terms)
    if reduction == "mean":
        total = total / count if count else np.array(np.nan, terms.dtype)
    return np.asarray(total, dtype=terms.dtype)


def _grad_scale(reduction, count):
    return 1.0 / count if reduction == "mean" else 1.0


def _float_dtype(*arrays):
    return np.result_type(*arrays, np.float32)


def _softplus(x):
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); NaN stays NaN (through the log1p term).
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _check_pm1(labels):
    labels = np.asarray(labels)
    if not np.all((labels == 1) | (labels == -1)):
        raise ValueError("labels must be -1 or +1")


def mse_loss(pred, target, reduction="mean"):
    d = pred - target
    return _reduce(d * d, reduction, d.size)


def mse_loss_backward(pred, target, reduction="mean"):
    return (2 * (pred - target) * _grad_scale(reduction, pred.size)).astype(_float_dtype(pred, target))


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    return _reduce(_softplus(logits) - logits * target, reduction, logits.size)


def binary_cross_entropy_with_logits_backward(logits, target, reduction="mean"):
    g = (_sigmoid(logits) - target) * _grad_scale(reduction, logits.size)
    return g.astype(_float_dtype(logits, target))


def _log_softmax(z):
    m = np.max(z, axis=1, keepdims=True)
    return z - (m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True)))


def _targets(labels, shape, dtype):
    """(N, C) target matrix: one-hot for integer labels, the probabilities as given otherwise."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        t = np.zeros(shape, dtype)
        t[np.arange(shape[0]), labels] = 1
        return t
    return labels.astype(dtype, copy=False)


def softmax_cross_entropy(logits, labels, reduction="mean"):
    t = _targets(labels, logits.shape, logits.dtype)
    # -t * log_softmax with 0 * (-inf) treated as 0 is not needed: log_softmax is finite for finite z.
    return _reduce(-np.sum(t * _log_softmax(logits), axis=1), reduction, logits.shape[0])


def softmax_cross_entropy_backward(logits, labels, reduction="mean"):
    t = _targets(labels, logits.shape, logits.dtype)
    p = np.exp(_log_softmax(logits))
    g = p * np.sum(t, axis=1, keepdims=True) - t  # = p - t when the rows of t sum to 1
    return (g * _grad_scale(reduction, logits.shape[0])).astype(logits.dtype)


def logistic_loss(scores, labels, reduction="mean"):
    _check_pm1(labels)
    return _reduce(_softplus(-labels * scores), reduction, scores.size)


def logistic_loss_backward(scores, labels, reduction="mean"):
    _check_pm1(labels)
    g = -labels * _sigmoid(-labels * scores) * _grad_scale(reduction, scores.size)
    return g.astype(_float_dtype(scores, labels))


def hinge_loss(scores, labels, margin=1.0, reduction="mean"):
    _check_pm1(labels)
    m = margin - labels * scores
    return _reduce(np.where(np.isnan(m), m, np.maximum(m, 0)), reduction, scores.size)


def hinge_loss_backward(scores, labels, margin=1.0, reduction="mean"):
    """Subgradient 0 at the kink margin - y s == 0; NaN scores give NaN."""
    _check_pm1(labels)
    m = margin - labels * scores
    g = np.where(m > 0, -labels, 0) * _grad_scale(reduction, scores.size)
    return np.where(np.isnan(m), m, g).astype(_float_dtype(scores, labels))
