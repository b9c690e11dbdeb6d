"""NumPy reference for the activations. Works in the dtype it is given (float32 or float64)."""

import functools
import inspect

import numpy as np

__all__ = [
    "relu", "relu_backward",
    "leaky_relu", "leaky_relu_backward",
    "sigmoid", "sigmoid_backward",
    "tanh", "tanh_backward",
    "softmax", "softmax_backward",
    "log_softmax", "log_softmax_backward",
    "sign", "heaviside",
]


def relu(x):
    return np.where(x > 0, x, np.where(np.isnan(x), x, 0)).astype(x.dtype, copy=False)


def relu_backward(grad_out, x):
    # PyTorch's mask (threshold_backward): 0 where x <= 0, so a NaN input passes the gradient on.
    return np.where(x <= 0, 0, grad_out).astype(grad_out.dtype, copy=False)


def leaky_relu(x, negative_slope=0.01):
    return np.where(x > 0, x, x * negative_slope).astype(x.dtype, copy=False)


def leaky_relu_backward(grad_out, x, negative_slope=0.01):
    # x == 0 takes the slope side, as PyTorch does.
    return np.where(x > 0, grad_out, grad_out * negative_slope).astype(grad_out.dtype, copy=False)


def sigmoid(x):
    # exp(-|x|) never overflows: 1/(1+e) for x >= 0, e/(1+e) for x < 0.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(grad_out, y):
    """y is the forward output sigmoid(x)."""
    return grad_out * (y * (1 - y))


def tanh(x):
    return np.tanh(x)


def tanh_backward(grad_out, y):
    """y is the forward output tanh(x)."""
    return grad_out * (1 - y * y)


def _rows_of_0d(n_arrays):
    """A 0-D input is one row of one element (axis 0 or -1, as PyTorch); the result stays 0-D.
    The wrapper keeps fn's signature: its arguments may be passed by keyword."""
    def wrap(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            values = list(bound.arguments.values())
            arrays, axis = values[:n_arrays], values[n_arrays]
            if np.ndim(arrays[-1]) == 0:
                if axis not in (-1, 0):
                    raise ValueError(f"axis must be in [-1, 0] for a 0-D input, got {axis}")
                return np.asarray(fn(*(np.reshape(a, (1,)) for a in arrays), axis=-1)).reshape(())
            return fn(*arrays, axis=axis)
        return wrapper
    return wrap


def _shifted(x, axis):
    # x - max along axis. A row of only -inf gives -inf - -inf = NaN, as PyTorch does.
    with np.errstate(invalid="ignore"):
        return x - np.max(x, axis=axis, keepdims=True)


@_rows_of_0d(1)
def softmax(x, axis=-1):
    with np.errstate(invalid="ignore"):
        e = np.exp(_shifted(x, axis))
        return e / np.sum(e, axis=axis, keepdims=True)


@_rows_of_0d(2)
def softmax_backward(grad_out, y, axis=-1):
    """y is the forward output softmax(x): grad_x = y * (grad_out - sum(grad_out * y))."""
    return y * (grad_out - np.sum(grad_out * y, axis=axis, keepdims=True))


@_rows_of_0d(1)
def log_softmax(x, axis=-1):
    with np.errstate(invalid="ignore", divide="ignore"):
        z = _shifted(x, axis)
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


@_rows_of_0d(2)
def log_softmax_backward(grad_out, y, axis=-1):
    """y is the forward output log_softmax(x): grad_x = grad_out - exp(y) * sum(grad_out)."""
    return grad_out - np.exp(y) * np.sum(grad_out, axis=axis, keepdims=True)


def sign(x):
    """-1, 0 or +1; NaN stays NaN. Forward only."""
    return np.sign(x)


def heaviside(x, value_at_zero=1.0):
    """0 for x < 0, 1 for x > 0, value_at_zero at 0; NaN stays NaN. Forward only."""
    return np.heaviside(x, np.asarray(value_at_zero, dtype=x.dtype)).astype(x.dtype, copy=False)
