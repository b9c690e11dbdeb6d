"""2-D transposed convolution, forward and backward, on the conv2d kernels.

conv_transpose2d(x, w) is the input gradient of a conv2d whose output has x's shape: its forward runs
conv2d's backward-data kernel, its backward-data conv2d's forward and its weight gradient conv2d's
backward-weight with the roles of x and grad_out swapped (csrc/cpu/conv_transpose.h), so it runs on
the same Winograd, direct and GEMM paths as conv2d. w is (C_in, C_out/groups, R, S), as PyTorch.

Output size per axis: (H - 1)*stride - 2*padding + dilation*(R - 1) + output_padding + 1, with
output_padding smaller than stride or dilation (PyTorch's rule). When output_padding >= stride
(possible only with a larger dilation) the conv2d that output size implies has more rows than x:
x is extended with zero rows for it (and the input gradient cut back). Geometry is checked with
exact integers as in ops/conv3d.py (padded extents below 2**31, a stride that cannot matter
passed as 1).
"""

from __future__ import annotations

from .._backend import backend_for
from .._checks import as_float32, as_int, check_nonnegative, check_positive, check_shape
from .conv3d import MAX_EXTENT, as_tuple, check_flag, check_output_size, workspace

__all__ = ["conv_transpose2d", "conv_transpose2d_backward"]

_FORWARD, _BACKWARD_DATA, _BACKWARD_WEIGHT = 0, 1, 2

# Largest padded plane of the underlying conv2d (some of its direct kernels materialise it per image).
_MAX_PLANE = 2**40


def _geometry(x, w, stride, padding, output_padding, groups, dilation):
    """The 16-int conv2d shape tuple (csrc/common/conv_shape.h) of the conv2d whose input gradient
    this is, and the rows / columns (P, Q) of x that conv2d's output has (>= x's, see the module)."""
    if w.ndim != 4:
        raise ValueError(f"w must be 4-D (C_in, C_out/groups, R, S), got shape {tuple(w.shape)}")
    st, pad = as_tuple(stride, 2, "stride"), as_tuple(padding, 2, "padding")
    opad, dil = as_tuple(output_padding, 2, "output_padding"), as_tuple(dilation, 2, "dilation")
    groups = as_int(groups, "groups")
    check_positive(st, "stride")
    check_nonnegative(pad, "padding")
    check_nonnegative(opad, "output_padding")
    check_positive(dil, "dilation")
    check_positive(groups, "groups")
    N, Cin, H, W = (int(v) for v in x.shape)
    Cin_w, Cog, R, S = (int(v) for v in w.shape)
    if min(Cin_w, Cog, R, S) <= 0:
        raise ValueError(f"w must have positive sizes (C_in, C_out/groups, R, S), got {tuple(w.shape)}")
    if min(H, W) <= 0:
        raise ValueError(f"x must have positive H and W, got shape {tuple(x.shape)}")
    if Cin_w != Cin:
        raise ValueError(f"w.shape[0] must be x's C_in = {Cin}, got {Cin_w} (x shape {tuple(x.shape)}, "
                         f"w shape {tuple(w.shape)})")
    if Cin % groups:
        raise ValueError(f"x has C_in={Cin} channels, which groups={groups} does not divide")
    for i, axis in enumerate(("height", "width")):
        if opad[i] >= max(st[i], dil[i]):
            raise ValueError(f"output_padding must be smaller than either stride or dilation, got output_padding="
                             f"{opad[i]}, stride={st[i]}, dilation={dil[i]} along the {axis}")
    out, rows, strides, dils = [], [], [], []
    for n, k, s, p, op, d, axis in zip((H, W), (R, S), st, pad, opad, dil, ("height", "width")):
        size = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        if size <= 0:
            raise ValueError(f"padding: the output {axis} ({n} - 1)*{s} - 2*{p} + {d}*({k} - 1) + {op} + 1 = {size} "
                             f"would be empty")
        extent = size + 2 * p  # the conv2d's padded input
        if extent >= MAX_EXTENT:
            raise ValueError(f"stride / padding: the transposed convolution's padded {axis} extent {extent} is too "
                             f"large (at most {MAX_EXTENT - 1} supported)")
        m = n + op // s  # conv2d's output size for `size`: n, or more when output_padding >= stride
        out.append(size)
        rows.append(m)
        # One row: the stride never multiplies; op + 1 keeps conv2d's row count at 1 and the kernels small.
        strides.append(s if m > 1 else min(s, op + 1))
        dils.append(d if k > 1 else 1)
    if (out[0] + 2 * pad[0]) * (out[1] + 2 * pad[1]) > _MAX_PLANE:
        raise ValueError(f"padding: the padded output plane {out[0] + 2 * pad[0]} x {out[1] + 2 * pad[1]} is too "
                         f"large (at most {_MAX_PLANE} cells)")
    C = Cog * groups
    check_output_size((N, C, out[0], out[1]), "stride / padding / output_padding")
    shape = (N, C, out[0], out[1], Cin, R, S, rows[0], rows[1], strides[0], strides[1], pad[0], pad[1],
             dils[0], dils[1], groups)
    return shape


def _batched(x):
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C_in, H, W) or 3-D unbatched, got shape {tuple(x.shape)}")
    return x, False


def _extend(be, a, rows, cols):
    """a (N, C, h, w) zero-extended to (N, C, rows, cols) (a itself when already that size)."""
    N, C, h, w = a.shape
    if (h, w) == (rows, cols):
        return a
    out = be.zeros((N, C, rows, cols))
    out[:, :, :h, :w] = a
    return out


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution of (N, C_in, H, W) x with w (C_in, C_out/groups, R, S), plus b (C_out,)."""
    be = backend_for(x=x, w=w, b=b)
    x, unbatched = _batched(as_float32(x, "x", be))
    w = as_float32(w, "w", be)
    shape = _geometry(x, w, stride, padding, output_padding, groups, dilation)
    N, C, Ho, Wo = shape[:4]
    if b is not None:
        b = as_float32(b, "b", be)
        check_shape(b, (C,), "b")
    y = be.empty((N, C, Ho, Wo))
    if N:
        xe = _extend(be, x, shape[7], shape[8])
        ws, ws_floats = workspace(be, "conv_transpose2d_workspace_floats", _FORWARD, shape)
        be.run("conv_transpose2d_forward", xe, w, b if b is not None else 0, y, ws, ws_floats, shape)
    return y[0] if unbatched else y


def conv_transpose2d_backward(grad_out, x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                              need_grad_x=True):
    """(grad_x, grad_w, grad_b) of conv_transpose2d; grad_b is grad_out summed over N, H, W.
    need_grad_x=False skips the input gradient (None)."""
    be = backend_for(grad_out=grad_out, x=x, w=w)
    need_grad_x = check_flag(need_grad_x, "need_grad_x")
    x, unbatched = _batched(as_float32(x, "x", be))
    w = as_float32(w, "w", be)
    shape = _geometry(x, w, stride, padding, output_padding, groups, dilation)
    N, C, Ho, Wo = shape[:4]
    grad_out = as_float32(grad_out, "grad_out", be)
    check_shape(grad_out, (C, Ho, Wo) if unbatched else (N, C, Ho, Wo), "grad_out")
    if unbatched:
        grad_out = grad_out[None]
    H, W = int(x.shape[2]), int(x.shape[3])
    rows, cols = shape[7], shape[8]
    grad_x = None
    grad_w = be.empty(tuple(int(v) for v in w.shape))
    grad_b = be.empty((C,))
    if N == 0:
        grad_w[...] = 0
        grad_b[...] = 0
        grad_x = be.empty(x.shape) if need_grad_x else None
    else:
        if need_grad_x:
            gx = be.empty((N, x.shape[1], rows, cols))
            ws, ws_floats = workspace(be, "conv_transpose2d_workspace_floats", _BACKWARD_DATA, shape)
            be.run("conv_transpose2d_backward_data", grad_out, w, gx, ws, ws_floats, shape)
            grad_x = gx if (rows, cols) == (H, W) else be.xp.ascontiguousarray(gx[:, :, :H, :W])
        xe = _extend(be, x, rows, cols)
        ws, ws_floats = workspace(be, "conv_transpose2d_workspace_floats", _BACKWARD_WEIGHT, shape)
        be.run("conv_transpose2d_backward_weight", grad_out, xe, grad_w, grad_b, ws, ws_floats, shape)
    if unbatched and grad_x is not None:
        grad_x = grad_x[0]
    return grad_x, grad_w, grad_b
