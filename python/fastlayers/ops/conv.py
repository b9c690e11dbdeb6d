"""Convolution: conv2d and conv1d (a thin layer over conv2d with H = 1), forward and backward.

Options handled here, at the wrapper level, before the kernels' 4-D geometry (_geometry) is built:
unbatched input ((C, H, W) for conv2d, (C, L) for conv1d: a batch of one, squeezed back),
padding="valid" / "same" (as PyTorch: for "same" each dimension needs dilation*(k-1) padding, the
left gets half rounded down and the right the rest; an uneven split pads the extra cell on the right
with the pad op first and gives the kernel the even part, as PyTorch does; stride > 1 is refused),
and padding_mode="reflect" | "replicate" | "circular" (torch.nn.Conv2d's padding_mode; F.conv2d
has none): the input is padded with fastlayers.pad on its own device and the kernel runs with
padding 0; the backward runs the kernel's backward on the padded input and pad_backward folds
grad_x back. padding_mode="zeros" (the default) is the kernels' own zero padding.

The kernels (csrc/cpu/conv.*) are im2col + GEMM and take a caller-owned workspace; this module
keeps one grow-only workspace per backend and per Python thread, so repeated calls reuse pages
that are already mapped instead of faulting in fresh ones on every call.
"""

from __future__ import annotations

import threading

from .pad import pad as _pad_op, pad_backward as _pad_backward_op
from .._backend import backend_for
from .._checks import (as_float32, as_index, as_index_pair, check_ndim, check_nonnegative, check_positive,
                       check_shape)

__all__ = ["conv2d", "conv2d_backward", "conv1d", "conv1d_backward"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

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


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    """2-D cross-correlation of NCHW x with w (K, C/groups, R, S), plus b (K,) when given.

    Output (N, K, P, Q) with P = (H + 2*pad_h - dil_h*(R-1) - 1)//stride_h + 1 (likewise Q), as PyTorch.
    x may be unbatched (C, H, W); padding may be "valid" or "same"; padding_mode as torch.nn.Conv2d.
    """
    if padding_mode != "zeros" or isinstance(padding, str) or getattr(x, "ndim", 4) != 4:
        return _with_options(2, x, w, b, stride, padding, dilation, groups, padding_mode)
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


def conv2d_backward(grad_out, x, w, stride=1, padding=0, dilation=1, groups=1, *, need_grad_x=True,
                    padding_mode="zeros"):
    """(grad_x, grad_w, grad_b) of conv2d; grad_b is grad_out summed over N, H, W.

    need_grad_x=False skips the backward-data pass and returns None for grad_x (a network's input
    layer never uses it)."""
    if padding_mode != "zeros" or isinstance(padding, str) or getattr(x, "ndim", 4) != 4:
        return _backward_with_options(2, grad_out, x, w, stride, padding, dilation, groups, need_grad_x,
                                      padding_mode)
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


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    """1-D convolution of (N, C, L) x with w (K, C/groups, S): conv2d with H = 1. x may be unbatched
    (C, L); padding may be "valid" or "same"; padding_mode as torch.nn.Conv1d."""
    if padding_mode != "zeros" or isinstance(padding, str) or getattr(x, "ndim", 3) != 3:
        return _with_options(1, x, w, b, stride, padding, dilation, groups, padding_mode)
    be = backend_for(x=x, w=w, b=b)
    x2, w2, (st, pad, dil) = _as_2d(x, w, stride, padding, dilation, be)
    return conv2d(x2, w2, b, st, pad, dil, groups)[:, :, 0, :]


def conv1d_backward(grad_out, x, w, stride=1, padding=0, dilation=1, groups=1, *, need_grad_x=True,
                    padding_mode="zeros"):
    """(grad_x, grad_w, grad_b) of conv1d; grad_x is None when need_grad_x=False."""
    if padding_mode != "zeros" or isinstance(padding, str) or getattr(x, "ndim", 3) != 3:
        return _backward_with_options(1, grad_out, x, w, stride, padding, dilation, groups, need_grad_x,
                                      padding_mode)
    be = backend_for(grad_out=grad_out, x=x, w=w)
    need_grad_x = _check_flag(need_grad_x, "need_grad_x")
    x2, w2, (st, pad, dil) = _as_2d(x, w, stride, padding, dilation, be)
    shape = _geometry(x2, w2, st, pad, dil, groups)
    grad_out = as_float32(grad_out, "grad_out", be)
    check_shape(grad_out, (shape[0], shape[4], shape[8]), "grad_out")
    gx, gw, gb = conv2d_backward(grad_out[:, :, None, :], x2, w2, st, pad, dil, groups, need_grad_x=need_grad_x)
    return (gx[:, :, 0, :] if gx is not None else None), gw[:, :, 0, :], gb



# --------------------------------------------------------------------------------- the options
def _tuple(value, nd: int, name: str) -> tuple:
    return (_single(value, name),) if nd == 1 else as_index_pair(value, name)


def _plan_options(nd, x, w, stride, padding, dilation, padding_mode, be):
    """Checks the wrapper-level options and returns (xb, w, unbatched, kernel padding, pad list or None,
    pad mode): xb is x (as float32) batched, w as float32, the pad list (PyTorch's order, last dimension first) and mode say how
    to pad xb before the kernel, which then runs with `kernel padding`."""
    if not isinstance(padding_mode, str) or padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', "
                         f"got {padding_mode!r}")
    x = as_float32(x, "x", be)
    w = as_float32(w, "w", be)
    layout = "(C, L) or (N, C, L)" if nd == 1 else "(C, H, W) or (N, C, H, W)"
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"x must be {nd + 1}-D or {nd + 2}-D {layout}, got shape {tuple(x.shape)}")
    check_ndim(w, nd + 2, "w", "(K, C/groups, S)" if nd == 1 else "(K, C/groups, R, S)")
    unbatched = x.ndim == nd + 1
    xb = x[None] if unbatched else x
    strides = _tuple(stride, nd, "stride")
    dils = _tuple(dilation, nd, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            lo = hi = (0,) * nd
        elif padding == "same":
            if any(s != 1 for s in strides):
                raise ValueError(f"padding='same' is not supported for strided convolutions (as PyTorch), "
                                 f"got stride={stride!r}")
            check_positive(dils, "dilation")
            total = tuple(d * (int(k) - 1) for d, k in zip(dils, w.shape[2:]))
            lo = tuple(t // 2 for t in total)
            hi = tuple(t - t // 2 for t in total)
        else:
            raise ValueError(f"padding must be an int, a tuple of ints, 'valid' or 'same', got {padding!r}")
    else:
        lo = hi = _tuple(padding, nd, "padding")
        check_nonnegative(lo, "padding")
    widths = list(zip(lo, hi))
    if padding_mode == "zeros":
        if lo == hi:
            return xb, w, unbatched, lo, None, None
        # Uneven "same": the extra cell on the right by the pad op, the even part in the kernel.
        pads = [v for l_, h_ in reversed(widths) for v in (0, h_ - l_)]
        return xb, w, unbatched, lo, pads, "constant"
    if not any(lo + hi):
        return xb, w, unbatched, (0,) * nd, None, None
    pads = [v for l_, h_ in reversed(widths) for v in (l_, h_)]
    return xb, w, unbatched, (0,) * nd, pads, padding_mode


def _kernel_args(nd, xp_, w, kpad, stride, dilation):
    """conv2d arguments for the (already padded) batched input: conv1d runs as conv2d with H = 1."""
    if nd == 2:
        return xp_, w, kpad, stride, dilation
    return (xp_[:, :, None, :], w[:, :, None, :], (0, kpad[0]), (1, _single(stride, "stride")),
            (1, _single(dilation, "dilation")))


def _with_options(nd, x, w, b, stride, padding, dilation, groups, padding_mode):
    be = backend_for(x=x, w=w, b=b)
    xb, w, unbatched, kpad, pads, mode = _plan_options(nd, x, w, stride, padding, dilation, padding_mode, be)
    xp_ = xb if pads is None else _pad_op(xb, pads, mode)
    x4, w4, kpad, st, dil = _kernel_args(nd, xp_, w, kpad, stride, dilation)
    y = conv2d(x4, w4, b, st, kpad, dil, groups)
    if nd == 1:
        y = y[:, :, 0, :]
    return y[0] if unbatched else y


def _backward_with_options(nd, grad_out, x, w, stride, padding, dilation, groups, need_grad_x, padding_mode):
    be = backend_for(grad_out=grad_out, x=x, w=w)
    need_grad_x = _check_flag(need_grad_x, "need_grad_x")
    xb, w, unbatched, kpad, pads, mode = _plan_options(nd, x, w, stride, padding, dilation, padding_mode, be)
    grad_out = as_float32(grad_out, "grad_out", be)
    if unbatched:
        if grad_out.ndim != nd + 1:
            raise ValueError(f"grad_out must be {nd + 1}-D like the unbatched x, got shape {tuple(grad_out.shape)}")
        grad_out = grad_out[None]
    xp_ = xb if pads is None else _pad_op(xb, pads, mode)
    x4, w4, kpad, st, dil = _kernel_args(nd, xp_, w, kpad, stride, dilation)
    go4 = grad_out[:, :, None, :] if nd == 1 else grad_out
    if nd == 1:
        check_ndim(grad_out, 3, "grad_out", "(N, K, L_out)")
    gx, gw, gb = conv2d_backward(go4, x4, w4, st, kpad, dil, groups, need_grad_x=need_grad_x)
    if nd == 1:
        gx = None if gx is None else gx[:, :, 0, :]
        gw = gw[:, :, 0, :]
    if gx is not None and pads is not None:
        gx = _pad_backward_op(gx, xb, pads, mode)
    if gx is not None and unbatched:
        gx = gx[0]
    return gx, gw, gb
