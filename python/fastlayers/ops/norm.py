"""Batch normalisation: batch_norm, batch_norm_backward, fold_batch_norm (torch.nn.functional's
batch_norm semantics; channels on axis 1 of (N, C), (N, C, L), (N, C, H, W), (N, C, D, H, W), ...).

In training mode batch_norm normalises with the batch statistics (biased variance) and, when given,
updates running_mean / running_var in place with the unbiased variance (as PyTorch): those two must
then be C-contiguous float32 arrays of shape (C,), like an optimizer's state. Everything else is
read only and converted like any input.
"""

from __future__ import annotations

import math

from .._backend import backend_for
from .._checks import as_float, as_float32, check_shape
from .optim import _inplace

__all__ = ["batch_norm", "batch_norm_backward", "fold_batch_norm"]

# Kernel codes for the statistics batch_norm_backward uses (csrc/cpu/batch_norm.h: BnStats).
_STATS_BATCH, _STATS_SAVED, _STATS_RUNNING = 0, 1, 2


def _geometry(x, name: str):
    if x.ndim < 2:
        raise ValueError(f"{name} must be (N, C, ...) with at least 2 dimensions (channels on axis 1), "
                         f"got shape {tuple(x.shape)}")
    n, c = int(x.shape[0]), int(x.shape[1])
    s = 1
    for d in x.shape[2:]:
        s *= int(d)
    return n, c, s


def _channels(v, name: str, be, c: int):
    """None, or v as a float32 (C,) array."""
    if v is None:
        return None
    v = as_float32(v, name, be)
    check_shape(v, (c,), name)
    return v


def _as_bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def _eps(eps, training: bool) -> float:
    eps = as_float(eps, "eps")
    if training and not eps > 0:  # also rejects NaN
        raise ValueError(f"eps must be > 0 in training mode (the batch variance can be 0), got {eps!r}")
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return eps


def _check_single_value(n: int, s: int, x):
    if n * s == 1:  # PyTorch's rule and message: one value per channel has no variance
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{tuple(x.shape)}")


def _no_overlap(be, written: dict, read: dict):
    """Arrays written in place must share memory with no other argument."""
    names = list(written)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if be.xp.may_share_memory(written[a], written[b]):
                raise ValueError(f"{a} and {b} are updated in place and must not share memory")
        for b, arr in read.items():
            if arr is not None and be.xp.may_share_memory(written[a], arr):
                raise ValueError(f"{a} is updated in place and must not share memory with {b}")


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per channel (axis 1).

    training=True: mean and (biased) var of the batch, over every axis but 1; running_mean and
    running_var, when given (both or neither), are updated in place:
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var  = (1 - momentum) * running_var + momentum * var * M / (M - 1)   (M values per channel)
    M == 1 is a ValueError, as in PyTorch; an empty batch returns an empty array and updates nothing.
    training=False: running_mean and running_var (required) are the statistics; nothing is written.
    weight / bias: (C,) or None (1 / 0). momentum: a finite number (None, PyTorch's cumulative
    average, is a layer option: see fastlayers.nn.BatchNorm2d). eps > 0 in training, >= 0 in eval.
    """
    be = backend_for(x=x, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    x = as_float32(x, "x", be)
    n, c, s = _geometry(x, "x")
    training = _as_bool(training, "training")
    if momentum is None:
        raise TypeError("momentum must be a float; momentum=None (a cumulative average) is an option of "
                        "the BatchNorm layers, which pass 1 / num_batches_tracked here")
    momentum = as_float(momentum, "momentum")
    if not math.isfinite(momentum):
        raise ValueError(f"momentum must be finite, got {momentum!r}")
    eps = _eps(eps, training)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be None")
    weight = _channels(weight, "weight", be, c)
    bias = _channels(bias, "bias", be, c)
    if training:
        _check_single_value(n, s, x)
        if running_mean is not None:
            running_mean = _inplace(running_mean, "running_mean", be, (c,))
            running_var = _inplace(running_var, "running_var", be, (c,))
            _no_overlap(be, {"running_mean": running_mean, "running_var": running_var},
                        {"x": x, "weight": weight, "bias": bias})
    else:
        if running_mean is None:
            raise ValueError("running_mean and running_var are required when training=False (eval mode "
                             "normalises with them)")
        running_mean = _channels(running_mean, "running_mean", be, c)
        running_var = _channels(running_var, "running_var", be, c)
    y = be.empty(x.shape)
    if x.size == 0:
        return y
    be.run("batch_norm_forward", x, y, 0 if weight is None else weight, 0 if bias is None else bias,
           0 if running_mean is None else running_mean, 0 if running_var is None else running_var,
           n, c, s, training, momentum, eps)
    return y


def batch_norm_backward(grad_out, x, weight, eps=1e-5, training=True, running_mean=None, running_var=None,
                        *, save_mean=None, save_invstd=None):
    """(grad_x, grad_weight, grad_bias) of batch_norm; grad_weight and grad_bias are None when weight
    is None (grad_bias is the sum of grad_out over every axis but 1).

    training=True: the batch statistics of x are recomputed (in the same pass over x and grad_out
    that the gradients need), or taken from save_mean and save_invstd = 1 / sqrt(biased var + eps)
    (both (C,), keyword only; PyTorch's native_batch_norm returns these). running_mean /
    running_var are not used. training=False: running_mean and running_var are required and are
    the statistics (grad_x = grad_out * weight / sqrt(running_var + eps)).
    """
    be = backend_for(grad_out=grad_out, x=x, weight=weight, running_mean=running_mean,
                     running_var=running_var, save_mean=save_mean, save_invstd=save_invstd)
    x = as_float32(x, "x", be)
    n, c, s = _geometry(x, "x")
    grad_out = as_float32(grad_out, "grad_out", be)
    check_shape(grad_out, x.shape, "grad_out")
    training = _as_bool(training, "training")
    weight = _channels(weight, "weight", be, c)
    if (save_mean is None) != (save_invstd is None):
        raise ValueError("save_mean and save_invstd must either both be given or both be None")
    if training:
        if save_mean is not None:
            stats, a, b = _STATS_SAVED, _channels(save_mean, "save_mean", be, c), \
                _channels(save_invstd, "save_invstd", be, c)
            eps = as_float(eps, "eps")  # unused: save_invstd already holds it
        else:
            _check_single_value(n, s, x)
            eps = _eps(eps, True)
            stats, a, b = _STATS_BATCH, None, None
    else:
        if save_mean is not None:
            raise ValueError("save_mean / save_invstd are batch statistics, for training=True; in eval "
                             "mode the running statistics are used")
        if running_mean is None or running_var is None:
            raise ValueError("running_mean and running_var are required when training=False (the eval "
                             "backward uses them)")
        eps = _eps(eps, False)
        stats = _STATS_RUNNING
        a = _channels(running_mean, "running_mean", be, c)
        b = _channels(running_var, "running_var", be, c)
    grad_x = be.empty(x.shape)
    grad_w = grad_b = None
    if weight is not None:
        grad_w, grad_b = be.empty((c,)), be.empty((c,))
    if x.size == 0:
        if weight is not None:
            grad_w[...] = 0
            grad_b[...] = 0
        return grad_x, grad_w, grad_b
    be.run("batch_norm_backward", grad_out, x, 0 if weight is None else weight, 0 if a is None else a,
           0 if b is None else b, stats, grad_x, 0 if grad_w is None else grad_w,
           0 if grad_b is None else grad_b, n, c, s, eps)
    return grad_x, grad_w, grad_b


def fold_batch_norm(conv_w, conv_b, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    """(w', b'): an eval-mode batch norm over the output channels of a conv or linear layer folded into
    its weights, so that conv(x, w', b') == batch_norm(conv(x, conv_w, conv_b), running_mean,
    running_var, weight, bias, training=False, eps=eps):

        s = weight / sqrt(running_var + eps);  w' = conv_w * s (per output channel, axis 0);
        b' = (conv_b - running_mean) * s + bias

    conv_w: (K, ...) with the output channels on axis 0 (conv1d/2d/3d and linear weights as
    PyTorch stores them); conv_b, weight, bias: (K,) or None (0, 1, 0). b' is always an array.
    """
    be = backend_for(conv_w=conv_w, conv_b=conv_b, running_mean=running_mean, running_var=running_var,
                     weight=weight, bias=bias)
    conv_w = as_float32(conv_w, "conv_w", be)
    if conv_w.ndim < 2:
        raise ValueError(f"conv_w must be a weight with the output channels on axis 0 and at least 2 "
                         f"dimensions, got shape {tuple(conv_w.shape)}")
    k = int(conv_w.shape[0])
    per_k = conv_w.size // k if k else 0
    conv_b = _channels(conv_b, "conv_b", be, k)
    if running_mean is None or running_var is None:
        raise ValueError("running_mean and running_var are required: folding uses the eval-mode statistics")
    running_mean = _channels(running_mean, "running_mean", be, k)
    running_var = _channels(running_var, "running_var", be, k)
    weight = _channels(weight, "weight", be, k)
    bias = _channels(bias, "bias", be, k)
    eps = _eps(eps, False)
    w_out, b_out = be.empty(conv_w.shape), be.empty((k,))
    if k == 0:
        return w_out, b_out
    be.run("fold_batch_norm", conv_w, 0 if conv_b is None else conv_b, running_mean, running_var,
           0 if weight is None else weight, 0 if bias is None else bias, w_out, b_out, k, per_k, eps)
    return w_out, b_out
