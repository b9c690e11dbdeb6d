"""NumPy reference: interpolate (torch.nn.functional.interpolate) and its backward, modes "nearest"
(3-D (N, C, L) and 4-D (N, C, H, W) input), "linear" (3-D) and "bilinear" (4-D).

Output size: `size`, or floor(in * scale_factor) per axis. Each axis maps output index o to input
cells as PyTorch's CPU kernels do, in float32 arithmetic (so the chosen cells are the same integers):
- scale = (in - 1)/(out - 1) (0 if out == 1) for align_corners=True, else 1/scale_factor when a scale
  factor is given and recompute_scale_factor is not True, else in/out;
- nearest: o when out == in, o // 2 when out == 2*in, else min(floor(o * scale), in - 1) (PyTorch's
  1-D nearest kernel skips the two shortcuts and always uses the formula);
- linear: o with weight 1 when out == in; else src = scale*o (align_corners) or
  max(scale*(o + 0.5) - 0.5, 0), i0 = min(floor(src), in - 1), i1 = i0 + 1 (i0 at the edge),
  weights 1 - l and l with l = clamp(src - i0, 0, 1).
The result is A_h · x · A_wᵀ per plane with those per-axis interpolation matrices; the backward is
A_hᵀ · g · A_w. The argument checks live in fastlayers.ops.interpolate.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["interpolate", "interpolate_backward"]

_F = np.float32


def _out_sizes(spatial, size, scale_factor, recompute_scale_factor):
    dim = len(spatial)
    if size is not None:
        sizes = [int(s) for s in size] if isinstance(size, (tuple, list)) else [int(size)] * dim
        return sizes, [None] * dim
    factors = [float(s) for s in scale_factor] if isinstance(scale_factor, (tuple, list)) else [float(scale_factor)] * dim
    sizes = [math.floor(n * f) for n, f in zip(spatial, factors)]
    return sizes, ([None] * dim if recompute_scale_factor else factors)


def _scale(n_in, n_out, factor, align_corners, linear):
    if linear and align_corners:
        return _F(n_in - 1) / _F(n_out - 1) if n_out > 1 else _F(0)
    if factor is not None and factor > 0:
        return _F(1.0 / factor)
    return _F(n_in) / _F(n_out)


def _matrix(n_in, n_out, factor, mode, align_corners, dt, shortcuts):
    """The (n_out, n_in) interpolation matrix of one axis."""
    a = np.zeros((n_out, n_in), dt)
    o = np.arange(n_out)
    linear = mode != "nearest"
    s = _scale(n_in, n_out, factor, align_corners, linear)
    if n_out == n_in and (linear or shortcuts):
        a[o, o] = 1
        return a
    if not linear:
        formula = np.minimum(np.floor(o.astype(_F) * s).astype(np.int64), n_in - 1)
        src = o // 2 if shortcuts and n_out == 2 * n_in else formula
        a[o, src] = 1
        return a
    of = o.astype(_F)
    real = s * of if align_corners else np.maximum(s * (of + _F(0.5)) - _F(0.5), _F(0))
    i0 = np.minimum(np.floor(real).astype(np.int64), n_in - 1)
    lam = np.clip(real - i0.astype(_F), _F(0), _F(1))
    i1 = i0 + (i0 < n_in - 1)
    np.add.at(a, (o, i0), (_F(1) - lam).astype(dt))
    np.add.at(a, (o, i1), lam.astype(dt))
    return a


def _matrices(x, size, scale_factor, mode, align_corners, recompute_scale_factor, dt):
    spatial = x.shape[2:]
    sizes, factors = _out_sizes(spatial, size, scale_factor, recompute_scale_factor)
    mats = [_matrix(n, m, f, mode, bool(align_corners), dt, x.ndim == 4) for n, m, f in zip(spatial, sizes, factors)]
    return mats


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    x = np.asarray(x)
    dt = np.float64 if x.dtype == np.float64 else np.float32
    x = x.astype(dt)
    mats = _matrices(x, size, scale_factor, mode, align_corners, recompute_scale_factor, dt)
    if x.ndim == 3:
        return np.einsum("ol,ncl->nco", mats[0], x)
    return np.einsum("ph,nchw,qw->ncpq", mats[0], x, mats[1])


def interpolate_backward(grad_out, x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                         recompute_scale_factor=None, antialias=False):
    x, g = np.asarray(x), np.asarray(grad_out)
    dt = np.float64 if np.float64 in (x.dtype, g.dtype) else np.float32
    mats = _matrices(x, size, scale_factor, mode, align_corners, recompute_scale_factor, dt)
    g = g.astype(dt)
    if x.ndim == 3:
        return np.einsum("ol,nco->ncl", mats[0], g)
    return np.einsum("ph,ncpq,qw->nchw", mats[0], g, mats[1])
