"""NumPy reference for the losses, with torch.nn.functional's definitions and options.

Works in the dtype it is given (float32 or float64); a reduced loss is a 0-d array of that dtype.
Same names and signatures as fastlayers.ops.loss. Written to be obviously right (and stable at
large logits), not fast.

reduction: "none" (the per-element / per-sample loss, shaped as PyTorch shapes it), "sum", or
"mean" (the sum divided by the number of terms; for class-index cross-entropy and nll_loss by the
sum of the weights of the non-ignored targets, as PyTorch). A mean over nothing is NaN.
Each `<loss>_backward(input, target, ..., grad_out=None)` returns d loss / d input, scaled by
grad_out (the upstream gradient, shaped like the loss; None means ones).
"""

import numpy as np

__all__ = [
    "mse_loss", "mse_loss_backward",
    "l1_loss", "l1_loss_backward",
    "smooth_l1_loss", "smooth_l1_loss_backward",
    "huber_loss", "huber_loss_backward",
    "soft_margin_loss", "soft_margin_loss_backward",
    "hinge_embedding_loss", "hinge_embedding_loss_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "cross_entropy", "cross_entropy_backward",
    "softmax_cross_entropy", "softmax_cross_entropy_backward",
    "nll_loss", "nll_loss_backward",
    "logistic_loss", "logistic_loss_backward",
    "hinge_loss", "hinge_loss_backward",
]

REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def _float_dtype(*arrays):
    return np.result_type(*[a for a in arrays if a is not None], np.float32)


def _reduce(terms, reduction, denom=None):
    """terms reduced as asked; "mean" divides by denom (default: the number of terms)."""
    _check_reduction(reduction)
    terms = np.asarray(terms)
    if reduction == "none":
        return terms
    total = np.sum(terms, dtype=terms.dtype)
    if reduction == "mean":
        denom = terms.size if denom is None else denom
        with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 = NaN, as PyTorch
            total = total / np.asarray(denom, terms.dtype)
    return np.asarray(total, dtype=terms.dtype)


def _upstream(reduction, loss_shape, grad_out, dtype, denom):
    """The factor d loss_reduced / d term: grad_out (shaped like the loss; ones if None), divided
    by denom for "mean"."""
    _check_reduction(reduction)
    want = tuple(loss_shape) if reduction == "none" else ()
    g = np.ones(want, dtype) if grad_out is None else np.asarray(grad_out, dtype)
    if g.shape != want:
        raise ValueError(f"grad_out must have the loss's shape {want}, got {g.shape}")
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            g = g / np.asarray(denom, dtype)
    return g


def _sum_to_shape(g, shape):
    """Sum g over the axes along which an operand of `shape` was broadcast to g.shape."""
    shape = tuple(shape)
    lead = g.ndim - len(shape)
    g = np.sum(g, axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return np.sum(g, axis=axes, keepdims=True) if axes else g


def _softplus(x):
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); NaN stays NaN (through the log1p term).
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


# --- elementwise losses (input and target broadcast together, as PyTorch) -----------------------

def _pointwise(term, input, target, reduction):
    input, target = np.asarray(input), np.asarray(target)
    dtype = _float_dtype(input, target)
    x, y = np.broadcast_arrays(input.astype(dtype), target.astype(dtype))
    with np.errstate(invalid="ignore", over="ignore"):
        return _reduce(term(x, y), reduction)


def _pointwise_grad(dterm, input, target, reduction, grad_out):
    input, target = np.asarray(input), np.asarray(target)
    dtype = _float_dtype(input, target)
    x, y = np.broadcast_arrays(input.astype(dtype), target.astype(dtype))
    up = _upstream(reduction, x.shape, grad_out, dtype, x.size)
    with np.errstate(invalid="ignore", over="ignore"):
        g = dterm(x, y) * up
    return _sum_to_shape(np.asarray(g, dtype), input.shape).astype(dtype, copy=False)


def mse_loss(input, target, reduction="mean"):
    return _pointwise(lambda x, y: (x - y) ** 2, input, target, reduction)


def mse_loss_backward(input, target, reduction="mean", *, grad_out=None):
    return _pointwise_grad(lambda x, y: 2 * (x - y), input, target, reduction, grad_out)


def l1_loss(input, target, reduction="mean"):
    return _pointwise(lambda x, y: np.abs(x - y), input, target, reduction)


def l1_loss_backward(input, target, reduction="mean", *, grad_out=None):
    """sign(input - target): 0 where they are equal, NaN where either is NaN."""
    return _pointwise_grad(lambda x, y: np.sign(x - y), input, target, reduction, grad_out)


def _check_beta(beta):
    if not beta >= 0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target); beta 0 is l1."""
    _check_beta(beta)
    if beta == 0:
        return l1_loss(input, target, reduction)

    def term(x, y):
        z = np.abs(x - y)
        return np.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta)
    return _pointwise(term, input, target, reduction)


def smooth_l1_loss_backward(input, target, reduction="mean", beta=1.0, *, grad_out=None):
    _check_beta(beta)
    if beta == 0:
        return l1_loss_backward(input, target, reduction, grad_out=grad_out)

    def dterm(x, y):
        d = x - y
        return np.where(np.abs(d) < beta, d / beta, np.sign(d))
    return _pointwise_grad(dterm, input, target, reduction, grad_out)


def _check_delta(delta):
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta!r}")


def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    _check_delta(delta)

    def term(x, y):
        z = np.abs(x - y)
        return np.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta))
    return _pointwise(term, input, target, reduction)


def huber_loss_backward(input, target, reduction="mean", delta=1.0, *, grad_out=None):
    _check_delta(delta)

    def dterm(x, y):
        d = x - y
        return np.where(np.abs(d) < delta, d, delta * np.sign(d))
    return _pointwise_grad(dterm, input, target, reduction, grad_out)


def soft_margin_loss(input, target, reduction="mean"):
    """log(1 + exp(-y x)), computed as a stable softplus (finite for any finite product)."""
    return _pointwise(lambda x, y: _softplus(-y * x), input, target, reduction)


def soft_margin_loss_backward(input, target, reduction="mean", *, grad_out=None):
    return _pointwise_grad(lambda x, y: -y * _sigmoid(-y * x), input, target, reduction, grad_out)


def hinge_embedding_loss(input, target, margin=1.0, reduction="mean"):
    """PyTorch's definition for any target value: max(0, margin - x) where y != 1, plus x where
    y != -1 (so x for y = 1, max(0, margin - x) for y = -1)."""
    def term(x, y):
        clamp = np.maximum(margin - x, 0)  # NaN stays NaN
        return np.where(y != 1, clamp, 0) + np.where(y != -1, x, 0)
    return _pointwise(term, input, target, reduction)


def hinge_embedding_loss_backward(input, target, margin=1.0, reduction="mean", *, grad_out=None):
    """-1 where y != 1 and margin - x >= 0 (PyTorch's clamp_min passes the gradient at the kink),
    plus 1 where y != -1."""
    def dterm(x, y):
        return np.where((y != 1) & (margin - x >= 0), -1.0, 0.0) + np.where(y != -1, 1.0, 0.0)
    return _pointwise_grad(dterm, input, target, reduction, grad_out)


# --- binary cross-entropy on logits ---------------------------------------------------------------

def _bce_args(input, target, weight, pos_weight):
    input, target = np.asarray(input), np.asarray(target)
    if target.shape != input.shape:
        raise ValueError(f"target must have the shape of input {input.shape}, got {target.shape}")
    dtype = _float_dtype(input, target, weight, pos_weight)
    w = None if weight is None else np.broadcast_to(np.asarray(weight, dtype), input.shape)
    pw = None if pos_weight is None else np.broadcast_to(np.asarray(pos_weight, dtype), input.shape)
    return input.astype(dtype), target.astype(dtype), w, pw, dtype


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """(1 - t) x + (1 + (pos_weight - 1) t) softplus(-x), times weight (PyTorch's formula; without
    pos_weight it is softplus(x) - t x). weight and pos_weight broadcast to input's shape.
    A string third argument is the historical positional reduction."""
    if isinstance(weight, str):
        weight, reduction = None, weight
    _check_reduction(reduction)
    x, t, w, pw, _ = _bce_args(input, target, weight, pos_weight)
    lw = 1 if pw is None else 1 + (pw - 1) * t
    loss = (1 - t) * x + lw * _softplus(-x)
    if w is not None:
        loss = loss * w
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits_backward(input, target, weight=None, reduction="mean",
                                              pos_weight=None, *, grad_out=None):
    """(1 - t) - lw sigmoid(-x), times weight; = sigmoid(x) - t without pos_weight."""
    if isinstance(weight, str):
        weight, reduction = None, weight
    x, t, w, pw, dtype = _bce_args(input, target, weight, pos_weight)
    if pw is None:
        g = _sigmoid(x) - t
    else:
        g = (1 - t) - (1 + (pw - 1) * t) * _sigmoid(-x)
    if w is not None:
        g = g * w
    return (g * _upstream(reduction, x.shape, grad_out, dtype, x.size)).astype(dtype, copy=False)


# --- cross-entropy and nll_loss -------------------------------------------------------------------

def _rows(input):
    """input (C,) or (N, C, d1, ..., dK) -> (R, C) rows (R = N * d1 * ... * dK; 1 for (C,))."""
    if input.ndim == 0:
        raise ValueError("input must have a class dimension, got a 0-D array")
    if input.ndim == 1:
        return input.reshape(1, -1)
    return np.moveaxis(input, 1, -1).reshape(-1, input.shape[1])


def _unrows(rows, shape):
    """Inverse of _rows: (R, C) -> input's layout."""
    if len(shape) == 1:
        return rows.reshape(shape)
    moved = rows.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return np.moveaxis(moved, -1, 1)


def _loss_shape(input_shape):
    """The shape of an unreduced per-sample loss: input's without the class dimension."""
    return () if len(input_shape) == 1 else (input_shape[0],) + tuple(input_shape[2:])


def _class_targets(input, target, weight, ignore_index):
    """(labels (R,), ignored mask (R,), per-class weight (C,)) with the checks PyTorch makes."""
    c = input.shape[0] if input.ndim == 1 else input.shape[1]
    target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if target.shape != _loss_shape(input.shape):
        raise ValueError(f"target must have shape {_loss_shape(input.shape)} for input {input.shape}, "
                         f"got {target.shape}")
    labels = target.reshape(-1).astype(np.int64)
    ignored = labels == ignore_index
    bad = ~ignored & ((labels < 0) | (labels >= c))
    if bad.any():
        raise ValueError(f"target must lie in [0, {c}) or equal ignore_index, got a label {labels[bad][0]}")
    w = np.ones(c, input.dtype) if weight is None else np.asarray(weight, input.dtype)
    if w.shape != (c,):
        raise ValueError(f"weight must have shape ({c},), got {w.shape}")
    return labels, ignored, w


def _log_softmax_rows(z):
    m = np.max(z, axis=1, keepdims=True)
    return z - (m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True)))


def _is_prob_target(input, target):
    return np.shape(target) == input.shape


def _check_smoothing(label_smoothing):
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")


def _ce_parts(input, target, weight, ignore_index, label_smoothing):
    input = np.asarray(input)
    _check_smoothing(label_smoothing)
    z = _rows(input)
    logp = _log_softmax_rows(z)
    c = z.shape[1]
    if _is_prob_target(input, target):
        target = np.asarray(target)
        if target.dtype.kind != "f":
            raise TypeError(f"target with the shape of input holds class probabilities and must be a "
                            f"float array, got dtype {target.dtype}")
        if ignore_index >= 0:
            raise ValueError(f"ignore_index is not supported with probability targets, got {ignore_index}")
        t = _rows(target.astype(input.dtype))
        if label_smoothing > 0:
            t = t * (1 - label_smoothing) + label_smoothing / c
        w = np.ones(c, input.dtype) if weight is None else np.asarray(weight, input.dtype)
        if w.shape != (c,):
            raise ValueError(f"weight must have shape ({c},), got {w.shape}")
        return dict(prob=True, z=z, logp=logp, t=t, w=w, denom=z.shape[0])
    labels, ignored, w = _class_targets(input, target, weight, ignore_index)
    safe = np.where(ignored, 0, labels)
    wy = np.where(ignored, 0, w[safe])
    return dict(prob=False, z=z, logp=logp, labels=safe, ignored=ignored, w=w, wy=wy, denom=np.sum(wy))


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """torch.nn.functional.cross_entropy: input (C,) or (N, C, d1, ..., dK) logits; target class
    indices (input's shape without C) or class probabilities (input's shape)."""
    input = np.asarray(input)
    p = _ce_parts(input, target, weight, ignore_index, label_smoothing)
    logp, w, c = p["logp"], p["w"], p["z"].shape[1]
    if p["prob"]:
        rows = -np.sum(p["t"] * w * logp, axis=1)
    else:
        rows = -p["wy"] * logp[np.arange(len(logp)), p["labels"]]
        if label_smoothing > 0:
            smooth = np.where(p["ignored"], 0, -np.sum(logp * w, axis=1))
            rows = (1 - label_smoothing) * rows + (label_smoothing / c) * smooth
    return _reduce(rows.reshape(_loss_shape(input.shape)), reduction, p["denom"])


def cross_entropy_backward(input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0, *, grad_out=None):
    input = np.asarray(input)
    p = _ce_parts(input, target, weight, ignore_index, label_smoothing)
    logp, w, c = p["logp"], p["w"], p["z"].shape[1]
    prob = np.exp(logp)
    if p["prob"]:
        wt = p["t"] * w
        g = prob * np.sum(wt, axis=1, keepdims=True) - wt
    else:
        onehot = np.zeros_like(prob)
        onehot[np.arange(len(prob)), p["labels"]] = 1
        wy = p["wy"][:, None]
        g = wy * (prob - onehot)
        if label_smoothing > 0:
            smooth = prob * np.sum(w) - w  # d/dz of -sum_c w_c log p_c
            smooth = np.where(p["ignored"][:, None], 0, smooth)
            g = (1 - label_smoothing) * g + (label_smoothing / c) * smooth
    up = _upstream(reduction, _loss_shape(input.shape), grad_out, input.dtype, p["denom"])
    with np.errstate(invalid="ignore"):
        g = g * np.reshape(up, (-1, 1))
    if not p["prob"]:  # an ignored target's row is exactly 0, even when the mean divides by 0
        g = np.where(p["ignored"][:, None], 0, g)
    return _unrows(g, input.shape).astype(input.dtype, copy=False)


def softmax_cross_entropy(logits, labels, reduction="mean", *, weight=None, ignore_index=-100,
                          label_smoothing=0.0):
    """cross_entropy with fastlayers' historical argument order (reduction third)."""
    return cross_entropy(logits, labels, weight, ignore_index, reduction, label_smoothing)


def softmax_cross_entropy_backward(logits, labels, reduction="mean", *, weight=None, ignore_index=-100,
                                   label_smoothing=0.0, grad_out=None):
    return cross_entropy_backward(logits, labels, weight, ignore_index, reduction, label_smoothing,
                                  grad_out=grad_out)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """-weight[y] * input[y] per sample (input holds log-probabilities); "mean" divides by the sum
    of the weights of the non-ignored targets."""
    input = np.asarray(input)
    z = _rows(input)
    labels, ignored, w = _class_targets(input, target, weight, ignore_index)
    safe = np.where(ignored, 0, labels)
    wy = np.where(ignored, 0, w[safe])
    rows = np.where(ignored, 0, -wy * z[np.arange(len(z)), safe])
    return _reduce(rows.reshape(_loss_shape(input.shape)).astype(input.dtype), reduction, np.sum(wy))


def nll_loss_backward(input, target, weight=None, ignore_index=-100, reduction="mean", *, grad_out=None):
    input = np.asarray(input)
    z = _rows(input)
    labels, ignored, w = _class_targets(input, target, weight, ignore_index)
    safe = np.where(ignored, 0, labels)
    wy = np.where(ignored, 0, w[safe])
    up = _upstream(reduction, _loss_shape(input.shape), grad_out, input.dtype, np.sum(wy))
    g = np.zeros_like(z)
    with np.errstate(invalid="ignore"):
        g[np.arange(len(z)), safe] = np.where(ignored, 0, -wy * np.reshape(up, -1))
    return _unrows(g, input.shape).astype(input.dtype, copy=False)


# --- logistic and hinge losses on +-1 labels (same shapes) ----------------------------------------

def _check_pm1(scores, labels):
    labels = np.asarray(labels)
    if np.shape(scores) != labels.shape:
        raise ValueError(f"labels must have the shape of scores {np.shape(scores)}, got {labels.shape}")
    if not np.all((labels == 1) | (labels == -1)):
        raise ValueError("labels must be -1 or +1")


def logistic_loss(scores, labels, reduction="mean"):
    """log(1 + exp(-y s)), labels y in {-1, +1} (soft_margin_loss restricted to +-1 labels)."""
    _check_pm1(scores, labels)
    return soft_margin_loss(scores, labels, reduction)


def logistic_loss_backward(scores, labels, reduction="mean", *, grad_out=None):
    _check_pm1(scores, labels)
    return soft_margin_loss_backward(scores, labels, reduction, grad_out=grad_out)


def hinge_loss(scores, labels, margin=1.0, reduction="mean"):
    _check_pm1(scores, labels)

    def term(s, y):
        m = margin - y * s
        return np.where(np.isnan(m), m, np.maximum(m, 0))
    return _pointwise(term, scores, labels, reduction)


def hinge_loss_backward(scores, labels, margin=1.0, reduction="mean", *, grad_out=None):
    """Subgradient 0 at the kink margin - y s == 0; NaN scores give NaN."""
    _check_pm1(scores, labels)

    def dterm(s, y):
        m = margin - y * s
        return np.where(np.isnan(m), m, np.where(m > 0, -y, 0))
    return _pointwise_grad(dterm, scores, labels, reduction, grad_out)
