"""NumPy reference for 2-D pooling over NCHW input. Works in the dtype it is given (float32/float64).

Conventions (the kernels follow them exactly):
- Output size per axis is (H + 2*pad - k) // stride + 1 (floor mode, PyTorch's ceil_mode=False);
  stride defaults to kernel_size; padding <= kernel // 2, so every window holds a real cell.
- max pool: padded cells never win. A window holding a NaN outputs NaN (as PyTorch). The backward
  sends the gradient to the FIRST maximum of each window in row-major scan order (ties go to the
  first); overlapping windows accumulate. With NaNs it follows PyTorch's scan, where every NaN
  displaces the running maximum: the gradient goes to the window's LAST NaN.
- avg pool: padded cells are zeros; the divisor is kh*kw with count_include_pad=True (in floor mode
  a window never runs past the padding), else the number of real cells in the window.
- lp pool: y = (sum |x|^p)^(1/p), padded cells count as 0. Backward:
  dx = g * y^(1-p) * |x|^(p-1) * sign(x) = g * sign(x) * (|x| / y)^(p-1), defined as 0 where
  x == 0 or y == 0 (no 0/0 NaN; for p < 1 this picks the zero subgradient at x == 0).
- global_avg_pool2d: mean over H*W -> (N, C).

Written for clarity: a Python loop over the output positions, vectorised over N and C.
"""

import numpy as np

__all__ = [
    "max_pool2d", "max_pool2d_backward",
    "avg_pool2d", "avg_pool2d_backward",
    "lp_pool2d", "lp_pool2d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward",
]


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _geometry(x, kernel_size, stride, padding):
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    _, _, h, w = x.shape
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    return kh, kw, sh, sw, ph, pw, oh, ow


def _windows(x, kernel_size, stride, padding, fill):
    """Yield (i, j, window view of the padded input, (row slice, col slice) into the padded input)."""
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(x, kernel_size, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    for i in range(oh):
        for j in range(ow):
            rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
            yield i, j, xp[:, :, rows, cols], (rows, cols)


def _first_max_index(win):
    """Flat index (row-major) of the first maximum of each (N, C) window, or of its last NaN."""
    flat = win.reshape(win.shape[0], win.shape[1], -1)
    nan = np.isnan(flat)
    last_nan = flat.shape[2] - 1 - np.argmax(nan[:, :, ::-1], axis=2)
    first_max = np.argmax(np.where(nan, -np.inf, flat), axis=2)  # argmax returns the first of ties
    return np.where(nan.any(axis=2), last_nan, first_max)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    _, _, _, _, _, _, oh, ow = _geometry(x, kernel_size, stride, padding)
    y = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i, j, win, _ in _windows(x, kernel_size, stride, padding, -np.inf):
        flat = win.reshape(win.shape[0], win.shape[1], -1)
        y[:, :, i, j] = np.take_along_axis(flat, _first_max_index(win)[..., None], axis=2)[..., 0]
    return y


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0):
    kh, kw, _, _, ph, pw, _, _ = _geometry(x, kernel_size, stride, padding)
    n, c, h, w = x.shape
    gp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad_out.dtype)
    nn_, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for i, j, win, (rows, cols) in _windows(x, kernel_size, stride, padding, -np.inf):
        k = _first_max_index(win)
        r, q = rows.start + k // kw, cols.start + k % kw
        np.add.at(gp, (nn_, cc, r, q), grad_out[:, :, i, j])
    return gp[:, :, ph:ph + h, pw:pw + w]


def _avg_divisor(x, kernel_size, stride, padding, count_include_pad):
    """(oh, ow) array of divisors."""
    kh, kw, _, _, _, _, oh, ow = _geometry(x, kernel_size, stride, padding)
    if count_include_pad:
        return np.full((oh, ow), kh * kw, dtype=np.float64)
    ones = np.ones((1, 1) + x.shape[2:], dtype=np.float64)
    div = np.empty((oh, ow))
    for i, j, win, _ in _windows(ones, kernel_size, stride, padding, 0.0):
        div[i, j] = win.sum()
    return div


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    _, _, _, _, _, _, oh, ow = _geometry(x, kernel_size, stride, padding)
    div = _avg_divisor(x, kernel_size, stride, padding, count_include_pad)
    y = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i, j, win, _ in _windows(x, kernel_size, stride, padding, 0.0):
        y[:, :, i, j] = win.sum(axis=(2, 3)) / div[i, j]
    return y


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, count_include_pad=True):
    _, _, _, _, ph, pw, _, _ = _geometry(x, kernel_size, stride, padding)
    n, c, h, w = x.shape
    div = _avg_divisor(x, kernel_size, stride, padding, count_include_pad)
    gp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad_out.dtype)
    for i, j, _, (rows, cols) in _windows(x, kernel_size, stride, padding, 0.0):
        gp[:, :, rows, cols] += (grad_out[:, :, i, j] / div[i, j])[:, :, None, None]
    return gp[:, :, ph:ph + h, pw:pw + w]


def lp_pool2d(x, p, kernel_size, stride=None, padding=0):
    _, _, _, _, _, _, oh, ow = _geometry(x, kernel_size, stride, padding)
    y = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i, j, win, _ in _windows(x, kernel_size, stride, padding, 0.0):
        y[:, :, i, j] = np.sum(np.abs(win) ** p, axis=(2, 3)) ** (1.0 / p)
    return y


def lp_pool2d_backward(grad_out, x, p, kernel_size, stride=None, padding=0):
    _, _, _, _, ph, pw, _, _ = _geometry(x, kernel_size, stride, padding)
    n, c, h, w = x.shape
    y = lp_pool2d(x, p, kernel_size, stride, padding)
    gp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad_out.dtype)
    for i, j, win, (rows, cols) in _windows(x, kernel_size, stride, padding, 0.0):
        yo = y[:, :, i, j][:, :, None, None]
        ok = (win != 0) & (yo != 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(ok, np.sign(win) * (np.abs(win) / np.where(ok, yo, 1)) ** (p - 1), 0)
        gp[:, :, rows, cols] += grad_out[:, :, i, j][:, :, None, None] * d
    return gp[:, :, ph:ph + h, pw:pw + w].astype(grad_out.dtype, copy=False)


def global_avg_pool2d(x):
    return x.mean(axis=(2, 3), dtype=np.float64).astype(x.dtype, copy=False)


def global_avg_pool2d_backward(grad_out, x):
    h, w = x.shape[2:]
    g = grad_out / (h * w)
    return np.broadcast_to(g[:, :, None, None], x.shape).astype(grad_out.dtype, copy=True)
