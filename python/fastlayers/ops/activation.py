"""Activations: relu, leaky_relu, sigmoid, tanh, softmax, log_softmax, sign, heaviside."""

from __future__ import annotations

import math

from .._backend import backend_for
from .._checks import as_float, as_float32, as_int, check_shape

__all__ = [
    "relu", "relu_backward",
    "leaky_relu", "leaky_relu_backward",
    "sigmoid", "sigmoid_backward",
    "tanh", "tanh_backward",
    "softmax", "softmax_backward",
    "log_softmax", "log_softmax_backward",
    "sign", "heaviside",
]


def _unary(kernel, x, *scalars):
    be = backend_for(x=x)
    x = as_float32(x, "x", be)
    y = be.empty(x.shape)
    be.run(kernel, x, y, x.size, *scalars)
    return y


def _unary_backward(kernel, grad_out, t, t_name, *scalars):
    """grad_in from grad_out and t (the forward's input x or output y, named t_name)."""
    be = backend_for(grad_out=grad_out, **{t_name: t})
    t = as_float32(t, t_name, be)
    grad_out = as_float32(grad_out, "grad_out", be)
    check_shape(grad_out, t.shape, "grad_out")
    grad_in = be.empty(t.shape)
    be.run(kernel, grad_out, t, grad_in, t.size, *scalars)
    return grad_in


def relu(x):
    """max(x, 0) elementwise; NaN propagates."""
    return _unary("relu_forward", x)


def relu_backward(grad_out, x):
    """0 where x <= 0, else grad_out (PyTorch's mask: a NaN in x passes the gradient on)."""
    return _unary_backward("relu_backward", grad_out, x, "x")


def leaky_relu(x, negative_slope=0.01):
    """x for x > 0, negative_slope * x otherwise; NaN propagates."""
    slope = as_float(negative_slope, "negative_slope")
    return _unary("leaky_relu_forward", x, slope)


def leaky_relu_backward(grad_out, x, negative_slope=0.01):
    """grad_out where x > 0, negative_slope * grad_out otherwise (x == 0 included, as PyTorch)."""
    slope = as_float(negative_slope, "negative_slope")
    return _unary_backward("leaky_relu_backward", grad_out, x, "x", slope)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow for any x (limits 0 and 1 are exact)."""
    return _unary("sigmoid_forward", x)


def sigmoid_backward(grad_out, y):
    """grad_out * y * (1 - y), where y = sigmoid(x) is the forward output."""
    return _unary_backward("sigmoid_backward", grad_out, y, "y")


def tanh(x):
    return _unary("tanh_forward", x)


def tanh_backward(grad_out, y):
    """grad_out * (1 - y^2), where y = tanh(x) is the forward output."""
    return _unary_backward("tanh_backward", grad_out, y, "y")


def sign(x):
    """-1 for x < 0, 0 at 0, +1 for x > 0; NaN stays NaN. Forward only."""
    return _unary("sign_forward", x)


def heaviside(x, value_at_zero=1.0):
    """0 for x < 0, 1 for x > 0, value_at_zero at 0; NaN stays NaN. Forward only."""
    return _unary("heaviside_forward", x, as_float(value_at_zero, "value_at_zero"))


def _axis_split(shape, axis) -> tuple[int, int, int]:
    """(outer, dim, inner) of a C-contiguous array of this shape around `axis`."""
    axis = as_int(axis, "axis")
    ndim = len(shape)
    if ndim == 0:  # a 0-D input is one row of one element; axis 0 or -1, as PyTorch
        if axis not in (-1, 0):
            raise ValueError(f"axis must be in [-1, 0] for a 0-D input, got {axis}")
        return 1, 1, 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis must be in [{-ndim}, {ndim}) for an input of shape {tuple(shape)}, got {axis}")
    axis %= ndim
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _along_axis(kernel, x, axis):
    be = backend_for(x=x)
    x = as_float32(x, "x", be)
    outer, dim, inner = _axis_split(x.shape, axis)
    y = be.empty(x.shape)
    if x.size:
        be.run(kernel, x, y, outer, dim, inner)
    return y


def _along_axis_backward(kernel, grad_out, y, axis):
    be = backend_for(grad_out=grad_out, y=y)
    y = as_float32(y, "y", be)
    grad_out = as_float32(grad_out, "grad_out", be)
    check_shape(grad_out, y.shape, "grad_out")
    outer, dim, inner = _axis_split(y.shape, axis)
    grad_in = be.empty(y.shape)
    if y.size:
        be.run(kernel, grad_out, y, grad_in, outer, dim, inner)
    return grad_in


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along axis, with the maximum subtracted first (stable at any scale)."""
    return _along_axis("softmax_forward", x, axis)


def softmax_backward(grad_out, y, axis=-1):
    """y * (grad_out - sum(grad_out * y, axis)), where y = softmax(x, axis) is the forward output."""
    return _along_axis_backward("softmax_backward", grad_out, y, axis)


def log_softmax(x, axis=-1):
    """x - max - log(sum(exp(x - max))) along axis."""
    return _along_axis("log_softmax_forward", x, axis)


def log_softmax_backward(grad_out, y, axis=-1):
    """grad_out - exp(y) * sum(grad_out, axis), where y = log_softmax(x, axis) is the forward output."""
    return _along_axis_backward("log_softmax_backward", grad_out, y, axis)
