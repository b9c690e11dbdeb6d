"""NumPy reference for 3-D pooling over NCDHW (or unbatched CDHW) input, float32 or float64.

Conventions (the kernels follow them exactly, and they are torch.nn.functional's):
- Per axis, with kernel k, stride s (default k), padding p (<= k // 2), dilation d (max pool only):
  out = floor((n + 2p - d(k-1) - 1) / s) + 1, or with ceil_mode=True the ceiling, less one when the
  last window would start past the input and its left padding ((out-1)*s >= n + p). Window i covers
  cells i*s - p + j*d for j < k; cells outside [0, n) are padding.
- max_pool3d: padding never wins; scan order (t, r, s) row-major; ties keep the first maximum; a
  NaN displaces the running maximum (the gradient goes to the window's last NaN, the output is NaN).
  A window with no real cell at all (possible only with dilation) outputs -inf, index -1, and sends
  no gradient. return_indices gives the flat index into each D*H*W plane, as PyTorch.
- avg_pool3d: the sum of the real cells divided by divisor_override when given, else by the
  window's size clipped to the padded input (count_include_pad=True, PyTorch's pool_size) or by the
  number of real cells (False).

Written for clarity: a Python loop over output positions, vectorised over N and C.
"""

from __future__ import annotations

import numpy as np

__all__ = ["max_pool3d", "max_pool3d_backward", "avg_pool3d", "avg_pool3d_backward"]


def _triple(v):
    if isinstance(v, (tuple, list)):
        return tuple(int(a) for a in v)
    return (int(v),) * 3


def _out_size(n, k, s, p, d, ceil_mode):
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _geometry(x, kernel_size, stride, padding, dilation, ceil_mode):
    k = _triple(kernel_size)
    s = k if stride is None else _triple(stride)
    p, d = _triple(padding), _triple(dilation)
    out = tuple(_out_size(n, *a, ceil_mode) for n, a in zip(x.shape[2:], zip(k, s, p, d)))
    if min(out) <= 0:
        raise ValueError(f"the output would be empty ({out})")
    return k, s, p, d, out


def _batched(x):
    x = np.asarray(x)
    return (x[None], True) if x.ndim == 4 else (x, False)


def _cells(i, n, k, s, p, d):
    """The real cells of window i along one axis."""
    start = i * s - p
    return [start + j * d for j in range(k) if 0 <= start + j * d < n]


def _windows(x, k, s, p, d, out):
    """Yield (output position, real cells per axis) for every window."""
    D, H, W = x.shape[2:]
    for o in np.ndindex(*out):
        yield o, [_cells(i, n, *a) for i, n, a in zip(o, (D, H, W), zip(k, s, p, d))]


def _argmax(x, cells):
    """Flat in-plane index of each (N, C) window's first maximum (its last NaN, if any); -1 if empty."""
    N, C, D, H, W = x.shape
    cd, ch, cw = cells
    if not (cd and ch and cw):
        return np.full((N, C), -1, np.int64)
    win = x[:, :, cd][:, :, :, ch][:, :, :, :, cw].reshape(N, C, -1)
    flat = (np.asarray(cd)[:, None, None] * H * W + np.asarray(ch)[None, :, None] * W
            + np.asarray(cw)[None, None, :]).reshape(-1)
    nan = np.isnan(win)
    last_nan = win.shape[2] - 1 - np.argmax(nan[:, :, ::-1], axis=2)
    first_max = np.argmax(np.where(nan, -np.inf, win), axis=2)
    return flat[np.where(nan.any(axis=2), last_nan, first_max)]


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    x, unbatched = _batched(x)
    k, s, p, d, out = _geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    N, C = x.shape[:2]
    planes = x.reshape(N, C, -1)
    y = np.empty((N, C) + out, x.dtype)
    idx = np.empty((N, C) + out, np.int64)
    for o, cells in _windows(x, k, s, p, d, out):
        at = _argmax(x, cells)
        idx[(slice(None), slice(None)) + o] = at
        val = np.take_along_axis(planes, np.maximum(at, 0)[..., None], axis=2)[..., 0]
        y[(slice(None), slice(None)) + o] = np.where(at >= 0, val, -np.inf)
    if unbatched:
        y, idx = y[0], idx[0]
    return (y, idx) if return_indices else y


def max_pool3d_backward(grad_out, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        indices=None):
    x, unbatched = _batched(x)
    go = np.asarray(grad_out)
    go = go[None] if unbatched else go
    if indices is not None:
        indices = np.asarray(indices)
        indices = indices[None] if unbatched else indices
    k, s, p, d, out = _geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    N, C = x.shape[:2]
    g = np.zeros((N, C, x[0, 0].size), go.dtype)
    nn_, cc = np.meshgrid(np.arange(N), np.arange(C), indexing="ij")
    for o, cells in _windows(x, k, s, p, d, out):
        at = _argmax(x, cells) if indices is None else indices[(slice(None), slice(None)) + o]
        ok = (at >= 0) & (at < g.shape[2])
        np.add.at(g, (nn_[ok], cc[ok], at[ok]), go[(slice(None), slice(None)) + o][ok])
    g = g.reshape(x.shape)
    return g[0] if unbatched else g


def _divisor(cells, o, k, s, p, shape, count_include_pad, divisor_override):
    if divisor_override is not None:
        return float(divisor_override)
    if not count_include_pad:
        return float(len(cells[0]) * len(cells[1]) * len(cells[2]))
    size = 1
    for i, kk, ss, pp, n in zip(o, k, s, p, shape):
        start = i * ss - pp
        size *= min(start + kk, n + pp) - start
    return float(size)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    x, unbatched = _batched(x)
    k, s, p, d, out = _geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    N, C = x.shape[:2]
    y = np.empty((N, C) + out, x.dtype)
    for o, cells in _windows(x, k, s, p, d, out):
        cd, ch, cw = cells
        total = x[:, :, cd][:, :, :, ch][:, :, :, :, cw].sum(axis=(2, 3, 4))
        y[(slice(None), slice(None)) + o] = total / _divisor(cells, o, k, s, p, x.shape[2:], count_include_pad,
                                                             divisor_override)
    return y[0] if unbatched else y


def avg_pool3d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                        divisor_override=None):
    x, unbatched = _batched(x)
    go = np.asarray(grad_out)
    go = go[None] if unbatched else go
    k, s, p, d, out = _geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    g = np.zeros(x.shape, go.dtype)
    for o, cells in _windows(x, k, s, p, d, out):
        cd, ch, cw = cells
        if not (cd and ch and cw):
            continue
        v = go[(slice(None), slice(None)) + o] / _divisor(cells, o, k, s, p, x.shape[2:], count_include_pad,
                                                          divisor_override)
        g[:, :, cd[0]:cd[-1] + 1, ch[0]:ch[-1] + 1, cw[0]:cw[-1] + 1] += v[:, :, None, None, None]
    return g[0] if unbatched else g
