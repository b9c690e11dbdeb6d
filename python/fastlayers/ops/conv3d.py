"""3-D convolution over NCDHW input (w (K, C/groups, T, R, S), as PyTorch), forward and backward.

The CPU kernels (csrc/cpu/conv3d*.cpp) run Winograd over height and width for 3x3 in-plane kernels
with unit strides and im2col / implicit GEMM on our sgemm otherwise; they take a caller-owned
workspace, which this module keeps per backend and per Python thread (grow-only, reused across
calls). Unbatched (C, D, H, W) input is accepted, as torch.nn.functional.conv3d does.

Geometry is checked with Python's exact integers before anything reaches a kernel: every padded
extent must stay below 2**31 (else a ValueError naming `padding`), an output of one position along
an axis makes that axis's stride irrelevant (it is passed clamped to the padded extent, so any
stride up to 2**63 - 1 and beyond gives the right answer), and likewise a kernel of size 1 makes its dilation irrelevant.
Everything the kernels then form (output * stride - padding + tap * dilation) stays within one
padded extent, far from 64-bit overflow.
"""

from __future__ import annotations

import threading

from .._backend import backend_for
from .._checks import as_float32, as_int, check_nonnegative, check_positive, check_shape

__all__ = ["conv3d", "conv3d_backward"]

_FORWARD, _BACKWARD_DATA, _BACKWARD_WEIGHT = 0, 1, 2

# Largest padded extent along one axis (input + 2 * padding) the kernels take; larger is a ValueError.
MAX_EXTENT = 2**31
# Largest output (elements) an op allocates; larger is a ValueError rather than a failed allocation.
MAX_OUTPUT = 2**40

_workspaces = threading.local()


def workspace(be, sizer: str, pass_: int, shape):
    """A float32 buffer of at least what `sizer` (a *_workspace_floats kernel) asks for: grow-only,
    reused across calls, one per backend, sizer and Python thread."""
    threads = 1
    if be.name == "cpu":
        from .. import _cpu

        threads = _cpu.get_num_threads()
    need = int(be.run(sizer, shape, pass_, threads)) if be.has_kernel(sizer) else 0
    cache = getattr(_workspaces, "by_backend", None)
    if cache is None:
        cache = _workspaces.by_backend = {}
    ws = cache.get((be.name, sizer))
    if ws is None or ws.size < max(need, 1):
        ws = cache[(be.name, sizer)] = be.empty((max(need, 1),))
    return ws, int(ws.size)


def as_tuple(value, n: int, name: str) -> tuple:
    """An int or a sequence of n ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
        return tuple(as_int(v, name) for v in value)
    v = as_int(value, name)
    return (v,) * n


def check_flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def axis_geometry(n: int, k: int, s: int, p: int, d: int, axis: str):
    """Output size and the (stride, dilation) to pass to the kernels along one axis of a
    convolution: n input cells, kernel k, stride s, padding p, dilation d (exact integers)."""
    extent = n + 2 * p
    if extent >= MAX_EXTENT:
        raise ValueError(f"padding: the padded {axis} extent {n} + 2*{p} = {extent} is too large "
                         f"(at most {MAX_EXTENT - 1} supported)")
    span = d * (k - 1) + 1
    if span > extent:
        raise ValueError(f"{'dilation' if d > 1 else 'w'}: the kernel's {axis} extent {span} (size {k}, dilation {d}) "
                         f"is larger than the "
                         f"padded input {extent} (input {n}, padding {p}); the output would be empty")
    out = (extent - span) // s + 1
    # One output: the stride never multiplies; any stride above extent - span gives that one output.
    return out, (s if out > 1 else min(s, extent - span + 1)), (d if k > 1 else 1)


def check_output_size(shape, what: str):
    total = 1
    for v in shape:
        total *= v
    if total > MAX_OUTPUT:
        raise ValueError(f"{what}: the output {tuple(shape)} would hold {total} elements (at most {MAX_OUTPUT})")


def _batched(x, ndim: int, layout: str):
    """(x with a batch axis, whether it was unbatched); x has ndim or ndim - 1 dimensions."""
    if x.ndim == ndim - 1:
        return x[None], True
    if x.ndim != ndim:
        raise ValueError(f"x must be {ndim}-D {layout} or {ndim - 1}-D unbatched, got shape {tuple(x.shape)}")
    return x, False


def _geometry(x, w, stride, padding, dilation, groups):
    """Checks the arguments and returns the kernels' 22-int shape tuple (csrc/common/conv3d_shape.h)."""
    if w.ndim != 5:
        raise ValueError(f"w must be 5-D (K, C/groups, T, R, S), got shape {tuple(w.shape)}")
    st, pad, dil = as_tuple(stride, 3, "stride"), as_tuple(padding, 3, "padding"), as_tuple(dilation, 3, "dilation")
    groups = as_int(groups, "groups")
    check_positive(st, "stride")
    check_nonnegative(pad, "padding")
    check_positive(dil, "dilation")
    check_positive(groups, "groups")
    N, C, D, H, W = (int(v) for v in x.shape)
    K, Cg, T, R, S = (int(v) for v in w.shape)
    if min(K, Cg, T, R, S) <= 0:
        raise ValueError(f"w must have positive sizes (K, C/groups, T, R, S), got {tuple(w.shape)}")
    if min(D, H, W) <= 0:
        raise ValueError(f"x must have positive D, H, W, got shape {tuple(x.shape)}")
    if C % groups:
        raise ValueError(f"x has C={C} channels, which groups={groups} does not divide")
    if K % groups:
        raise ValueError(f"w has K={K} output channels, which groups={groups} does not divide")
    if C != Cg * groups:
        raise ValueError(f"w.shape[1] must be C/groups = {C}/{groups} = {C // groups}, got {Cg} "
                         f"(x shape {tuple(x.shape)}, w shape {tuple(w.shape)})")
    dims = [axis_geometry(n, k, s, p, d, a)
            for n, k, s, p, d, a in zip((D, H, W), (T, R, S), st, pad, dil, ("depth", "height", "width"))]
    (OD, sd, dd), (P, sh, dh), (Q, sw, dw) = dims
    check_output_size((N, K, OD, P, Q), "padding")
    return (N, C, D, H, W, K, T, R, S, OD, P, Q, sd, sh, sw, pad[0], pad[1], pad[2], dd, dh, dw, groups)


def conv3d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D cross-correlation of NCDHW x with w (K, C/groups, T, R, S), plus b (K,) when given.

    Output (N, K, OD, P, Q), OD = (D + 2*pad_d - dil_d*(T-1) - 1)//stride_d + 1 (likewise P, Q), as
    PyTorch; stride, padding, dilation: an int or a triple (depth, height, width)."""
    be = backend_for(x=x, w=w, b=b)
    x, unbatched = _batched(as_float32(x, "x", be), 5, "(N, C, D, H, W)")
    w = as_float32(w, "w", be)
    shape = _geometry(x, w, stride, padding, dilation, groups)
    N, K, OD, P, Q = shape[0], shape[5], shape[9], shape[10], shape[11]
    if b is not None:
        b = as_float32(b, "b", be)
        check_shape(b, (K,), "b")
    y = be.empty((N, K, OD, P, Q))
    if N:
        ws, ws_floats = workspace(be, "conv3d_workspace_floats", _FORWARD, shape)
        be.run("conv3d_forward", x, w, b if b is not None else 0, y, ws, ws_floats, shape)
    return y[0] if unbatched else y


def conv3d_backward(grad_out, x, w, stride=1, padding=0, dilation=1, groups=1, *, need_grad_x=True):
    """(grad_x, grad_w, grad_b) of conv3d; grad_b is grad_out summed over N, D, H, W.

    need_grad_x=False skips the backward-data pass and returns None for grad_x."""
    be = backend_for(grad_out=grad_out, x=x, w=w)
    need_grad_x = check_flag(need_grad_x, "need_grad_x")
    x, unbatched = _batched(as_float32(x, "x", be), 5, "(N, C, D, H, W)")
    w = as_float32(w, "w", be)
    shape = _geometry(x, w, stride, padding, dilation, groups)
    N, K, OD, P, Q = shape[0], shape[5], shape[9], shape[10], shape[11]
    grad_out = as_float32(grad_out, "grad_out", be)
    check_shape(grad_out, (K, OD, P, Q) if unbatched else (N, K, OD, P, Q), "grad_out")
    if unbatched:
        grad_out = grad_out[None]
    grad_x = be.empty(x.shape) if need_grad_x else None
    grad_w = be.empty(tuple(int(v) for v in w.shape))
    grad_b = be.empty((K,))
    if N == 0:
        grad_w[...] = 0
        grad_b[...] = 0
    else:
        if need_grad_x:
            ws, ws_floats = workspace(be, "conv3d_workspace_floats", _BACKWARD_DATA, shape)
            be.run("conv3d_backward_data", grad_out, w, grad_x, ws, ws_floats, shape)
        ws, ws_floats = workspace(be, "conv3d_workspace_floats", _BACKWARD_WEIGHT, shape)
        be.run("conv3d_backward_weight", grad_out, x, grad_w, grad_b, ws, ws_floats, shape)
    if unbatched and grad_x is not None:
        grad_x = grad_x[0]
    return grad_x, grad_w, grad_b
