"""Dense (fully connected) layer: y = x w^T + b over the last axis of x, and its gradients.

Both passes are GEMMs (ops/gemm.py) plus two small bias kernels, `bias_add_rows` and
`bias_grad_rows`, that each backend provides.
"""

from __future__ import annotations

from .._backend import backend_for
from .._checks import as_float32, check_ndim, check_shape
from .gemm import sgemm_into

__all__ = ["linear", "linear_backward"]


def _as_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def _prepare(x, w, be):
    x_ndim = getattr(x, "ndim", None)  # before conversion: ascontiguousarray turns 0-D into 1-D
    x = as_float32(x, "x", be)
    w = as_float32(w, "w", be)
    if x_ndim == 0 or x.ndim < 1:
        raise ValueError("x must have at least 1 dimension (..., in), got a 0-D array")
    check_ndim(w, 2, "w", "(out, in)")
    if x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"x's last dimension (in={x.shape[-1]}, x.shape={tuple(x.shape)}) must equal "
            f"w's second dimension (in={w.shape[1]}, w.shape={tuple(w.shape)})"
        )
    return x, w


def linear(x, w, b=None):
    """x (..., in) @ w(out, in)^T + b(out,) -> (..., out)."""
    be = backend_for(x=x, w=w, b=b)
    x, w = _prepare(x, w, be)
    out_features, in_features = w.shape
    if b is not None:
        b = as_float32(b, "b", be)
        check_shape(b, (out_features,), "b")
    rows = _prod(x.shape[:-1])
    y = be.empty(x.shape[:-1] + (out_features,))
    if y.size == 0:
        return y
    sgemm_into(be, y.reshape(rows, out_features), x.reshape(rows, in_features), w, False, True, 1.0, 0.0)
    if b is not None:
        be.run("bias_add_rows", y, b, rows, out_features)
    return y


def linear_backward(grad_out, x, w, *, with_bias=True):
    """(grad_x, grad_w, grad_b or None) of linear; grad_b is grad_out summed over all but the last axis."""
    be = backend_for(grad_out=grad_out, x=x, w=w)
    with_bias = _as_bool(with_bias, "with_bias")
    x, w = _prepare(x, w, be)
    out_features, in_features = w.shape
    g = as_float32(grad_out, "grad_out", be)
    check_shape(g, x.shape[:-1] + (out_features,), "grad_out")
    rows = _prod(x.shape[:-1])
    g2 = g.reshape(rows, out_features)
    grad_x = be.empty(x.shape)
    sgemm_into(be, grad_x.reshape(rows, in_features), g2, w, False, False, 1.0, 0.0)
    grad_w = be.empty(w.shape)
    sgemm_into(be, grad_w, g2, x.reshape(rows, in_features), True, False, 1.0, 0.0)
    grad_b = None
    if with_bias:
        grad_b = be.empty((out_features,))
        be.run("bias_grad_rows", g2, grad_b, rows, out_features,
               *be.workspace("bias_grad_rows_workspace_floats", rows, out_features))
    return grad_x, grad_w, grad_b


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
