"""2-D pooling over NCHW input (or unbatched CHW, as PyTorch): max, average, power-average (Lp),
adaptive average and max, max-unpooling and global average, with backward.

Names, argument order, defaults and semantics are torch.nn.functional's (see
fastlayers.reference.pool for the full statement and docs/ops.md for the deliberate differences):
- Output size per axis: PyTorch's pooling_output_shape. With ek = dilation*(kernel-1) + 1,
  floor((H + 2*padding - ek) / stride) + 1, or with ceil_mode the ceiling, less one if that last
  window would start at or past H + padding. stride defaults to kernel_size (None or an empty
  sequence); kernel_size, stride, padding, dilation are an int or a sequence of 1 or 2 ints;
  padding <= kernel_size // 2 (the undilated kernel, as PyTorch).
- max_pool2d: padded cells never win; a window holding a NaN outputs NaN; the winner (return_indices:
  int64, flat over H*W, as PyTorch) is the first maximum in row-major order, or the last NaN.
  max_pool2d_backward recomputes the winners from x, or takes them as `indices=` (a bandwidth-bound
  scatter, or on the GPU a gather, with no argmax).
- avg_pool2d: PyTorch's divisor (divisor_override; else the window clipped to the padded input with
  count_include_pad, or its number of input cells). lp_pool2d: (F * sum |x|^p)^(1/p), F = 1 except
  in ceil_mode windows running past the input (PyTorch's avg_pool2d-based definition); |x|, not x.
- adaptive pools: windows [floor(i*H/oh), ceil((i+1)*H/oh)); None in output_size keeps that size.
  Divisible sizes run on the windowed kernels, (1, 1) average on the global-average kernel.
- global_avg_pool2d: mean over H x W, (N, C, H, W) -> (N, C).

Geometry is validated here, in Python integers: every value may be any int (2**63 - 1, 2**64, ...);
what the kernels get is bounded (csrc/common/pool_geometry.h) or the call is a ValueError naming the
argument. A stride that cannot matter (one output along that axis) is clamped.
"""

from __future__ import annotations

import math

import numpy as np

from .._backend import backend_for
from .._checks import as_float, as_float32, as_int, check_ndim, check_shape

__all__ = [
    "max_pool2d", "max_pool2d_backward",
    "avg_pool2d", "avg_pool2d_backward",
    "lp_pool2d", "lp_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
    "max_unpool2d", "max_unpool2d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward",
]

# The effective kernel extent and the padded input stay within 2^62, so that every window start and
# end the kernels form fits in int64 (csrc/common/pool_geometry.h).
_EXTENT_LIMIT = 2**62
# Outputs whose size comes from the arguments alone (unpooling, adaptive output_size): more elements
# than this (16 TiB of float32) is certainly an argument mistake, not a memory shortage.
_ELEMENT_LIMIT = 2**42


# ------------------------------------------------------------------------------ argument checks

def _size2(value, name: str, default=None) -> tuple[int, int]:
    """An int or a sequence of 1 or 2 ints, as (h, w); None or an empty sequence gives `default`
    where the argument has one (stride)."""
    if type(value) is int:  # fast path
        return value, value
    if isinstance(value, (tuple, list)):
        if len(value) == 0 and default is not None:
            return default
        if len(value) not in (1, 2):
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return as_int(value[0], name), as_int(value[-1], name)
    if value is None:
        if default is not None:
            return default
        raise TypeError(f"{name} must be an int or a pair of ints, got None")
    v = as_int(value, name)
    return v, v


def _flag(value, name: str) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def _nchw(x, name: str = "x"):
    """(x as 4-D, whether it came unbatched as (C, H, W))."""
    if x.ndim == 4:
        batched = x
    elif x.ndim == 3:
        batched = x.reshape((1,) + tuple(x.shape))
    else:
        raise ValueError(f"{name} must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if batched.shape[2] < 1 or batched.shape[3] < 1:
        raise ValueError(f"{name} must have a non-empty H x W plane, got shape {tuple(x.shape)}")
    return batched, x.ndim == 3


def _like_x(shape4, unbatched: bool) -> tuple:
    return tuple(shape4[1:]) if unbatched else tuple(shape4)


def _out_axis(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape for one axis, in Python ints: (output size, effective kernel)."""
    ek = d * (k - 1) + 1
    span = n + 2 * p - ek  # < 0: the window is larger than the padded input
    if ceil_mode:  # (ceil_mode accepts a window up to stride-1 cells larger, as PyTorch)
        o = -(-span // s) + 1
        if (o - 1) * s >= n + p:  # the last window must start inside the input or its left padding
            o -= 1
        return o, ek
    return span // s + 1, ek


# Checked geometries of recent calls with plain-int arguments (batch-1 inference makes many small
# calls with the same arguments: the checks below cost more than the kernel there).
_GEOMETRY_CACHE: dict = {}


def _geometry(shape4, kernel_size, stride, padding, dilation, ceil_mode):
    """Checked kernel arguments (planes, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow) and the
    (N, C, oh, ow) output shape."""
    if (type(kernel_size) is int and (stride is None or type(stride) is int) and type(padding) is int
            and type(dilation) is int):
        key = (tuple(shape4), kernel_size, stride, padding, dilation, ceil_mode)
        hit = _GEOMETRY_CACHE.get(key)
        if hit is None:
            hit = _check_geometry(shape4, kernel_size, stride, padding, dilation, ceil_mode)
            if len(_GEOMETRY_CACHE) >= 256:
                _GEOMETRY_CACHE.clear()
            _GEOMETRY_CACHE[key] = hit
        return hit
    return _check_geometry(shape4, kernel_size, stride, padding, dilation, ceil_mode)


def _check_geometry(shape4, kernel_size, stride, padding, dilation, ceil_mode):
    n, c, h, w = (int(s) for s in shape4)
    kh, kw = _size2(kernel_size, "kernel_size")
    if kh <= 0 or kw <= 0:
        raise ValueError(f"kernel_size must be positive, got {(kh, kw)}")
    sh, sw = _size2(stride, "stride", (kh, kw))
    if sh <= 0 or sw <= 0:
        raise ValueError(f"stride must be positive, got {(sh, sw)}")
    ph, pw = _size2(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {(ph, pw)}")
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"padding must be at most half the kernel size, i.e. <= {(kh // 2, kw // 2)} for "
                         f"kernel_size {(kh, kw)}, got {(ph, pw)}")
    dh, dw = _size2(dilation, "dilation")
    if dh <= 0 or dw <= 0:
        raise ValueError(f"dilation must be positive, got {(dh, dw)}")
    oh, ekh = _out_axis(h, kh, sh, ph, dh, ceil_mode)
    ow, ekw = _out_axis(w, kw, sw, pw, dw, ceil_mode)
    dilated = (dh, dw) != (1, 1)
    if oh < 1 or ow < 1:
        what = f"kernel_size {(kh, kw)} with dilation {(dh, dw)} spans {(ekh, ekw)} cells," if dilated else \
            f"kernel_size {(kh, kw)} is"
        raise ValueError(f"{what} larger than the padded input {(h + 2 * ph, w + 2 * pw)} (x is {tuple(shape4)}, "
                         f"padding {(ph, pw)}): the output would be empty")
    if ekh > _EXTENT_LIMIT or ekw > _EXTENT_LIMIT:
        what = f"kernel_size {(kh, kw)} with dilation {(dh, dw)}" if dilated else f"kernel_size {(kh, kw)}"
        raise ValueError(f"{what} spans {(ekh, ekw)} cells: at most 2**62 are supported")
    # One window along an axis: its stride never enters a window position, so clamp it (a huge one
    # would otherwise reach the kernels' index arithmetic).
    if oh == 1:
        sh = min(sh, ekh)
    if ow == 1:
        sw = min(sw, ekw)
    return (n * c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow), (n, c, oh, ow)


def _check_norm_type(p, name: str = "norm_type") -> float:
    p = as_float(p, name)
    if not (p > 0 and math.isfinite(p)):
        raise ValueError(f"{name} must be a positive finite number, got {p!r}")
    return p


def _check_divisor(divisor_override) -> float:
    """0.0 for None; else the non-zero int as a float (PyTorch's int64 range)."""
    if divisor_override is None:
        return 0.0
    d = as_int(divisor_override, "divisor_override")
    if d == 0:
        raise ValueError("divisor_override must be a non-zero int, got 0")
    if not -2**63 <= d < 2**63:
        raise ValueError(f"divisor_override must fit in int64, got {d}")
    return float(d)


def _as_indices(indices, name: str, shape, backend):
    """indices as contiguous int64 of the given shape on `backend`."""
    if indices is None:
        raise TypeError(f"{name} must be an integer array, got None")
    xp = backend.xp
    if backend.name == "cpu" and not isinstance(indices, np.ndarray):
        indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer indices (int64, as max_pool2d returns them), got dtype "
                        f"{indices.dtype}")
    if tuple(indices.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(indices.shape)}")
    return xp.ascontiguousarray(indices, dtype=xp.int64)


def _finish(y, unbatched: bool):
    return y[0] if unbatched else y


def _bad_indices(bad, name: str, hw: int, what: str):
    # CPU kernels count the indices they had to skip; CUDA kernels skip them silently (reading a
    # device counter back would synchronise the host: see docs/ops.md) and return None.
    if bad:
        raise ValueError(f"{name} must lie in [0, {hw}) ({what}), got {bad} out-of-range entries")


# ----------------------------------------------------------------------------------------- max

def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over each window; padded cells never win; NaN in a window gives NaN. With return_indices,
    (y, indices): int64 positions of the winners, flat over H*W (PyTorch's)."""
    be = backend_for(x=x)
    x = as_float32(x, "x", be)
    x4, unbatched = _nchw(x)
    ceil_mode, return_indices = _flag(ceil_mode, "ceil_mode"), _flag(return_indices, "return_indices")
    geom, out_shape = _geometry(x4.shape, kernel_size, stride, padding, dilation, ceil_mode)
    y = be.empty(out_shape)
    indices = be.empty(out_shape, np.int64) if return_indices else None
    if y.size:
        be.run("max_pool2d_forward", x4, y, 0 if indices is None else indices, *geom)
    if return_indices:
        return _finish(y, unbatched), _finish(indices, unbatched)
    return _finish(y, unbatched)


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        indices=None):
    """grad_out routed to each window's winner, accumulated over windows. The winners are recomputed
    from x, or taken from `indices` (max_pool2d's return_indices, same arguments): then x only gives
    the shape, and no argmax runs."""
    be = backend_for(grad_out=grad_out, x=x, indices=indices)
    x = as_float32(x, "x", be)
    grad_out = as_float32(grad_out, "grad_out", be)
    x4, unbatched = _nchw(x)
    ceil_mode = _flag(ceil_mode, "ceil_mode")
    geom, out_shape = _geometry(x4.shape, kernel_size, stride, padding, dilation, ceil_mode)
    check_shape(grad_out, _like_x(out_shape, unbatched), "grad_out")
    grad_in = be.empty(x.shape)
    if indices is not None:
        indices = _as_indices(indices, "indices", grad_out.shape, be)
    if grad_in.size:
        if indices is None:
            # The CUDA kernel needs an int64 scratch for the winners (unused on the CPU, and on the GPU
            # when the windows tile the input): from the array module's pool, not a malloc per call.
            ws = be.empty(out_shape, np.int64) if be.name == "cuda" else 0
            be.run("max_pool2d_backward", grad_out, x4, grad_in, ws, *geom)
        else:
            bad = be.run("max_pool2d_backward_indices", grad_out, indices, grad_in, *geom)
            _bad_indices(bad, "indices", geom[1] * geom[2], "positions in the H*W plane, or -1")
    return grad_in


# ----------------------------------------------------------------------------------------- avg

def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over each window, PyTorch's divisor: divisor_override, else the window clipped to the
    padded input (count_include_pad) or its number of input cells."""
    be = backend_for(x=x)
    x = as_float32(x, "x", be)
    x4, unbatched = _nchw(x)
    ceil_mode = _flag(ceil_mode, "ceil_mode")
    flag = _flag(count_include_pad, "count_include_pad")
    divisor = _check_divisor(divisor_override)
    geom, out_shape = _geometry(x4.shape, kernel_size, stride, padding, 1, ceil_mode)
    y = be.empty(out_shape)
    if y.size:
        be.run("avg_pool2d_forward", x4, y, *geom, flag, divisor)
    return _finish(y, unbatched)


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """grad_out / divisor spread over each window's input cells, accumulated over windows."""
    be = backend_for(grad_out=grad_out, x=x)
    x = as_float32(x, "x", be)
    grad_out = as_float32(grad_out, "grad_out", be)
    x4, unbatched = _nchw(x)
    ceil_mode = _flag(ceil_mode, "ceil_mode")
    flag = _flag(count_include_pad, "count_include_pad")
    divisor = _check_divisor(divisor_override)
    geom, out_shape = _geometry(x4.shape, kernel_size, stride, padding, 1, ceil_mode)
    check_shape(grad_out, _like_x(out_shape, unbatched), "grad_out")
    grad_in = be.empty(x.shape)
    if grad_in.size:
        be.run("avg_pool2d_backward", grad_out, grad_in, *geom, flag, divisor)
    return grad_in


# ------------------------------------------------------------------------------------------ lp

def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, padding=0):
    """(F * sum |x|^p)^(1/p) over each window, p = norm_type > 0; F = kh*kw / (the window clipped to
    the padded input), 1 except in ceil_mode windows running past the input (as PyTorch). `padding`
    (zeros) is a fastlayers extension."""
    p = _check_norm_type(norm_type)
    be = backend_for(x=x)
    x = as_float32(x, "x", be)
    x4, unbatched = _nchw(x)
    ceil_mode = _flag(ceil_mode, "ceil_mode")
    geom, out_shape = _geometry(x4.shape, kernel_size, stride, padding, 1, ceil_mode)
    y = be.empty(out_shape)
    if y.size:
        be.run("lp_pool2d_forward", x4, y, *geom, p)
    return _finish(y, unbatched)


def lp_pool2d_backward(grad_out, x, norm_type, kernel_size, stride=None, ceil_mode=False, *, padding=0):
    """g * F * sign(x) * (|x| / y)^(p-1) per window, 0 where x == 0 or y == 0."""
    p = _check_norm_type(norm_type)
    be = backend_for(grad_out=grad_out, x=x)
    x = as_float32(x, "x", be)
    grad_out = as_float32(grad_out, "grad_out", be)
    x4, unbatched = _nchw(x)
    ceil_mode = _flag(ceil_mode, "ceil_mode")
    geom, out_shape = _geometry(x4.shape, kernel_size, stride, padding, 1, ceil_mode)
    check_shape(grad_out, _like_x(out_shape, unbatched), "grad_out")
    grad_in = be.empty(x.shape)
    if grad_in.size:
        be.run("lp_pool2d_backward", grad_out, x4, grad_in, *geom, p)
    return grad_in


# ------------------------------------------------------------------------------------ adaptive

def _adaptive_size(shape4, output_size) -> tuple[int, int]:
    h, w = int(shape4[2]), int(shape4[3])
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"output_size must be an int or a pair (None entries keep the input size), "
                             f"got {output_size!r}")
        oh = h if output_size[0] is None else as_int(output_size[0], "output_size")
        ow = w if output_size[1] is None else as_int(output_size[1], "output_size")
    else:
        if output_size is None:
            raise TypeError("output_size must be an int or a pair, got None")
        oh = ow = as_int(output_size, "output_size")
    if oh < 0 or ow < 0:
        raise ValueError(f"output_size must be non-negative, got {(oh, ow)}")
    planes = int(shape4[0]) * int(shape4[1])
    # max(planes, 1): an empty batch does not make an impossible per-plane output size valid
    if oh * h >= _EXTENT_LIMIT or ow * w >= _EXTENT_LIMIT or max(planes, 1) * oh * ow > _ELEMENT_LIMIT:
        raise ValueError(f"output_size {(oh, ow)} is too large for x of shape {tuple(shape4)}")
    return oh, ow


# Divisible adaptive pools are plain windowed pools (kernel = stride = H / oh): the windowed kernels
# vectorise across a row of outputs, which pays from about 8 outputs a row.
_WINDOWED_MIN_OW = 8


def _as_windowed(shape4, oh, ow):
    """The windowed-pool geometry equal to this adaptive pool, or None."""
    n, c, h, w = (int(s) for s in shape4)
    if oh == 0 or ow == 0 or h % oh or w % ow or ow < _WINDOWED_MIN_OW:
        return None
    kh, kw = h // oh, w // ow
    return (n * c, h, w, kh, kw, kh, kw, 0, 0, 1, 1, oh, ow)


def adaptive_avg_pool2d(x, output_size):
    """Mean over PyTorch's adaptive windows; output_size an int or (oh, ow), None keeping that size."""
    be = backend_for(x=x)
    x = as_float32(x, "x", be)
    x4, unbatched = _nchw(x)
    oh, ow = _adaptive_size(x4.shape, output_size)
    n, c, h, w = (int(s) for s in x4.shape)
    y = be.empty((n, c, oh, ow))
    if y.size:
        windowed = _as_windowed(x4.shape, oh, ow)
        if (oh, ow) == (1, 1):
            be.run("global_avg_pool2d_forward", x4, y, n * c, h * w)
        elif windowed is not None:
            be.run("avg_pool2d_forward", x4, y, *windowed, True, 0.0)
        else:
            be.run("adaptive_avg_pool2d_forward", x4, y, n * c, h, w, oh, ow)
    return _finish(y, unbatched)


def adaptive_avg_pool2d_backward(grad_out, x, output_size):
    be = backend_for(grad_out=grad_out, x=x)
    x = as_float32(x, "x", be)
    grad_out = as_float32(grad_out, "grad_out", be)
    x4, unbatched = _nchw(x)
    oh, ow = _adaptive_size(x4.shape, output_size)
    n, c, h, w = (int(s) for s in x4.shape)
    check_shape(grad_out, _like_x((n, c, oh, ow), unbatched), "grad_out")
    grad_in = be.empty(x.shape)
    if grad_in.size:
        windowed = _as_windowed(x4.shape, oh, ow)
        if oh == 0 or ow == 0:
            grad_in[...] = 0
        elif (oh, ow) == (1, 1):
            be.run("global_avg_pool2d_backward", grad_out, grad_in, n * c, h * w)
        elif windowed is not None:
            be.run("avg_pool2d_backward", grad_out, grad_in, *windowed, True, 0.0)
        else:
            be.run("adaptive_avg_pool2d_backward", grad_out, grad_in, n * c, h, w, oh, ow)
    return grad_in


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """Max over PyTorch's adaptive windows (max_pool2d's NaN and tie rules); with return_indices,
    (y, int64 indices flat over H*W)."""
    be = backend_for(x=x)
    x = as_float32(x, "x", be)
    x4, unbatched = _nchw(x)
    return_indices = _flag(return_indices, "return_indices")
    oh, ow = _adaptive_size(x4.shape, output_size)
    n, c, h, w = (int(s) for s in x4.shape)
    y = be.empty((n, c, oh, ow))
    indices = be.empty((n, c, oh, ow), np.int64) if return_indices else None
    if y.size:
        windowed = _as_windowed(x4.shape, oh, ow)
        ix = 0 if indices is None else indices
        if windowed is not None:
            be.run("max_pool2d_forward", x4, y, ix, *windowed)
        else:
            be.run("adaptive_max_pool2d_forward", x4, y, ix, n * c, h, w, oh, ow)
    if return_indices:
        return _finish(y, unbatched), _finish(indices, unbatched)
    return _finish(y, unbatched)


def adaptive_max_pool2d_backward(grad_out, x, output_size, *, indices=None):
    """grad_out to each window's winner (recomputed from x, or from `indices`)."""
    be = backend_for(grad_out=grad_out, x=x, indices=indices)
    x = as_float32(x, "x", be)
    grad_out = as_float32(grad_out, "grad_out", be)
    x4, unbatched = _nchw(x)
    oh, ow = _adaptive_size(x4.shape, output_size)
    n, c, h, w = (int(s) for s in x4.shape)
    check_shape(grad_out, _like_x((n, c, oh, ow), unbatched), "grad_out")
    grad_in = be.empty(x.shape)
    if indices is not None:
        indices = _as_indices(indices, "indices", grad_out.shape, be)
    if grad_in.size:
        windowed = _as_windowed(x4.shape, oh, ow)
        if oh == 0 or ow == 0:
            grad_in[...] = 0
        elif indices is None:
            ws = be.empty((n, c, oh, ow), np.int64) if be.name == "cuda" else 0
            if windowed is not None:
                be.run("max_pool2d_backward", grad_out, x4, grad_in, ws, *windowed)
            else:
                be.run("adaptive_max_pool2d_backward", grad_out, x4, grad_in, ws, n * c, h, w, oh, ow)
        else:
            if windowed is not None:
                bad = be.run("max_pool2d_backward_indices", grad_out, indices, grad_in, *windowed)
            else:
                bad = be.run("adaptive_max_pool2d_backward_indices", grad_out, indices, grad_in, n * c, h, w, oh, ow)
            _bad_indices(bad, "indices", h * w, "positions in the H*W plane")
    return grad_in


# -------------------------------------------------------------------------------------- unpool

def _unpool_size(shape4, unbatched, kernel_size, stride, padding, output_size) -> tuple[int, int]:
    """PyTorch's _unpool_output_size, checked: (oh, ow)."""
    kh, kw = _size2(kernel_size, "kernel_size")
    if kh <= 0 or kw <= 0:
        raise ValueError(f"kernel_size must be positive, got {(kh, kw)}")
    sh, sw = _size2(stride, "stride", (kh, kw))
    if sh <= 0 or sw <= 0:
        raise ValueError(f"stride must be positive, got {(sh, sw)}")
    ph, pw = _size2(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {(ph, pw)}")
    h, w = int(shape4[2]), int(shape4[3])
    default = ((h - 1) * sh + kh - 2 * ph, (w - 1) * sw + kw - 2 * pw)
    if output_size is None:
        size = default
        if size[0] < 1 or size[1] < 1:
            raise ValueError(f"the output size (H-1)*stride + kernel_size - 2*padding is {size} for x of shape "
                             f"{_like_x(shape4, unbatched)}, kernel_size {(kh, kw)}, stride {(sh, sw)}, padding "
                             f"{(ph, pw)}: it must be positive")
    else:
        if not isinstance(output_size, (tuple, list)) or len(output_size) not in (2, 4):
            raise ValueError(f"output_size must be a sequence of 2 (H, W) or 4 (N, C, H, W) ints, got {output_size!r}")
        size = tuple(as_int(v, "output_size") for v in tuple(output_size)[-2:])
        for d, (o, base, s) in enumerate(zip(size, default, (sh, sw))):
            if not (base - s < o < base + s) or o < 0:
                raise ValueError(f"output_size {tuple(output_size)!r}: dim {d} must be non-negative and strictly "
                                 f"between {base - s} and {base + s} (from kernel_size, stride and padding), got {o}")
    planes = int(shape4[0]) * int(shape4[1])
    if planes * size[0] * size[1] > _ELEMENT_LIMIT or size[0] >= _EXTENT_LIMIT or size[1] >= _EXTENT_LIMIT:
        raise ValueError(f"the unpooled output {size} (from kernel_size {(kh, kw)}, stride {(sh, sw)}, "
                         f"output_size {output_size!r}) is too large")
    return size


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Zeros of the output size with x placed at `indices` (flat over the output's H*W), as PyTorch.
    The output size is (H-1)*stride + kernel_size - 2*padding, or output_size ((H, W) or (N, C, H, W)),
    which may differ from that by less than the stride."""
    be = backend_for(x=x, indices=indices)
    x = as_float32(x, "x", be)
    x4, unbatched = _nchw(x)
    indices = _as_indices(indices, "indices", x.shape, be)
    oh, ow = _unpool_size(x4.shape, unbatched, kernel_size, stride, padding, output_size)
    n, c, h, w = (int(s) for s in x4.shape)
    y = be.empty((n, c, oh, ow))
    if x4.size:
        bad = be.run("max_unpool2d_forward", x4, indices, y, n * c, h * w, oh * ow)
        _bad_indices(bad, "indices", oh * ow, f"positions in the {oh}x{ow} output plane")
    return _finish(y, unbatched)


def max_unpool2d_backward(grad_out, x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """grad_x = grad_out at `indices` (a gather)."""
    be = backend_for(grad_out=grad_out, x=x, indices=indices)
    x = as_float32(x, "x", be)
    grad_out = as_float32(grad_out, "grad_out", be)
    x4, unbatched = _nchw(x)
    indices = _as_indices(indices, "indices", x.shape, be)
    oh, ow = _unpool_size(x4.shape, unbatched, kernel_size, stride, padding, output_size)
    n, c, h, w = (int(s) for s in x4.shape)
    check_shape(grad_out, _like_x((n, c, oh, ow), unbatched), "grad_out")
    grad_x = be.empty(x.shape)
    if grad_x.size:
        bad = be.run("max_unpool2d_backward", grad_out, indices, grad_x, n * c, h * w, oh * ow)
        _bad_indices(bad, "indices", oh * ow, f"positions in the {oh}x{ow} output plane")
    return grad_x


# -------------------------------------------------------------------------------------- global

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
