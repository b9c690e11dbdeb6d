"""NumPy reference: 3-D convolution over NCDHW input, forward and backward.

Written like reference/conv.py: an explicit loop over the kernel taps (t, r, s); each tap sees a
strided window of the zero-padded input and contributes an einsum over the group's input channels.
Runs in float32 or float64 (float64 when any input is float64). Unbatched (C, D, H, W) input gives
unbatched output, as torch.nn.functional.conv3d. Same names and signatures as fastlayers.ops.
"""

from __future__ import annotations

import numpy as np

__all__ = ["conv3d", "conv3d_backward"]


def _triple(v):
    if isinstance(v, (tuple, list)):
        return tuple(int(a) for a in v)
    return (int(v),) * 3


def _dtype(*arrays):
    dt = np.result_type(*[np.asarray(a).dtype for a in arrays if a is not None])
    return np.float64 if dt == np.float64 else np.float32


def _geometry(x, w, stride, padding, dilation):
    st, pad, dil = _triple(stride), _triple(padding), _triple(dilation)
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                for n, k, s, p, d in zip(x.shape[2:], w.shape[2:], st, pad, dil))
    if min(out) <= 0:
        raise ValueError(f"w: the kernel does not fit the padded input (output would be {out})")
    return out, st, pad, dil


def _tap(xp, tap, out, st, dil):
    """The (N, C, Do, Ho, Wo) window of the padded input that kernel tap (t, r, s) multiplies."""
    return xp[(slice(None), slice(None)) + tuple(
        slice(k * d, k * d + s * (o - 1) + 1, s) for k, o, s, d in zip(tap, out, st, dil))]


def _batched(x):
    x = np.asarray(x)
    return (x[None], True) if x.ndim == 4 else (x, False)


def conv3d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, k, o] = b[k] + sum_{c in group(k), tap} w[k, c, tap] * xpad[n, c, o*stride + tap*dilation]."""
    dt = _dtype(x, w, b)
    x, unbatched = _batched(np.asarray(x, dt))
    w = np.asarray(w, dt)
    out, st, pad, dil = _geometry(x, w, stride, padding, dilation)
    N, C = x.shape[:2]
    K = w.shape[0]
    Cg, Kg = C // groups, K // groups
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pad))
    y = np.zeros((N, K) + out, dt)
    for g in range(groups):
        xs, ks = slice(g * Cg, (g + 1) * Cg), slice(g * Kg, (g + 1) * Kg)
        for tap in np.ndindex(*w.shape[2:]):
            patch = _tap(xp[:, xs], tap, out, st, dil)
            y[:, ks] += np.einsum("ncdpq,kc->nkdpq", patch, w[(ks, slice(None)) + tap])
    if b is not None:
        y += np.asarray(b, dt)[None, :, None, None, None]
    return y[0] if unbatched else y


def conv3d_backward(grad_out, x, w, stride=1, padding=0, dilation=1, groups=1, *, need_grad_x=True):
    """(grad_x, grad_w, grad_b): each tap's window adjoint summed back onto the padded input.
    grad_x is None when need_grad_x=False (the op's contract; the reference still computes it)."""
    dt = _dtype(grad_out, x, w)
    x, unbatched = _batched(np.asarray(x, dt))
    go = np.asarray(grad_out, dt)
    go = go[None] if unbatched else go
    w = np.asarray(w, dt)
    out, st, pad, dil = _geometry(x, w, stride, padding, dilation)
    N, C = x.shape[:2]
    K = w.shape[0]
    if go.shape != (N, K) + out:
        raise ValueError(f"grad_out must have shape {(N, K) + out}, got {go.shape}")
    Cg, Kg = C // groups, K // groups
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pad))
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    for g in range(groups):
        xs, ks = slice(g * Cg, (g + 1) * Cg), slice(g * Kg, (g + 1) * Kg)
        for tap in np.ndindex(*w.shape[2:]):
            patch = _tap(xp[:, xs], tap, out, st, dil)
            gw[(ks, slice(None)) + tap] = np.einsum("nkdpq,ncdpq->kc", go[:, ks], patch)
            # a view into gxp: the windows of one tap never overlap themselves
            _tap(gxp[:, xs], tap, out, st, dil)[...] += np.einsum("nkdpq,kc->ncdpq", go[:, ks],
                                                                   w[(ks, slice(None)) + tap])
    D, H, W = x.shape[2:]
    gx = gxp[:, :, pad[0]:pad[0] + D, pad[1]:pad[1] + H, pad[2]:pad[2] + W].copy()
    gb = go.sum(axis=(0, 2, 3, 4))
    if not need_grad_x:
        gx = None
    elif unbatched:
        gx = gx[0]
    return gx, gw, gb
