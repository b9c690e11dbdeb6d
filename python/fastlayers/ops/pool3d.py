"""3-D pooling over NCDHW (or unbatched CDHW) input: max and average, with backward.

Arguments, defaults and semantics are torch.nn.functional's (see fastlayers.reference.pool3d for
the full statement): kernel_size, stride (default kernel_size), padding (<= kernel_size // 2) and,
for max_pool3d, dilation: an int or a (depth, height, width) triple; ceil_mode; max_pool3d's
return_indices (flat indices into each D*H*W volume, int64); avg_pool3d's count_include_pad and
divisor_override. The backward functions take the forward's arguments (max_pool3d_backward
recomputes the winners from x).

Geometry is checked with exact integers: padded extents below 2**40 (a ValueError naming
`padding` or `kernel_size` otherwise), outputs of at least one position, and a stride that cannot
matter (one output along the axis) passed as 1.
"""

from __future__ import annotations

import numpy as np

from .._backend import backend_for
from .._checks import as_float32, as_int, check_nonnegative, check_positive, check_shape
from .conv3d import as_tuple, check_flag, check_output_size
from .pool import _as_indices, _bad_indices

__all__ = ["max_pool3d", "max_pool3d_backward", "avg_pool3d", "avg_pool3d_backward"]

_MAX_EXTENT = 2**40


def _out_size(n, k, s, p, d, ceil_mode):
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _geometry(x, kernel_size, stride, padding, dilation, ceil_mode):
    """The kernels' 19-int geometry tuple (csrc/common/pool3d_geometry.h) and the output shape."""
    k = as_tuple(kernel_size, 3, "kernel_size")
    check_positive(k, "kernel_size")
    if stride is None:
        s = k
    else:
        s = as_tuple(stride, 3, "stride")
        check_positive(s, "stride")
    p = as_tuple(padding, 3, "padding")
    check_nonnegative(p, "padding")
    d = as_tuple(dilation, 3, "dilation")
    check_positive(d, "dilation")
    ceil_mode = check_flag(ceil_mode, "ceil_mode")
    if any(pp > kk // 2 for pp, kk in zip(p, k)):
        raise ValueError(f"padding must be at most half the kernel size, i.e. <= {tuple(kk // 2 for kk in k)} for "
                         f"kernel_size {k}, got {p}")
    N, C, D, H, W = (int(v) for v in x.shape)
    if min(D, H, W) <= 0:
        raise ValueError(f"x must have positive D, H, W, got shape {tuple(x.shape)}")
    out, strides = [], []
    for n, kk, ss, pp, dd, axis in zip((D, H, W), k, s, p, d, ("depth", "height", "width")):
        if n + 2 * pp >= _MAX_EXTENT:
            raise ValueError(f"padding / kernel_size: the padded {axis} extent {n + 2 * pp} is too large "
                             f"(at most {_MAX_EXTENT - 1} supported)")
        if dd * (kk - 1) + 1 > n + 2 * pp:
            raise ValueError(f"{'dilation' if dd > 1 else 'kernel_size'}: the window's {axis} extent "
                             f"{dd * (kk - 1) + 1} (size {kk}, dilation {dd}) is larger than the padded input "
                             f"{n + 2 * pp} (x is {tuple(x.shape)}); the output would be empty")
        o = _out_size(n, kk, ss, pp, dd, ceil_mode)
        out.append(o)
        strides.append(ss if o > 1 else 1)
    check_output_size((N, C, *out), "kernel_size / stride")
    geom = (N * C, D, H, W, *k, *strides, *p, *d, *out)
    return geom, (N, C, *out)


def _batched(x):
    if x.ndim == 4:
        return x[None], True
    if x.ndim != 5:
        raise ValueError(f"x must be 5-D (N, C, D, H, W) or 4-D unbatched (C, D, H, W), got shape {tuple(x.shape)}")
    return x, False


def _divisor(divisor_override) -> int:
    if divisor_override is None:
        return 0
    v = as_int(divisor_override, "divisor_override")
    if v == 0 or abs(v) >= 2**62:
        raise ValueError(f"divisor_override must be a non-zero int (|value| < 2**62), got {v}")
    return v


def _backward_inputs(grad_out, x, geometry_args, indices=None):
    be = backend_for(grad_out=grad_out, x=x, indices=indices)
    x, unbatched = _batched(as_float32(x, "x", be))
    grad_out = as_float32(grad_out, "grad_out", be)
    geom, out_shape = _geometry(x, *geometry_args)
    check_shape(grad_out, out_shape[1:] if unbatched else out_shape, "grad_out")
    if unbatched:
        grad_out = grad_out[None]
    return be, x, grad_out, geom, unbatched


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over each window (padding never wins; NaN in a window gives NaN); with return_indices,
    also the winners' flat indices into each D*H*W volume (int64; -1 for a window with no real cell)."""
    be = backend_for(x=x)
    return_indices = check_flag(return_indices, "return_indices")
    x, unbatched = _batched(as_float32(x, "x", be))
    geom, out_shape = _geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    y = be.empty(out_shape)
    idx = be.empty(out_shape, dtype=np.int64) if return_indices else None
    if y.size and x.size:
        be.run("max_pool3d_forward", x, y, idx if idx is not None else 0, geom)
    if unbatched:
        y = y[0]
        idx = idx[0] if idx is not None else None
    return (y, idx) if return_indices else y


def max_pool3d_backward(grad_out, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        indices=None):
    """Each window's gradient at its first maximum (its last NaN), accumulated over windows. The
    winners are recomputed from x, or taken from `indices` (max_pool3d's return_indices, same
    arguments): then x only gives the shape, and no argmax runs."""
    be, x, grad_out, geom, unbatched = _backward_inputs(grad_out, x, (kernel_size, stride, padding, dilation,
                                                                      ceil_mode), indices)
    if indices is not None:
        indices = _as_indices(indices, "indices", tuple(grad_out.shape[1:]) if unbatched else tuple(grad_out.shape),
                              be)
        if unbatched:
            indices = indices[None]
    grad_in = be.empty(x.shape)
    if grad_in.size:
        if indices is None:
            be.run("max_pool3d_backward", grad_out, x, grad_in, geom)
        else:
            bad = be.run("max_pool3d_backward_indices", grad_out, indices, grad_in, geom)
            _bad_indices(bad, "indices", geom[1] * geom[2] * geom[3], "positions in the D*H*W volume, or -1")
    return grad_in[0] if unbatched else grad_in


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Sum of each window's real cells over divisor_override, or over the window's size clipped to the
    padded input (count_include_pad=True), or over its number of real cells."""
    be = backend_for(x=x)
    count_include_pad = check_flag(count_include_pad, "count_include_pad")
    div = _divisor(divisor_override)
    x, unbatched = _batched(as_float32(x, "x", be))
    geom, out_shape = _geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    y = be.empty(out_shape)
    if y.size and x.size:
        be.run("avg_pool3d_forward", x, y, geom, count_include_pad, div)
    return y[0] if unbatched else y


def avg_pool3d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                        divisor_override=None):
    """grad_out / divisor spread over each window's real cells, accumulated over windows."""
    count_include_pad = check_flag(count_include_pad, "count_include_pad")
    div = _divisor(divisor_override)
    be, x, grad_out, geom, unbatched = _backward_inputs(grad_out, x, (kernel_size, stride, padding, 1, ceil_mode))
    grad_in = be.empty(x.shape)
    if grad_in.size:
        be.run("avg_pool3d_backward", grad_out, grad_in, geom, count_include_pad, div)
    return grad_in[0] if unbatched else grad_in

