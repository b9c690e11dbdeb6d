"""2-D pooling over NCHW input: max, average, power-average (Lp) and global average, with backward.

Semantics (see fastlayers.reference.pool for the full statement):
- Output size per axis: (H + 2*padding - kernel) // stride + 1 (floor mode, PyTorch's
  ceil_mode=False). stride defaults to kernel_size; kernel_size, stride and padding are an int or an
  (h, w) pair; padding <= kernel_size // 2 (as PyTorch), so every window holds a real cell.
- max_pool2d: padded cells never win; a window holding a NaN outputs NaN. The backward sends each
  window's gradient to its first maximum in row-major scan order (to its last NaN, if any, as
  PyTorch: a NaN displaces the running maximum); overlapping
  windows accumulate; cells in no window get 0.
- avg_pool2d: padded cells count as 0; divisor kh*kw (count_include_pad=True) or the number of real
  cells in the window.
- lp_pool2d: (sum |x|^p)^(1/p) per window, p > 0 (accumulated in float64 in the kernel). Backward
  g * sign(x) * (|x| / y)^(p-1), defined as 0 where x == 0 or y == 0 (no 0/0 NaN).
- global_avg_pool2d: mean over H x W, (N, C, H, W) -> (N, C).
"""

from __future__ import annotations

import math

from .._backend import backend_for
from .._checks import as_float, as_float32, as_pair, check_ndim, check_nonnegative, check_positive, check_shape

__all__ = [
    "max_pool2d", "max_pool2d_backward",
    "avg_pool2d", "avg_pool2d_backward",
    "lp_pool2d", "lp_pool2d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward",
]


def _geometry(x, kernel_size, stride, padding):
    """Checked (planes, h, w, kh, kw, sh, sw, ph, pw) and the output size (oh, ow)."""
    check_ndim(x, 4, "x", "(N, C, H, W)")
    kh, kw = as_pair(kernel_size, "kernel_size")
    check_positive((kh, kw), "kernel_size")
    if stride is None:
        sh, sw = kh, kw
    else:
        sh, sw = as_pair(stride, "stride")
        check_positive((sh, sw), "stride")
    ph, pw = as_pair(padding, "padding")
    check_nonnegative((ph, pw), "padding")
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"padding must be at most half the kernel size, i.e. <= {(kh // 2, kw // 2)} for "
                         f"kernel_size {(kh, kw)}, got {(ph, pw)}")
    n, c, h, w = (int(s) for s in x.shape)
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ValueError(f"kernel_size {(kh, kw)} is larger than the padded input {(h + 2 * ph, w + 2 * pw)} "
                         f"(x is {tuple(x.shape)}, padding {(ph, pw)}): the output would be empty")
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    return (n * c, h, w, kh, kw, sh, sw, ph, pw), (n, c, oh, ow)


def _check_p(p) -> float:
    p = as_float(p, "p")
    if not (p > 0 and math.isfinite(p)):
        raise ValueError(f"p must be a positive finite number, got {p!r}")
    return p


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def _forward(kernel, x, kernel_size, stride, padding, *extra):
    be = backend_for(x=x)
    x = as_float32(x, "x", be)
    geom, out_shape = _geometry(x, kernel_size, stride, padding)
    y = be.empty(out_shape)
    if y.size:
        be.run(kernel, x, y, *geom, *extra)
    return y


def _backward(kernel, grad_out, x, kernel_size, stride, padding, *extra, needs_x=True):
    be = backend_for(grad_out=grad_out, x=x)
    x = as_float32(x, "x", be)
    grad_out = as_float32(grad_out, "grad_out", be)
    geom, out_shape = _geometry(x, kernel_size, stride, padding)
    check_shape(grad_out, out_shape, "grad_out")
    grad_in = be.empty(x.shape)
    if grad_in.size:
        be.run(kernel, grad_out, *((x,) if needs_x else ()), grad_in, *geom, *extra)
    return grad_in


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over each window; padded cells never win; NaN in a window gives NaN."""
    return _forward("max_pool2d_forward", x, kernel_size, stride, padding)


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0):
    """grad_out routed to the first maximum of each window (row-major), accumulated over windows."""
    return _backward("max_pool2d_backward", grad_out, x, kernel_size, stride, padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Mean over each window (padding counts as zeros in the sum; see count_include_pad for the divisor)."""
    flag = _check_flag(count_include_pad, "count_include_pad")
    return _forward("avg_pool2d_forward", x, kernel_size, stride, padding, flag)


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """grad_out / divisor spread over each window's real cells, accumulated over windows."""
    flag = _check_flag(count_include_pad, "count_include_pad")
    return _backward("avg_pool2d_backward", grad_out, x, kernel_size, stride, padding, flag, needs_x=False)


def lp_pool2d(x, p, kernel_size, stride=None, padding=0):
    """(sum |x|^p)^(1/p) over each window, p > 0."""
    p = _check_p(p)
    return _forward("lp_pool2d_forward", x, kernel_size, stride, padding, p)


def lp_pool2d_backward(grad_out, x, p, kernel_size, stride=None, padding=0):
    """g * sign(x) * (|x| / y)^(p-1) per window, 0 where x == 0 or y == 0."""
    p = _check_p(p)
    return _backward("lp_pool2d_backward", grad_out, x, kernel_size, stride, padding, p)


def global_avg_pool2d(x):
    """Mean over H x W: (N, C, H, W) -> (N, C)."""
    be = backend_for(x=x)
    x = as_float32(x, "x", be)
    check_ndim(x, 4, "x", "(N, C, H, W)")
    n, c, h, w = (int(s) for s in x.shape)
    if h * w == 0:
        raise ValueError(f"x must have a non-empty H x W plane to average, got shape {tuple(x.shape)}")
    y = be.empty((n, c))
    if y.size:
        be.run("global_avg_pool2d_forward", x, y, n * c, h * w)
    return y


def global_avg_pool2d_backward(grad_out, x):
    """grad_out / (H*W) broadcast over each plane."""
    be = backend_for(grad_out=grad_out, x=x)
    x = as_float32(x, "x", be)
    grad_out = as_float32(grad_out, "grad_out", be)
    check_ndim(x, 4, "x", "(N, C, H, W)")
    n, c, h, w = (int(s) for s in x.shape)
    if h * w == 0:
        raise ValueError(f"x must have a non-empty H x W plane to average, got shape {tuple(x.shape)}")
    check_shape(grad_out, (n, c), "grad_out")
    grad_in = be.empty(x.shape)
    if grad_in.size:
        be.run("global_avg_pool2d_backward", grad_out, grad_in, n * c, h * w)
    return grad_in
