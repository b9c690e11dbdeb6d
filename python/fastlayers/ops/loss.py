"""Losses with torch.nn.functional's names, definitions and options, each with `<loss>_backward`.

reduction: "mean" (default), "sum" or "none". A reduced loss is a 0-d float32 array on the inputs'
device, computed without a host sync (float(loss) gives the number); "none" gives the per-element
loss (per-sample for cross-entropy / nll_loss, shaped as PyTorch shapes it). "mean" divides by the
number of terms, or for class-index cross-entropy / nll_loss by the summed weight of the
non-ignored targets (PyTorch's rule); a mean over nothing is NaN. Sums are accumulated in double
and are bitwise reproducible for any thread count.

`<loss>_backward(input, target, <the forward's options>, grad_out=None)` returns d loss / d input
times grad_out, the upstream gradient shaped like the loss (a 0-d array for "mean"/"sum"; None
means 1, i.e. the gradient of the loss itself, or of loss.sum() for "none").

Labels: on NumPy arrays the class indices (and the +-1 labels of logistic/hinge) are checked here
and a bad one raises at once. On CuPy arrays they are checked by the CUDA kernels as they read them
(no host copy per call): a bad label makes its sample's loss and gradient NaN and is reported by
`fastlayers.cuda.check_errors()`, which fit/evaluate call once per epoch (see _device_errors.py).
"""

from __future__ import annotations

import math

import numpy as np

from .. import _device_errors
from .._backend import CPU, backend_for
from .._checks import aligned, as_float, as_float32, as_int

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

# loss::Reduction in csrc/common/loss_terms.h
_REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}
_NONE = 0


_ND = np.ndarray
_I64 = np.dtype(np.int64)


def _backend(names, a, b, **others):
    """The backend of a (named names[0]), b (names[1]) and the optional others; two NumPy arrays
    and no others is the CPU without further checks (the batch-1 fast path)."""
    if type(a) is _ND and type(b) is _ND and all(v is None for v in others.values()):
        return CPU
    return backend_for(**{names[0]: a, names[1]: b}, **others)


def _reduction(reduction) -> int:
    code = _REDUCTIONS.get(reduction) if type(reduction) is str else None
    if code is None:
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return code


def _aux(be):
    """(workspace, status) for a loss kernel: 0, 0 on the CPU; on the GPU a scratch for the
    reduction's partial sums from CuPy's pool and the device's label-status word."""
    if be.name == "cpu":
        return 0, 0
    return be.empty((be._module.loss_workspace_doubles,), np.float64), _device_errors.status_word()


def _status(be):
    return 0 if be.name == "cpu" else _device_errors.status_word()


def _out(be, red: int, loss_shape):
    return be.empty(tuple(loss_shape) if red == _NONE else ())


def _grad_out(be, grad_out, red: int, loss_shape):
    """grad_out as a float32 array shaped like the loss (0-d for a reduced loss), or 0 (= ones)."""
    if grad_out is None:
        return 0
    g = as_float32(grad_out, "grad_out", be)
    want = tuple(loss_shape) if red == _NONE else ()
    if tuple(g.shape) != want:
        what = "the per-element loss" if red == _NONE else "a reduced loss (0-d)"
        raise ValueError(f"grad_out must have the shape of {what} {want}, got {tuple(g.shape)}")
    return g


def _broadcast_shape(a_shape, b_shape, a_name, b_name):
    try:
        return tuple(np.broadcast_shapes(tuple(a_shape), tuple(b_shape)))
    except ValueError:
        raise ValueError(f"{b_name} must have shape {tuple(a_shape)} (or one that broadcasts with "
                         f"{a_name}'s), got {tuple(b_shape)}") from None


def _expand(be, x, shape):
    return x if tuple(x.shape) == shape else be.xp.broadcast_to(x, shape).copy()


# --- elementwise losses ---------------------------------------------------------------------------

def _pair(input, target, grad_out=None, names=("input", "target"), broadcast=True):
    """(backend, a, b, input's own shape) with a, b float32 of the broadcast shape."""
    be = _backend(names, input, target, grad_out=grad_out)
    a = as_float32(input, names[0], be)
    b = as_float32(target, names[1], be)
    shape = a.shape
    if b.shape != shape:
        if not broadcast:
            raise ValueError(f"{names[1]} must have shape {tuple(shape)}, got {tuple(b.shape)}")
        full = _broadcast_shape(shape, b.shape, names[0], names[1])
        a, b = _expand(be, a, full), _expand(be, b, full)
    return be, a, b, tuple(shape)


def _forward(kernel, input, target, reduction, param=0.0, **kw):
    red = _reduction(reduction)
    be, a, b, _ = _pair(input, target, **kw)
    out = _out(be, red, a.shape)
    ws, st = _aux(be)
    be.run(kernel + "_forward", a, b, out, a.size, param, red, ws, st)
    return out


def _backward(kernel, input, target, reduction, grad_out, param=0.0, **kw):
    red = _reduction(reduction)
    be, a, b, in_shape = _pair(input, target, grad_out, **kw)
    g = _grad_out(be, grad_out, red, a.shape)
    grad = be.empty(a.shape)
    st = _status(be)
    be.run(kernel + "_backward", a, b, g, grad, a.size, param, red, st)
    if tuple(a.shape) != in_shape:  # input was broadcast: sum the gradient back to its shape
        from .elementwise import sum_to_shape

        grad = sum_to_shape(grad, in_shape)
    return grad


def mse_loss(input, target, reduction="mean"):
    """(input - target)^2 per element; input and target broadcast together, as PyTorch."""
    return _forward("mse_loss", input, target, reduction)


def mse_loss_backward(input, target, reduction="mean", *, grad_out=None):
    """2 (input - target), divided by the number of elements for "mean"."""
    return _backward("mse_loss", input, target, reduction, grad_out)


def l1_loss(input, target, reduction="mean"):
    """|input - target| per element."""
    return _forward("l1_loss", input, target, reduction)


def l1_loss_backward(input, target, reduction="mean", *, grad_out=None):
    """sign(input - target): 0 where they are equal (as PyTorch), NaN where either is NaN."""
    return _backward("l1_loss", input, target, reduction, grad_out)


def _beta(beta) -> float:
    beta = as_float(beta, "beta")
    if not beta >= 0.0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")
    return beta


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target); beta=0 is l1_loss."""
    beta = _beta(beta)
    if beta == 0.0:
        return _forward("l1_loss", input, target, reduction)
    return _forward("smooth_l1_loss", input, target, reduction, beta)


def smooth_l1_loss_backward(input, target, reduction="mean", beta=1.0, *, grad_out=None):
    """d / beta where |d| < beta, else sign(d)."""
    beta = _beta(beta)
    if beta == 0.0:
        return _backward("l1_loss", input, target, reduction, grad_out)
    return _backward("smooth_l1_loss", input, target, reduction, grad_out, beta)


def _delta(delta) -> float:
    delta = as_float(delta, "delta")
    if not delta > 0.0:
        raise ValueError(f"delta must be > 0, got {delta!r}")
    return delta


def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    return _forward("huber_loss", input, target, reduction, _delta(delta))


def huber_loss_backward(input, target, reduction="mean", delta=1.0, *, grad_out=None):
    """d where |d| < delta, else delta sign(d)."""
    return _backward("huber_loss", input, target, reduction, grad_out, _delta(delta))


def soft_margin_loss(input, target, reduction="mean"):
    """log(1 + exp(-target * input)), computed as a stable softplus (finite for any finite
    product; PyTorch's float32 overflows to inf beyond about 88)."""
    return _forward("soft_margin_loss", input, target, reduction)


def soft_margin_loss_backward(input, target, reduction="mean", *, grad_out=None):
    """-target * sigmoid(-target * input)."""
    return _backward("soft_margin_loss", input, target, reduction, grad_out)


def _any_margin(margin) -> float:
    margin = as_float(margin, "margin")
    if not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number, got {margin!r}")
    return margin


def hinge_embedding_loss(input, target, margin=1.0, reduction="mean"):
    """PyTorch's definition for any target value: max(0, margin - x) where y != 1, plus x where
    y != -1 (x for y = 1 and max(0, margin - x) for y = -1, the documented case)."""
    return _forward("hinge_embedding_loss", input, target, reduction, _any_margin(margin))


def hinge_embedding_loss_backward(input, target, margin=1.0, reduction="mean", *, grad_out=None):
    """-1 where y != 1 and margin - x >= 0 (PyTorch passes the gradient at the kink), plus 1
    where y != -1."""
    return _backward("hinge_embedding_loss", input, target, reduction, grad_out, _any_margin(margin))


# --- binary cross-entropy on logits ---------------------------------------------------------------

def _bce_args(input, target, weight, pos_weight, reduction, grad_out=None):
    if isinstance(weight, str):  # the historical positional form (logits, target, reduction)
        weight, reduction = None, weight
    red = _reduction(reduction)
    be = _backend(("input", "target"), input, target, weight=weight, pos_weight=pos_weight, grad_out=grad_out)
    x = as_float32(input, "input", be)
    t = as_float32(target, "target", be)
    if t.shape != x.shape:
        raise ValueError(f"target must have shape {tuple(x.shape)} (the shape of input), got {tuple(t.shape)}")
    extra = []
    for name, v in (("weight", weight), ("pos_weight", pos_weight)):
        if v is None:
            extra.append(0)
            continue
        v = as_float32(v, name, be)
        try:
            full = np.broadcast_shapes(tuple(v.shape), tuple(x.shape))
        except ValueError:
            full = None
        if full != tuple(x.shape):
            raise ValueError(f"{name} must broadcast to the shape of input {tuple(x.shape)}, got {tuple(v.shape)}")
        extra.append(_expand(be, v, tuple(x.shape)))
    return be, x, t, extra[0], extra[1], red


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """(1 - t) x + (1 + (pos_weight - 1) t) softplus(-x), times weight (PyTorch's formula; without
    the weights softplus(x) - t x): the cross-entropy of sigmoid(x) against t, finite for any
    finite logit. target has input's shape; weight and pos_weight broadcast to it (pos_weight is
    typically per class, over the last dimension). "mean" divides by the number of elements."""
    be, x, t, w, pw, red = _bce_args(input, target, weight, pos_weight, reduction)
    out = _out(be, red, x.shape)
    ws, _ = _aux(be)
    be.run("bce_with_logits_forward", x, t, w, pw, out, x.size, red, ws)
    return out


def binary_cross_entropy_with_logits_backward(input, target, weight=None, reduction="mean",
                                              pos_weight=None, *, grad_out=None):
    """(1 - t) - lw sigmoid(-x), times weight (sigmoid(x) - t without weights)."""
    be, x, t, w, pw, red = _bce_args(input, target, weight, pos_weight, reduction, grad_out)
    g = _grad_out(be, grad_out, red, x.shape)
    grad = be.empty(x.shape)
    be.run("bce_with_logits_backward", x, t, w, pw, g, grad, x.size, red)
    return grad


# --- cross-entropy and nll_loss over a class dimension --------------------------------------------

def _class_layout(x, name):
    """(n, c, d, loss_shape) of input (C,) or (N, C, d1, ..., dK)."""
    if x.ndim == 2:  # the common (N, C)
        n, c = x.shape
        if c:
            return n, c, 1, (n,)
    if x.ndim == 0:
        raise ValueError(f"{name} must have a class dimension: (C,) or (N, C, d1, ..., dK), got a 0-D array")
    if x.ndim == 1:
        n, c, d, loss_shape = 1, x.shape[0], 1, ()
    else:
        n, c = x.shape[0], x.shape[1]
        d = math.prod(x.shape[2:])
        loss_shape = (n,) + tuple(x.shape[2:])
    if c == 0:
        raise ValueError(f"{name} must have at least one class, got shape {tuple(x.shape)}")
    return n, c, d, loss_shape


def _class_labels(be, labels, name, loss_shape, c, ignore_index):
    """Class indices as contiguous int64 of loss_shape; range-checked here on the CPU only."""
    if labels.shape != loss_shape:
        raise ValueError(f"{name} must have shape {loss_shape} (the input's shape without the class "
                         f"dimension), got {tuple(labels.shape)}")
    if be.name == "cpu" and labels.size:
        # in the caller's dtype: a uint64 2**64-1 must not show as -1 after the int64 cast
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= c:  # the rare path: ignore_index may explain it
            bad = ((labels < 0) | (labels >= c)) & (labels != ignore_index)
            if bad.any():
                raise ValueError(f"{name} must lie in [0, {c}) or equal ignore_index ({ignore_index}), "
                                 f"got a label {int(labels[bad].reshape(-1)[0])}")
    if labels.dtype is not _I64 or not labels.flags.c_contiguous:
        labels = be.xp.asarray(labels, dtype=np.int64, order="C")
    return aligned(labels)  # an int64 view at an odd byte offset is copied (the kernels' loads assume alignment)


def _class_weight(be, weight, c):
    if weight is None:
        return 0
    w = as_float32(weight, "weight", be)
    if tuple(w.shape) != (c,):
        raise ValueError(f"weight must have shape ({c},) (one weight per class), got {tuple(w.shape)}")
    return w


def _ce_args(input, target, weight, ignore_index, label_smoothing, reduction, grad_out, names):
    in_name, t_name = names
    red = _reduction(reduction)
    ignore_index = as_int(ignore_index, "ignore_index")
    eps = as_float(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if target is None:
        raise TypeError(f"{t_name} must be an array, got None")
    be = _backend(names, input, target, weight=weight, grad_out=grad_out)
    x = as_float32(input, in_name, be)
    n, c, d, loss_shape = _class_layout(x, in_name)
    if not hasattr(target, "dtype"):  # a list of labels
        target = be.xp.asarray(target)
    kind = target.dtype.kind
    if tuple(target.shape) == tuple(x.shape) and x.ndim:  # PyTorch's rule: same shape = probabilities
        if kind != "f":
            raise TypeError(f"{t_name} with the shape of {in_name} {tuple(x.shape)} holds class probabilities "
                            f"and must be a float array, got dtype {target.dtype}")
        if ignore_index >= 0:
            raise ValueError(f"ignore_index is not supported with probability targets, got ignore_index="
                             f"{ignore_index}")
        t, probs = as_float32(target, t_name, be), True
    elif kind in "iu":
        t, probs = _class_labels(be, target, t_name, loss_shape, c, ignore_index), False
    elif kind == "f":
        raise ValueError(f"{t_name} must be integer class indices of shape {loss_shape} or float "
                         f"probabilities of shape {tuple(x.shape)}, got a float array of shape "
                         f"{tuple(target.shape)}")
    else:
        raise TypeError(f"{t_name} must hold integer class indices or float probabilities, got dtype "
                        f"{target.dtype}")
    w = _class_weight(be, weight, c)
    return be, x, t, probs, w, n, c, d, loss_shape, ignore_index, eps, red


def _ce_forward(input, target, weight, ignore_index, reduction, label_smoothing, names):
    be, x, t, probs, w, n, c, d, loss_shape, ignore, eps, red = _ce_args(
        input, target, weight, ignore_index, label_smoothing, reduction, None, names)
    out = _out(be, red, loss_shape)
    ws, st = _aux(be)
    if probs:
        be.run("softmax_cross_entropy_prob_forward", x, t, w, out, n, c, d, eps, red, ws)
    else:
        be.run("softmax_cross_entropy_forward", x, t, w, out, n, c, d, ignore, eps, red, ws, st)
    return out


def _ce_backward(input, target, weight, ignore_index, reduction, label_smoothing, grad_out, names):
    be, x, t, probs, w, n, c, d, loss_shape, ignore, eps, red = _ce_args(
        input, target, weight, ignore_index, label_smoothing, reduction, grad_out, names)
    g = _grad_out(be, grad_out, red, loss_shape)
    grad = be.empty(x.shape)
    if probs:
        be.run("softmax_cross_entropy_prob_backward", x, t, w, g, grad, n, c, d, eps, red)
    else:
        ws, st = _aux(be)
        be.run("softmax_cross_entropy_backward", x, t, w, g, grad, n, c, d, ignore, eps, red, ws, st)
    return grad


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """torch.nn.functional.cross_entropy: log-softmax over the class dimension and the negative
    log-likelihood, fused and stable at logits of +-1e4.

    input: (C,) or (N, C) or (N, C, d1, ..., dK) logits (K-D: per-position classification, e.g.
    segmentation). target: class indices of input's shape without C ((), (N,), (N, d1, ..., dK)),
    or class probabilities of input's shape. weight (C,): per-class weights. A target equal to
    ignore_index contributes nothing. label_smoothing in [0, 1] mixes the target with the uniform
    distribution, as PyTorch. "mean" divides by the summed weight of the non-ignored targets
    (probability targets: by the number of samples N * d1 * ... * dK); all-ignored gives NaN.
    """
    return _ce_forward(input, target, weight, ignore_index, reduction, label_smoothing, ("input", "target"))


def cross_entropy_backward(input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0, *, grad_out=None):
    """d loss / d input: w_y (softmax - onehot) per sample (with smoothing and probability targets
    PyTorch's exact gradient); an ignored target's row is 0."""
    return _ce_backward(input, target, weight, ignore_index, reduction, label_smoothing, grad_out,
                        ("input", "target"))


def softmax_cross_entropy(logits, labels, reduction="mean", *, weight=None, ignore_index=-100,
                          label_smoothing=0.0):
    """cross_entropy under fastlayers' original name and argument order (reduction third).

    logits (N, C) (or any layout cross_entropy takes); labels: integer class indices (N,), or
    float probabilities (N, C) (the loss of row i is then -sum_j t_ij log softmax(z_i)_j)."""
    return _ce_forward(logits, labels, weight, ignore_index, reduction, label_smoothing, ("logits", "labels"))


def softmax_cross_entropy_backward(logits, labels, reduction="mean", *, weight=None, ignore_index=-100,
                                   label_smoothing=0.0, grad_out=None):
    """d loss / d logits = softmax(logits) - onehot(labels) (divided by N for "mean").

    For probability targets it is softmax(logits) * sum_j t_ij - t_i, the exact gradient, which is
    softmax(logits) - t when each row of t sums to 1."""
    return _ce_backward(logits, labels, weight, ignore_index, reduction, label_smoothing, grad_out,
                        ("logits", "labels"))


def _nll_args(input, target, weight, ignore_index, reduction, grad_out):
    red = _reduction(reduction)
    ignore_index = as_int(ignore_index, "ignore_index")
    if target is None:
        raise TypeError("target must be an array, got None")
    be = _backend(("input", "target"), input, target, weight=weight, grad_out=grad_out)
    x = as_float32(input, "input", be)
    n, c, d, loss_shape = _class_layout(x, "input")
    if not hasattr(target, "dtype"):
        target = be.xp.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    t = _class_labels(be, target, "target", loss_shape, c, ignore_index)
    return be, x, t, _class_weight(be, weight, c), n, c, d, loss_shape, ignore_index, red


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """-weight[y] * input[y] per sample: the negative log-likelihood of log-probabilities input
    ((C,), (N, C) or (N, C, d1, ..., dK)) at the class indices target; options as cross_entropy."""
    be, x, t, w, n, c, d, loss_shape, ignore, red = _nll_args(input, target, weight, ignore_index,
                                                              reduction, None)
    out = _out(be, red, loss_shape)
    ws, st = _aux(be)
    be.run("nll_loss_forward", x, t, w, out, n, c, d, ignore, red, ws, st)
    return out


def nll_loss_backward(input, target, weight=None, ignore_index=-100, reduction="mean", *, grad_out=None):
    """-weight[y] at each sample's target class, 0 elsewhere (and for ignored targets)."""
    be, x, t, w, n, c, d, loss_shape, ignore, red = _nll_args(input, target, weight, ignore_index,
                                                              reduction, grad_out)
    g = _grad_out(be, grad_out, red, loss_shape)
    grad = be.empty(x.shape)
    ws, st = _aux(be)
    be.run("nll_loss_backward", t, w, g, grad, n, c, d, ignore, red, ws, st)
    return grad


# --- logistic and hinge losses on +-1 labels ------------------------------------------------------

def _pm1_pair(scores, labels, grad_out=None):
    be, s, y, _ = _pair(scores, labels, grad_out, names=("scores", "labels"), broadcast=False)
    if be.name == "cpu" and y.size:  # on the GPU the kernels check (no host sync)
        bad = (y != 1) & (y != -1)
        if bad.any():
            raise ValueError(f"labels must be -1 or +1, got a label {float(y.reshape(-1)[int(bad.reshape(-1).argmax())])!r}")
    return be, s, y


def _pm1_forward(kernel, scores, labels, reduction, param=0.0):
    red = _reduction(reduction)
    be, s, y = _pm1_pair(scores, labels)
    out = _out(be, red, s.shape)
    ws, st = _aux(be)
    be.run(kernel + "_forward", s, y, out, s.size, param, red, ws, st)
    return out


def _pm1_backward(kernel, scores, labels, reduction, grad_out, param=0.0):
    red = _reduction(reduction)
    be, s, y = _pm1_pair(scores, labels, grad_out)
    g = _grad_out(be, grad_out, red, s.shape)
    grad = be.empty(s.shape)
    st = _status(be)
    be.run(kernel + "_backward", s, y, g, grad, s.size, param, red, st)
    return grad


def logistic_loss(scores, labels, reduction="mean"):
    """log(1 + exp(-y s)) (a stable softplus), labels y in {-1, +1} with the shape of scores: the
    logistic-regression loss, soft_margin_loss restricted to +-1 labels. A label that is not +-1 is
    a ValueError (NumPy) or a NaN and a device-side error record (CuPy; see the module doc)."""
    return _pm1_forward("logistic_loss", scores, labels, reduction)


def logistic_loss_backward(scores, labels, reduction="mean", *, grad_out=None):
    """-y sigmoid(-y s)."""
    return _pm1_backward("logistic_loss", scores, labels, reduction, grad_out)


def _margin(margin) -> float:
    margin = as_float(margin, "margin")
    if not (0.0 <= margin < math.inf):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    return margin


def hinge_loss(scores, labels, margin=1.0, reduction="mean"):
    """max(0, margin - y s), labels y in {-1, +1} with the shape of scores.

    margin=1 is the SVM hinge loss; margin=0 is the perceptron criterion (a loss only for
    misclassified points). ValueError if a label is not +-1 (NumPy) or margin is negative."""
    return _pm1_forward("hinge_loss", scores, labels, reduction, _margin(margin))


def hinge_loss_backward(scores, labels, margin=1.0, reduction="mean", *, grad_out=None):
    """Subgradient -y where margin - y s > 0, else 0; at the kink margin - y s == 0 it is 0 (as
    relu'(0) = 0). With margin 0 a point exactly on the boundary (y s == 0) therefore gives no
    update: a perceptron started from all-zero weights never moves, so start it from small random
    weights (or use a small positive margin)."""
    return _pm1_backward("hinge_loss", scores, labels, reduction, grad_out, _margin(margin))
