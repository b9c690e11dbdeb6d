"""Activations: relu, leaky_relu, sigmoid, tanh, softmax, log_softmax, sign, heaviside."""

from __future__ import annotations

from .._backend import backend_for
from .._checks import as_float32, check_shape

__all__ = ["relu", "relu_backward"]


def relu(x):
    """max(x, 0) elementwise; NaN propagates."""
    be = backend_for(x=x)
    x = as_float32(x, "x", be)
    y = be.empty(x.shape)
    be.run("relu_forward", x, y, x.size)
    return y


def relu_backward(grad_out, x):
    """grad_out where x > 0, else 0."""
    be = backend_for(grad_out=grad_out, x=x)
    x = as_float32(x, "x", be)
    grad_out = as_float32(grad_out, "grad_out", be)
    check_shape(grad_out, x.shape, "grad_out")
    grad_in = be.empty(x.shape)
    be.run("relu_backward", grad_out, x, grad_in, x.size)
    return grad_in
