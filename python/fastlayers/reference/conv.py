"""NumPy reference: 2-D (and 1-D) convolution, forward and backward.

Written as an explicit loop over the kernel taps (r, s): each tap sees a strided window of the
zero-padded input, and contributes an einsum over the group's input channels. Runs in float32 or
float64 (float64 when any input is float64), groups and dilation included. Same names and
signatures as fastlayers.ops.

Options, defined as PyTorch defines them: unbatched input is a batch of one; padding="valid" is 0 and
"same" pads dilation*(k-1) per dimension, half (rounded down) before and the rest after;
padding_mode other than "zeros" pads the input with fastlayers.reference.pad in that mode and
convolves with padding 0 (torch.nn.Conv2d's definition), and the backward folds the padded input's
gradient back with pad_backward.
"""

from __future__ import annotations

import numpy as np

from .pad import pad as _pad, pad_backward as _pad_backward

__all__ = ["conv2d", "conv2d_backward", "conv1d", "conv1d_backward"]


def _pair(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _single(v):
    if isinstance(v, (tuple, list)):
        return int(v[0])
    return int(v)


def _dtype(*arrays):
    dt = np.result_type(*[np.asarray(a).dtype for a in arrays if a is not None])
    return np.float64 if dt == np.float64 else np.float32


def _geometry(x, w, stride, padding, dilation):
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    P = (H + 2 * ph - dh * (R - 1) - 1) // sh + 1
    Q = (W + 2 * pw - dw * (S - 1) - 1) // sw + 1
    if P <= 0 or Q <= 0:
        raise ValueError(f"w: the kernel does not fit the padded input (output would be {P}x{Q})")
    return (N, C, H, W, K, R, S, P, Q), (sh, sw), (ph, pw), (dh, dw)


def _tap(xp, r, s, P, Q, stride, dilation):
    """The (N, C, P, Q) window of the padded input that kernel tap (r, s) multiplies."""
    (sh, sw), (dh, dw) = stride, dilation
    return xp[:, :, r * dh: r * dh + sh * (P - 1) + 1: sh, s * dw: s * dw + sw * (Q - 1) + 1: sw]


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    """y[n, k, p, q] = b[k] + sum_{c in group(k), r, s} w[k, c, r, s] * xpad[n, c, p*sh + r*dh, q*sw + s*dw]."""
    if isinstance(padding, str) or padding_mode != "zeros" or np.ndim(x) == 3:
        xb, pads, mode, unbatched = _options(x, w, stride, padding, dilation, padding_mode, 2)
        y = conv2d(xb if pads is None else _pad(xb, pads, mode), w, b, stride, 0, dilation, groups)
        return y[0] if unbatched else y
    dt = _dtype(x, w, b)
    x, w = np.asarray(x, dt), np.asarray(w, dt)
    (N, C, H, W, K, R, S, P, Q), st, (ph, pw), dil = _geometry(x, w, stride, padding, dilation)
    Cg, Kg = C // groups, K // groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((N, K, P, Q), dt)
    for g in range(groups):
        xs, ks = slice(g * Cg, (g + 1) * Cg), slice(g * Kg, (g + 1) * Kg)
        for r in range(R):
            for s in range(S):
                patch = _tap(xp[:, xs], r, s, P, Q, st, dil)
                y[:, ks] += np.einsum("ncpq,kc->nkpq", patch, w[ks, :, r, s])
    if b is not None:
        y += np.asarray(b, dt)[None, :, None, None]
    return y


def conv2d_backward(grad_out, x, w, stride=1, padding=0, dilation=1, groups=1, *, need_grad_x=True,
                    padding_mode="zeros"):
    """(grad_x, grad_w, grad_b): the adjoint of each tap's window, summed back onto the padded input.
    grad_x is None when need_grad_x=False (the op's contract; the reference still computes it)."""
    if isinstance(padding, str) or padding_mode != "zeros" or np.ndim(x) == 3:
        xb, pads, mode, unbatched = _options(x, w, stride, padding, dilation, padding_mode, 2)
        go = np.asarray(grad_out)[None] if unbatched else grad_out
        gx, gw, gb = conv2d_backward(go, xb if pads is None else _pad(xb, pads, mode), w, stride, 0, dilation,
                                     groups, need_grad_x=need_grad_x)
        if gx is not None and pads is not None:
            gx = _pad_backward(gx, xb, pads, mode)
        return (gx[0] if unbatched and gx is not None else gx), gw, gb
    dt = _dtype(grad_out, x, w)
    x, w, go = np.asarray(x, dt), np.asarray(w, dt), np.asarray(grad_out, dt)
    (N, C, H, W, K, R, S, P, Q), st, (ph, pw), dil = _geometry(x, w, stride, padding, dilation)
    if go.shape != (N, K, P, Q):
        raise ValueError(f"grad_out must have shape {(N, K, P, Q)}, got {go.shape}")
    Cg, Kg = C // groups, K // groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    for g in range(groups):
        xs, ks = slice(g * Cg, (g + 1) * Cg), slice(g * Kg, (g + 1) * Kg)
        for r in range(R):
            for s in range(S):
                patch = _tap(xp[:, xs], r, s, P, Q, st, dil)
                gw[ks, :, r, s] = np.einsum("nkpq,ncpq->kc", go[:, ks], patch)
                # _tap returns a view, so += lands in gxp (taps of one stride never overlap themselves)
                _tap(gxp[:, xs], r, s, P, Q, st, dil)[...] += np.einsum("nkpq,kc->ncpq", go[:, ks], w[ks, :, r, s])
    gx = gxp[:, :, ph: ph + H, pw: pw + W].copy() if need_grad_x else None
    gb = go.sum(axis=(0, 2, 3))
    return gx, gw, gb


def _options(x, w, stride, padding, dilation, padding_mode, nd):
    """(x batched, PyTorch-order pad list or None, pad mode, unbatched) for the kernel-free definition:
    the returned input is padded explicitly and then convolved with padding 0."""
    x = np.asarray(x)
    unbatched = x.ndim == nd + 1
    xb = x[None] if unbatched else x
    k = np.shape(w)[2:]
    one = _single if nd == 1 else _pair
    if padding == "valid":
        lo = hi = (0,) * nd
    elif padding == "same":
        total = [d * (kk - 1) for d, kk in zip((one(dilation),) if nd == 1 else one(dilation), k)]
        lo, hi = [t // 2 for t in total], [t - t // 2 for t in total]
    else:
        lo = hi = (one(padding),) if nd == 1 else one(padding)
    pads = [v for l_, h_ in reversed(list(zip(lo, hi))) for v in (l_, h_)]
    mode = "constant" if padding_mode == "zeros" else padding_mode
    return xb, (pads if any(pads) else None), mode, unbatched


def _to_2d(x, w, stride, padding, dilation):
    x = np.asarray(x)[:, :, None, :]
    w = np.asarray(w)[:, :, None, :]
    return x, w, (1, _single(stride)), (0, _single(padding)), (1, _single(dilation))


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    """conv2d with H = 1 on (N, C, L) input and (K, C/groups, S) weights."""
    if isinstance(padding, str) or padding_mode != "zeros" or np.ndim(x) == 2:
        xb, pads, mode, unbatched = _options(x, w, stride, padding, dilation, padding_mode, 1)
        y = conv1d(xb if pads is None else _pad(xb, pads, mode), w, b, stride, 0, dilation, groups)
        return y[0] if unbatched else y
    x2, w2, st, pad, dil = _to_2d(x, w, stride, padding, dilation)
    return conv2d(x2, w2, b, st, pad, dil, groups)[:, :, 0, :]


def conv1d_backward(grad_out, x, w, stride=1, padding=0, dilation=1, groups=1, *, need_grad_x=True,
                    padding_mode="zeros"):
    if isinstance(padding, str) or padding_mode != "zeros" or np.ndim(x) == 2:
        xb, pads, mode, unbatched = _options(x, w, stride, padding, dilation, padding_mode, 1)
        go = np.asarray(grad_out)[None] if unbatched else grad_out
        gx, gw, gb = conv1d_backward(go, xb if pads is None else _pad(xb, pads, mode), w, stride, 0, dilation,
                                     groups, need_grad_x=need_grad_x)
        if gx is not None and pads is not None:
            gx = _pad_backward(gx, xb, pads, mode)
        return (gx[0] if unbatched and gx is not None else gx), gw, gb
    x2, w2, st, pad, dil = _to_2d(x, w, stride, padding, dilation)
    gx, gw, gb = conv2d_backward(np.asarray(grad_out)[:, :, None, :], x2, w2, st, pad, dil, groups,
                                 need_grad_x=need_grad_x)
    return (gx[:, :, 0, :] if gx is not None else None), gw[:, :, 0, :], gb
