"""NumPy reference: 2-D transposed convolution (the adjoint of conv2d with respect to its input).

Written from its own definition, not from conv2d: every input pixel scatters x[n, i, p, q] *
w[i, o, r, s] to the full output at (p*stride + r*dilation, q*stride + s*dilation); the result is
that full output cropped by `padding` on each side and extended by `output_padding` (zeros where
nothing lands) on the bottom / right. w is (C_in, C_out/groups, R, S) as PyTorch. Unbatched
(C, H, W) input gives unbatched output. Float32 or float64, like the rest of the reference.
"""

from __future__ import annotations

import numpy as np

__all__ = ["conv_transpose2d", "conv_transpose2d_backward"]


def _pair(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _dtype(*arrays):
    dt = np.result_type(*[np.asarray(a).dtype for a in arrays if a is not None])
    return np.float64 if dt == np.float64 else np.float32


def _geometry(x, w, stride, padding, output_padding, dilation):
    st, pad, opad, dil = _pair(stride), _pair(padding), _pair(output_padding), _pair(dilation)
    out = tuple((x.shape[2 + i] - 1) * st[i] - 2 * pad[i] + dil[i] * (w.shape[2 + i] - 1) + opad[i] + 1
                for i in range(2))
    if min(out) <= 0:
        raise ValueError(f"the output would be empty ({out})")
    # The uncropped output, tall enough for the crop window [pad, pad + out).
    full = tuple(max((x.shape[2 + i] - 1) * st[i] + dil[i] * (w.shape[2 + i] - 1) + 1, pad[i] + out[i])
                 for i in range(2))
    return out, full, st, pad, dil


def _tap(a, r, s, P, Q, st, dil):
    """The (N, C, P, Q) view of the full output that kernel tap (r, s) of every input pixel lands on."""
    return a[:, :, r * dil[0]: r * dil[0] + st[0] * (P - 1) + 1: st[0],
             s * dil[1]: s * dil[1] + st[1] * (Q - 1) + 1: st[1]]


def _batched(x):
    x = np.asarray(x)
    return (x[None], True) if x.ndim == 3 else (x, False)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    dt = _dtype(x, w, b)
    x, unbatched = _batched(np.asarray(x, dt))
    w = np.asarray(w, dt)
    (Ho, Wo), full, st, pad, dil = _geometry(x, w, stride, padding, output_padding, dilation)
    N, Cin, P, Q = x.shape
    Cig, Cog = Cin // groups, w.shape[1]
    yf = np.zeros((N, Cog * groups) + full, dt)
    for g in range(groups):
        ins, outs = slice(g * Cig, (g + 1) * Cig), slice(g * Cog, (g + 1) * Cog)
        for r in range(w.shape[2]):
            for s in range(w.shape[3]):
                _tap(yf[:, outs], r, s, P, Q, st, dil)[...] += np.einsum("nipq,io->nopq", x[:, ins], w[ins, :, r, s])
    y = yf[:, :, pad[0]:pad[0] + Ho, pad[1]:pad[1] + Wo].copy()
    if b is not None:
        y += np.asarray(b, dt)[None, :, None, None]
    return y[0] if unbatched else y


def conv_transpose2d_backward(grad_out, x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                              need_grad_x=True):
    """(grad_x, grad_w, grad_b): grad_out placed back into the uncropped output, then gathered by
    every tap; grad_b is grad_out summed over N, H, W. grad_x is None when need_grad_x=False."""
    dt = _dtype(grad_out, x, w)
    x, unbatched = _batched(np.asarray(x, dt))
    go = np.asarray(grad_out, dt)
    go = go[None] if unbatched else go
    w = np.asarray(w, dt)
    (Ho, Wo), full, st, pad, dil = _geometry(x, w, stride, padding, output_padding, dilation)
    N, Cin, P, Q = x.shape
    Cig, Cog = Cin // groups, w.shape[1]
    if go.shape != (N, Cog * groups, Ho, Wo):
        raise ValueError(f"grad_out must have shape {(N, Cog * groups, Ho, Wo)}, got {go.shape}")
    gf = np.zeros((N, Cog * groups) + full, dt)
    gf[:, :, pad[0]:pad[0] + Ho, pad[1]:pad[1] + Wo] = go
    gx = np.zeros_like(x)
    gw = np.zeros_like(w)
    for g in range(groups):
        ins, outs = slice(g * Cig, (g + 1) * Cig), slice(g * Cog, (g + 1) * Cog)
        for r in range(w.shape[2]):
            for s in range(w.shape[3]):
                patch = _tap(gf[:, outs], r, s, P, Q, st, dil)
                gx[:, ins] += np.einsum("nopq,io->nipq", patch, w[ins, :, r, s])
                gw[ins, :, r, s] = np.einsum("nopq,nipq->io", patch, x[:, ins])
    gb = go.sum(axis=(0, 2, 3))
    if not need_grad_x:
        gx = None
    elif unbatched:
        gx = gx[0]
    return gx, gw, gb
