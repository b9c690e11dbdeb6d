"""interpolate (torch.nn.functional.interpolate) and its backward, on the CPU and CUDA kernels
(csrc/*/interpolate.*): modes "nearest" on (N, C, L) and (N, C, H, W), "linear" on (N, C, L),
"bilinear" on (N, C, H, W), align_corners both ways, size or scale_factor (with PyTorch's
recompute_scale_factor), every check PyTorch makes (as ValueError/TypeError naming the argument).

The source cells are PyTorch's CPU choice to the integer: the per-axis scales are computed here in
float32 exactly as PyTorch computes them and the kernels evaluate the same float32 index formulas
(csrc/common/interp_geometry.h). antialias=True is not supported.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._backend import backend_for
from .._checks import as_float32, check_shape
from .conv import MAX_ELEMENTS

__all__ = ["interpolate", "interpolate_backward"]

_MODES = {"nearest": 0, "linear": 1, "bilinear": 1}
_F = np.float32


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def plan(shape, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
         antialias=False):
    """Checks the arguments against x's shape as PyTorch does and returns
    (output shape, kernel geometry tuple (planes, in_h, in_w, out_h, out_w, mode, align, scale_h, scale_w))."""
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"mode must be 'nearest', 'linear' (3-D input) or 'bilinear' (4-D input), got {mode!r} "
                         f"(fastlayers does not implement the other torch modes)")
    if mode == "nearest":
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear "
                             f"(mode='nearest' takes align_corners=None), got align_corners={align_corners!r}")
        align = False
    else:
        if align_corners is not None and not isinstance(align_corners, (bool, np.bool_)):
            raise TypeError(f"align_corners must be None or a bool, got {type(align_corners).__name__} {align_corners!r}")
        align = bool(align_corners)
    if not isinstance(antialias, (bool, np.bool_)):
        raise TypeError(f"antialias must be a bool, got {antialias!r}")
    if antialias:
        raise ValueError("antialias=True is not supported by fastlayers.interpolate (only PyTorch's default False)")
    ndim = len(shape)
    if ndim not in (3, 4):
        raise ValueError(f"x must be 3-D (N, C, L) or 4-D (N, C, H, W), got shape {tuple(shape)}")
    if mode == "bilinear" and ndim != 4:
        raise ValueError(f"mode='bilinear' needs 4-D (N, C, H, W) input, got x of shape {tuple(shape)} "
                         f"(use mode='linear' for 3-D input)")
    if mode == "linear" and ndim != 3:
        raise ValueError(f"mode='linear' needs 3-D (N, C, L) input, got x of shape {tuple(shape)} "
                         f"(use mode='bilinear' for 4-D input)")
    if shape[1] == 0 or any(s == 0 for s in shape[2:]):
        raise ValueError(f"x must have non-empty channel and spatial dimensions (only the batch may be 0), "
                         f"got shape {tuple(shape)}")
    spatial = [int(s) for s in shape[2:]]
    dim = len(spatial)
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined, got both")
    if size is None and scale_factor is None:
        raise ValueError("either size or scale_factor should be defined, got neither")
    if recompute_scale_factor is not None and not isinstance(recompute_scale_factor, (bool, np.bool_)):
        raise TypeError(f"recompute_scale_factor must be None or a bool, got {recompute_scale_factor!r}")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size")
        sizes = list(size) if isinstance(size, (tuple, list)) else [size] * dim
        if len(sizes) != dim:
            raise ValueError(f"size must have one entry per spatial dimension of x ({dim}: {spatial}), got {size!r}")
        if not all(_is_int(s) for s in sizes):
            raise TypeError(f"size must be an int or a tuple of ints, got {size!r}")
        out = [int(s) for s in sizes]
        factors = [None] * dim
        what = f"size={size!r}"
    else:
        factors = list(scale_factor) if isinstance(scale_factor, (tuple, list)) else [scale_factor] * dim
        if len(factors) != dim:
            raise ValueError(f"scale_factor must have one entry per spatial dimension of x ({dim}: {spatial}), "
                             f"got {scale_factor!r}")
        if not all(isinstance(f, numbers.Real) and not isinstance(f, bool) for f in factors):
            raise TypeError(f"scale_factor must be a number or a tuple of numbers, got {scale_factor!r}")
        factors = [float(f) for f in factors]
        if not all(math.isfinite(f) for f in factors):
            raise ValueError(f"scale_factor must be finite, got {scale_factor!r}")
        out = [math.floor(n * f) for n, f in zip(spatial, factors)]
        if recompute_scale_factor:
            factors = [None] * dim
        what = f"scale_factor={scale_factor!r}"
    if any(o <= 0 for o in out):
        raise ValueError(f"output sizes must be greater than 0: x's spatial sizes {spatial} with {what} give {out}")
    planes = int(shape[0]) * int(shape[1])
    if math.prod(out) * max(planes, 1) > MAX_ELEMENTS:  # the kernels' element limit, as conv's
        raise ValueError(f"{what} gives an output of {planes} planes of {out}: more than the {MAX_ELEMENTS} "
                         f"(2**48) elements fastlayers supports")
    scales = []
    for n, o, f in zip(spatial, out, factors):
        if mode != "nearest" and align:
            s = _F(n - 1) / _F(o - 1) if o > 1 else _F(0)
        elif f is not None and f > 0:
            s = _F(1.0 / f)
        else:
            s = _F(n) / _F(o)
        scales.append(float(s))
    if dim == 1:  # PyTorch's 1-D nearest kernel has no equal/double-size shortcuts: mode code 2
        geom = (planes, 1, spatial[0], 1, out[0], 2 if mode == "nearest" else 1, align, 1.0, scales[0])
    else:
        geom = (planes, spatial[0], spatial[1], out[0], out[1], _MODES[mode], align, scales[0], scales[1])
    return (int(shape[0]), int(shape[1]), *out), geom


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """x resized to `size` (or by `scale_factor`) as torch.nn.functional.interpolate; a new float32 array."""
    be = backend_for(x=x)
    x = as_float32(x, "x", be)
    out_shape, geom = plan(tuple(x.shape), size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    y = be.empty(out_shape)
    if y.size:
        be.run("interpolate_forward", x, y, *geom)
    return y


def interpolate_backward(grad_out, x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                         recompute_scale_factor=None, antialias=False):
    """d/dx of interpolate: each input cell gathers the weighted gradients of the outputs that read it."""
    be = backend_for(grad_out=grad_out, x=x)
    x = as_float32(x, "x", be)
    out_shape, geom = plan(tuple(x.shape), size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    grad_out = as_float32(grad_out, "grad_out", be)
    check_shape(grad_out, out_shape, "grad_out")
    gx = be.empty(x.shape)
    if gx.size:
        be.run("interpolate_backward", grad_out, gx, *geom)
    return gx
