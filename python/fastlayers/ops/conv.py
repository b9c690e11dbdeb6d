"""Convolution: conv2d and conv1d (a thin layer over conv2d with H = 1), forward and backward.

The kernels (csrc/cpu/conv.*) are im2col + GEMM and take a caller-owned workspace; this module
keeps one grow-only workspace per backend and per Python thread, so repeated calls reuse pages
that are already mapped instead of faulting in fresh ones on every call.
"""

from __future__ import annotations

import threading

from .._backend import backend_for
from .._checks import (as_float32, as_index, as_index_pair, check_ndim, check_nonnegative, check_positive,
                       check_shape)

__all__ = ["conv2d", "conv2d_backward", "conv1d", "conv1d_backward"]

_FORWARD, _BACKWARD_DATA, _BACKWARD_WEIGHT = 0, 1, 2

# Per thread: two Python threads running convolutions at once must not share a workspace.
_workspaces = threading.local()


def _workspace(be, pass_, shape):
    """A float32 buffer of at least the size the kernel asks for. CPU: grow-only, reused across calls
    (per Python thread). GPU: taken from CuPy's stream-ordered pool for this call (Backend.workspace),
    so devices and streams never share one."""
    if be.name != "cpu":
        ws = be.workspace("conv2d_workspace_floats", shape, pass_, 1)
        return ws if ws[1] else (0, 0)
    threads = _threads(be)
    need = int(be.run("conv2d_workspace_floats", shape, pass_, threads)) if be.has_kernel("conv2d_workspace_floats") else 0
    cache = getattr(_workspaces, "by_backend", None)
    if cache is None:
        cache = _workspaces.by_backend = {}
    ws = cache.get(be.name)
    if ws is None or ws.size < max(need, 1):
        ws = cache[be.name] = be.empty((max(need, 1),))
    return ws, int(ws.size)


def _threads(be) -> int:
    if be.name != "cpu":
        return 1
    from .. import _cpu

    return _cpu.get_num_threads()


# Every extent and product the conv kernels form stays at or below this many elements: checked
# here in exact integers, and again by the bindings (csrc/common/conv_shape.h, kMaxConvElements).
# 2**48 floats is a petabyte, past any real tensor, and leaves 2**15 of headroom below int64 for
# the small factors and sums in the kernels' index arithmetic.
MAX_ELEMENTS = 2**48


def _geometry(x, w, stride, padding, dilation, groups):
    """Checks the arguments and returns the kernels' 16-int shape tuple
    (N, C, H, W, K, R, S, P, Q, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups).

    Every size is an int64 and every derived size (padded extents, output size, the im2col matrix,
    the output and weight element counts) is at most MAX_ELEMENTS, so the kernels' index
    arithmetic cannot overflow. A stride longer than the padded extent leaves one output position
    on that axis, where the stride is never applied: it is clamped to that extent before it reaches
    the kernels (and a dilation with a one-tap kernel axis to 1), which changes no result."""
    check_ndim(x, 4, "x", "(N, C, H, W)")
    check_ndim(w, 4, "w", "(K, C/groups, R, S)")
    sh, sw = as_index_pair(stride, "stride")
    ph, pw = as_index_pair(padding, "padding")
    dh, dw = as_index_pair(dilation, "dilation")
    groups = as_index(groups, "groups")
    check_positive((sh, sw), "stride")
    check_nonnegative((ph, pw), "padding")
    check_positive((dh, dw), "dilation")
    check_positive(groups, "groups")
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    if K <= 0 or Cg <= 0 or R <= 0 or S <= 0:
        raise ValueError(f"w must have positive sizes (K, C/groups, R, S), got {tuple(w.shape)}")
    if C <= 0 or H <= 0 or W <= 0:
        raise ValueError(f"x must have positive sizes C, H and W (only the batch N may be 0), got {tuple(x.shape)}")
    if C % groups:
        raise ValueError(f"x has C={C} channels, which groups={groups} does not divide")
    if K % groups:
        raise ValueError(f"w has K={K} output channels, which groups={groups} does not divide")
    if C != Cg * groups:
        raise ValueError(f"w.shape[1] must be C/groups = {C}/{groups} = {C // groups}, got {Cg} "
                         f"(x shape {tuple(x.shape)}, w shape {tuple(w.shape)})")
    Hp, Wp = H + 2 * ph, W + 2 * pw
    if Hp > MAX_ELEMENTS or Wp > MAX_ELEMENTS:
        raise ValueError(f"padding={(ph, pw)} is too large: the padded input is {Hp}x{Wp} (input {H}x{W}), "
                         f"more than the {MAX_ELEMENTS} (2**48) positions per axis fastlayers supports")
    eh, ew = dh * (R - 1) + 1, dw * (S - 1) + 1
    if eh > Hp or ew > Wp:
        raise ValueError(
            f"w: the kernel {R}x{S} (dilation {dh}x{dw}, extent {eh}x{ew}) "
            f"is larger than the padded input {Hp}x{Wp} (input {H}x{W}, padding {ph}x{pw}); "
            f"the output would be empty")
    P, Q = (Hp - eh) // sh + 1, (Wp - ew) // sw + 1
    # One output row (column) when the stride passes the last window start: the stride is unused.
    if sh > Hp - eh:
        sh = Hp - eh + 1
    if sw > Wp - ew:
        sw = Wp - ew + 1
    if R == 1:
        dh = 1
    if S == 1:
        dw = 1
    CRS, KPQ = Cg * R * S, K * P * Q
    if (C if C > K else K) * Hp * Wp > MAX_ELEMENTS or CRS * P * Q > MAX_ELEMENTS or N * KPQ > MAX_ELEMENTS or \
            N * C * H * W > MAX_ELEMENTS or K * CRS > MAX_ELEMENTS:
        _too_large(x, w, ph, pw, N, C, H, W, K, Cg, R, S, P, Q, Hp, Wp)
    return (N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups)


def _too_large(x, w, ph, pw, N, C, H, W, K, Cg, R, S, P, Q, Hp, Wp):
    for what, count in (("the padded input planes (max(C, K) x padded H x padded W)", max(C, K) * Hp * Wp),
                        ("one image's im2col matrix (C/groups*R*S x P*Q)", Cg * R * S * P * Q),
                        ("the output (N x K x P x Q)", N * K * P * Q),
                        ("the input (N x C x H x W)", N * C * H * W),
                        ("the weights (K x C/groups x R x S)", K * Cg * R * S)):
        if count > MAX_ELEMENTS:
            raise ValueError(f"x shape {tuple(x.shape)}, w shape {tuple(w.shape)}, padding {(ph, pw)}: "
                             f"{what} would hold {count} elements, more than the {MAX_ELEMENTS} (2**48) "
                             f"fastlayers supports")


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation of NCHW x with w (K, C/groups, R, S), plus b (K,) when given.

    Output (N, K, P, Q) with P = (H + 2*pad_h - dil_h*(R-1) - 1)//stride_h + 1 (likewise Q), as PyTorch.
    """
    be = backend_for(x=x, w=w, b=b)
    x = as_float32(x, "x", be)
    w = as_float32(w, "w", be)
    shape = _geometry(x, w, stride, padding, dilation, groups)
    N, K, P, Q = shape[0], shape[4], shape[7], shape[8]
    if b is not None:
        b = as_float32(b, "b", be)
        check_shape(b, (K,), "b")
    y = be.empty((N, K, P, Q))
    ws, ws_floats = _workspace(be, _FORWARD, shape)
    be.run("conv2d_forward", x, w, b if b is not None else 0, y, ws, ws_floats, shape)
    return y


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def conv2d_backward(grad_out, x, w, stride=1, padding=0, dilation=1, groups=1, *, need_grad_x=True):
    """(grad_x, grad_w, grad_b) of conv2d; grad_b is grad_out summed over N, H, W.

    need_grad_x=False skips the backward-data pass and returns None for grad_x (a network's input
    layer never uses it)."""
    be = backend_for(grad_out=grad_out, x=x, w=w)
    need_grad_x = _check_flag(need_grad_x, "need_grad_x")
    x = as_float32(x, "x", be)
    w = as_float32(w, "w", be)
    shape = _geometry(x, w, stride, padding, dilation, groups)
    N, C, H, W, K = shape[:5]
    R, S, P, Q = shape[5:9]
    grad_out = as_float32(grad_out, "grad_out", be)
    check_shape(grad_out, (N, K, P, Q), "grad_out")
    grad_x = None
    grad_w = be.empty(tuple(int(v) for v in w.shape))
    grad_b = be.empty((K,))
    if need_grad_x:
        grad_x = be.empty((N, C, H, W))
        ws, ws_floats = _workspace(be, _BACKWARD_DATA, shape)
        be.run("conv2d_backward_data", grad_out, w, grad_x, ws, ws_floats, shape)
    ws, ws_floats = _workspace(be, _BACKWARD_WEIGHT, shape)
    be.run("conv2d_backward_weight", grad_out, x, grad_w, grad_b, ws, ws_floats, shape)
    return grad_x, grad_w, grad_b


def _single(value, name: str) -> int:
    """conv1d's stride/padding/dilation: an int or a 1-tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{name} must be an int or a 1-tuple for conv1d, got {value!r}")
        value = value[0]
    return as_index(value, name)


def _as_2d(x, w, stride, padding, dilation, be):
    x = as_float32(x, "x", be)
    w = as_float32(w, "w", be)
    check_ndim(x, 3, "x", "(N, C, L)")
    check_ndim(w, 3, "w", "(K, C/groups, S)")
    params = ((1, _single(stride, "stride")), (0, _single(padding, "padding")), (1, _single(dilation, "dilation")))
    return x[:, :, None, :], w[:, :, None, :], params


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution of (N, C, L) x with w (K, C/groups, S): conv2d with H = 1."""
    be = backend_for(x=x, w=w, b=b)
    x2, w2, (st, pad, dil) = _as_2d(x, w, stride, padding, dilation, be)
    return conv2d(x2, w2, b, st, pad, dil, groups)[:, :, 0, :]


def conv1d_backward(grad_out, x, w, stride=1, padding=0, dilation=1, groups=1, *, need_grad_x=True):
    """(grad_x, grad_w, grad_b) of conv1d; grad_x is None when need_grad_x=False."""
    be = backend_for(grad_out=grad_out, x=x, w=w)
    need_grad_x = _check_flag(need_grad_x, "need_grad_x")
    x2, w2, (st, pad, dil) = _as_2d(x, w, stride, padding, dilation, be)
    shape = _geometry(x2, w2, st, pad, dil, groups)
    grad_out = as_float32(grad_out, "grad_out", be)
    check_shape(grad_out, (shape[0], shape[4], shape[8]), "grad_out")
    gx, gw, gb = conv2d_backward(grad_out[:, :, None, :], x2, w2, st, pad, dil, groups, need_grad_x=need_grad_x)
    return (gx[:, :, 0, :] if gx is not None else None), gw[:, :, 0, :], gb

