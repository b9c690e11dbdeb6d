"""NumPy reference for 2-D pooling over NCHW input (or unbatched CHW). Works in the dtype it is given
(float32/float64). Arguments are those of torch.nn.functional; fastlayers.ops validates them, the
reference assumes they are valid.

Conventions (the kernels follow them exactly):
- Output size per axis, as PyTorch's pooling_output_shape: with the effective (dilated) kernel
  ek = dilation*(kernel-1) + 1, o = floor((n + 2*pad - ek) / stride) + 1, or with ceil_mode the ceiling,
  minus one if that last window would start at or past n + pad (the last window must start inside
  the input or its left padding). stride defaults to kernel_size; padding <= kernel // 2.
- Window (i, j) covers rows i*sh - ph + a*dh (a < kh) and columns j*sw - pw + b*dw (b < kw); only
  the cells inside the input take part ("real" cells). A ceil_mode window may run past the padded
  input.
- max pool: the maximum of the real cells; padded cells never win. A window holding a NaN outputs
  NaN (as PyTorch). The winner (the index that return_indices gives, flat over H*W, and where the
  backward sends the gradient) is the FIRST maximum in row-major scan order, or with NaNs the LAST
  NaN (PyTorch's scan: every NaN displaces the running maximum). A window with no real cell (only
  possible with dilation > 1 stepping over the whole input) outputs -inf with index -1.
  Overlapping windows accumulate gradient.
- avg pool: the sum of the real cells divided by divisor_override if given, else by the window's
  extent clipped to the padded input, (min(hs + kh, h + ph) - hs) * (likewise for w), when
  count_include_pad (kh*kw except for ceil_mode windows running past the padding), else by the
  number of real cells. Exactly PyTorch's divisor.
- lp pool: y = (F * sum |x|^p)^(1/p) with F = kh*kw / (avg pool's count_include_pad divisor), the
  factor PyTorch's avg_pool2d-based definition gives; F = 1 except for ceil_mode windows running past
  the input. (PyTorch computes x^p, not |x|^p: for negative input it gives other signs or NaN, see
  docs/ops.md.) Backward: dx = g * F * sign(x) * (|x| / y)^(p-1), defined as 0 where x == 0 or y == 0.
- adaptive pools: output cell i covers rows floor(i*H/oh) .. ceil((i+1)*H/oh) - 1 (likewise for
  columns); avg divides by the window's cell count; max follows the max pool rules.
- max_unpool2d: zeros of the output size, then out[idx] = x for every input cell in row-major order
  (with duplicate indices the last one wins). Backward: grad_x = grad_out at idx (a gather).
- global_avg_pool2d: mean over H*W -> (N, C).

Written for clarity: a Python loop over the output positions, vectorised over N and C.
"""

import functools

import math

import numpy as np

__all__ = [
    "max_pool2d", "max_pool2d_backward",
    "avg_pool2d", "avg_pool2d_backward",
    "lp_pool2d", "lp_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
    "max_unpool2d", "max_unpool2d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward",
]


def _pair(v, default=None):
    if v is None or (isinstance(v, (tuple, list)) and len(v) == 0):
        return default
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v))


def _batched(n_arrays, n_out=1):
    """Accept unbatched (C, H, W) arrays: the first n_arrays arguments gain a batch axis of 1 and the
    outputs (one array or a tuple) lose it again."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            x_arg = args[n_arrays - 1]
            if np.ndim(x_arg) != 3:
                return fn(*args, **kwargs)
            args = tuple(a[None] if i < n_arrays and a is not None else a for i, a in enumerate(args))
            kwargs = {k: (v[None] if k == "indices" and v is not None else v) for k, v in kwargs.items()}
            out = fn(*args, **kwargs)
            return tuple(o[0] for o in out) if isinstance(out, tuple) else out[0]
        return inner
    return wrap


def _out_size(n, k, s, p, d, ceil_mode):
    ek = d * (k - 1) + 1
    span = n + 2 * p - ek
    if ceil_mode:
        o = -(-span // s) + 1
        if (o - 1) * s >= n + p:  # the last window must start inside the input or its left padding
            o -= 1
        return o
    return span // s + 1


class _Geometry:
    def __init__(self, x, kernel_size, stride, padding, dilation, ceil_mode):
        self.h, self.w = x.shape[2], x.shape[3]
        self.kh, self.kw = _pair(kernel_size)
        self.sh, self.sw = _pair(stride, (self.kh, self.kw))
        self.ph, self.pw = _pair(padding)
        self.dh, self.dw = _pair(dilation)
        self.oh = _out_size(self.h, self.kh, self.sh, self.ph, self.dh, ceil_mode)
        self.ow = _out_size(self.w, self.kw, self.sw, self.pw, self.dw, ceil_mode)

    @staticmethod
    def _cells(start, k, d, n):
        """start + a*d for a < k that lie in [0, n), in order (a range: kernels may be huge)."""
        a_lo = max(0, -(start // d))  # first a with start + a*d >= 0
        a_hi = min(k, -(-(n - start) // d))  # a < a_hi keeps start + a*d < n
        return list(range(start + a_lo * d, start + a_hi * d, d)) if a_lo < a_hi else []

    def rows(self, i):
        """Real rows of window row i, in scan order."""
        return self._cells(i * self.sh - self.ph, self.kh, self.dh, self.h)

    def cols(self, j):
        return self._cells(j * self.sw - self.pw, self.kw, self.dw, self.w)

    def windows(self):
        for i in range(self.oh):
            for j in range(self.ow):
                yield i, j, self.rows(i), self.cols(j)

    def pool_size(self, i, j):
        """PyTorch's count_include_pad divisor: the window clipped to the padded input."""
        hs, ws = i * self.sh - self.ph, j * self.sw - self.pw
        return (min(hs + self.kh, self.h + self.ph) - hs) * (min(ws + self.kw, self.w + self.pw) - ws)


def _adaptive_ranges(n, o):
    return [list(range((i * n) // o, -((-(i + 1) * n) // o))) for i in range(o)]


def _adaptive_size(x, output_size):
    if isinstance(output_size, (tuple, list)):
        oh, ow = output_size
    else:
        oh = ow = output_size
    return (x.shape[2] if oh is None else int(oh)), (x.shape[3] if ow is None else int(ow))


def _planes(a, n, c):
    """a as (n, c, H*W) (written out: reshape's -1 cannot be inferred when n or c is 0)."""
    return a.reshape(n, c, math.prod(a.shape[2:]))


def _winner(x, rows, cols):
    """(values, flat in-plane indices) of the winners of one window over all N, C; -inf, -1 if empty."""
    n, c, _, w = x.shape
    if not rows or not cols:
        return np.full((n, c), -np.inf, x.dtype), np.full((n, c), -1, np.int64)
    flat = x[:, :, rows][:, :, :, cols].reshape(n, c, len(rows) * len(cols))
    nan = np.isnan(flat)
    last_nan = flat.shape[2] - 1 - np.argmax(nan[:, :, ::-1], axis=2)
    first_max = np.argmax(np.where(nan, -np.inf, flat), axis=2)  # argmax returns the first of ties
    k = np.where(nan.any(axis=2), last_nan, first_max)
    value = np.take_along_axis(flat, k[..., None], axis=2)[..., 0]
    rr, cc = np.asarray(rows)[k // len(cols)], np.asarray(cols)[k % len(cols)]
    return value, (rr * w + cc).astype(np.int64)


def _max_forward(x, windows, oh, ow, return_indices):
    y = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
    idx = np.empty(x.shape[:2] + (oh, ow), dtype=np.int64)
    for i, j, rows, cols in windows:
        y[:, :, i, j], idx[:, :, i, j] = _winner(x, rows, cols)
    return (y, idx) if return_indices else y


def _scatter_add(grad_out, idx, shape):
    """grad_in (shape) with grad_out added at the flat in-plane indices idx, in row-major order; -1
    (an empty window) adds nothing."""
    n, c, h, w = shape
    gi = np.zeros((n, c, h * w), dtype=grad_out.dtype)
    g, ix = _planes(grad_out, n, c), _planes(idx, n, c)
    nn_, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for o in range(ix.shape[2]):
        ok = ix[:, :, o] >= 0
        np.add.at(gi, (nn_[ok], cc[ok], ix[:, :, o][ok]), g[:, :, o][ok])
    return gi.reshape(shape)


@_batched(1)
def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    g = _Geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_forward(x, g.windows(), g.oh, g.ow, return_indices)


@_batched(2)
def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        indices=None):
    if indices is None:
        _, indices = max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)
    return _scatter_add(grad_out, indices, x.shape)


def _avg_divisors(g, count_include_pad, divisor_override):
    div = np.empty((g.oh, g.ow), dtype=np.float64)
    for i, j, rows, cols in g.windows():
        if divisor_override is not None:
            div[i, j] = divisor_override
        elif count_include_pad:
            div[i, j] = g.pool_size(i, j)
        else:
            div[i, j] = len(rows) * len(cols)
    return div


@_batched(1)
def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    g = _Geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    div = _avg_divisors(g, count_include_pad, divisor_override)
    y = np.empty(x.shape[:2] + (g.oh, g.ow), dtype=x.dtype)
    for i, j, rows, cols in g.windows():
        y[:, :, i, j] = x[:, :, rows][:, :, :, cols].sum(axis=(2, 3)) / div[i, j]
    return y


@_batched(2)
def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    g = _Geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    div = _avg_divisors(g, count_include_pad, divisor_override)
    gi = np.zeros(x.shape, dtype=grad_out.dtype)
    for i, j, rows, cols in g.windows():
        gi[:, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] += (grad_out[:, :, i, j] / div[i, j])[:, :, None, None]
    return gi


def _lp_factor(g):
    """PyTorch's kh*kw / count_include_pad divisor per window (1 unless a ceil_mode window runs past
    the padded input)."""
    f = np.empty((g.oh, g.ow), dtype=np.float64)
    for i, j, _, _ in g.windows():
        f[i, j] = (g.kh * g.kw) / g.pool_size(i, j)
    return f


def _lp_norms(win, p, f):
    """(scale, t) per window with the norm (f * sum |x|^p)^(1/p) = scale * t, in float64 and scaled
    by the window's max |x| so that it overflows only where the norm itself does (|x| = 3e38 with
    p = 3 would overflow float32's power sum, and p = 9 float64's). A window holding inf or NaN
    keeps scale 1, so inf/NaN propagate as in the plain formula."""
    a = np.abs(win.astype(np.float64))
    with np.errstate(invalid="ignore"):
        m = a.max(axis=(2, 3)) if a.size else np.zeros(a.shape[:2])
    scale = np.where(np.isfinite(m) & (m > 0), m, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        t = (f * np.sum((a / scale[:, :, None, None]) ** p, axis=(2, 3))) ** (1.0 / p)
    return scale, t


@_batched(1)
def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, padding=0):
    p = norm_type
    g = _Geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    f = _lp_factor(g)
    y = np.empty(x.shape[:2] + (g.oh, g.ow), dtype=x.dtype)
    for i, j, rows, cols in g.windows():
        scale, t = _lp_norms(x[:, :, rows][:, :, :, cols], p, f[i, j])
        with np.errstate(over="ignore"):
            y[:, :, i, j] = scale * t
    return y


@_batched(2)
def lp_pool2d_backward(grad_out, x, norm_type, kernel_size, stride=None, ceil_mode=False, *, padding=0):
    p = norm_type
    g = _Geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    f = _lp_factor(g)
    gi = np.zeros(x.shape, dtype=np.float64)
    for i, j, rows, cols in g.windows():
        win = x[:, :, rows][:, :, :, cols].astype(np.float64)
        scale, t = _lp_norms(win, p, f[i, j])
        ok = (win != 0) & (t[:, :, None, None] != 0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.abs(win) / scale[:, :, None, None] / np.where(ok, t[:, :, None, None], 1)
            d = np.where(ok, f[i, j] * np.sign(win) * ratio ** (p - 1), 0)
        gi[:, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] += grad_out[:, :, i, j][:, :, None, None] * d
    return gi.astype(grad_out.dtype, copy=False)


def _adaptive_windows(x, output_size):
    oh, ow = _adaptive_size(x, output_size)
    rows, cols = _adaptive_ranges(x.shape[2], oh), _adaptive_ranges(x.shape[3], ow)
    return [(i, j, rows[i], cols[j]) for i in range(oh) for j in range(ow)], oh, ow


@_batched(1)
def adaptive_avg_pool2d(x, output_size):
    windows, oh, ow = _adaptive_windows(x, output_size)
    y = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i, j, rows, cols in windows:
        y[:, :, i, j] = x[:, :, rows][:, :, :, cols].mean(axis=(2, 3))
    return y


@_batched(2)
def adaptive_avg_pool2d_backward(grad_out, x, output_size):
    windows, _, _ = _adaptive_windows(x, output_size)
    gi = np.zeros(x.shape, dtype=grad_out.dtype)
    for i, j, rows, cols in windows:
        gi[:, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] += \
            (grad_out[:, :, i, j] / (len(rows) * len(cols)))[:, :, None, None]
    return gi


@_batched(1)
def adaptive_max_pool2d(x, output_size, return_indices=False):
    windows, oh, ow = _adaptive_windows(x, output_size)
    return _max_forward(x, windows, oh, ow, return_indices)


@_batched(2)
def adaptive_max_pool2d_backward(grad_out, x, output_size, *, indices=None):
    if indices is None:
        _, indices = adaptive_max_pool2d(x, output_size, return_indices=True)
    return _scatter_add(grad_out, indices, x.shape)


def _unpool_size(x, kernel_size, stride, padding, output_size):
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride, (kh, kw))
    ph, pw = _pair(padding)
    if output_size is not None:
        return tuple(int(s) for s in tuple(output_size)[-2:])
    return (x.shape[-2] - 1) * sh + kh - 2 * ph, (x.shape[-1] - 1) * sw + kw - 2 * pw


@_batched(2)
def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    oh, ow = _unpool_size(x, kernel_size, stride, padding, output_size)
    n, c = x.shape[:2]
    y = np.zeros((n, c, oh * ow), dtype=x.dtype)
    xs, ix = _planes(x, n, c), _planes(indices, n, c)
    for a in range(n):
        for b in range(c):
            for k in range(xs.shape[2]):  # in order: with duplicate indices the last write wins
                y[a, b, ix[a, b, k]] = xs[a, b, k]
    return y.reshape(n, c, oh, ow)


@_batched(3)
def max_unpool2d_backward(grad_out, x, indices, kernel_size, stride=None, padding=0, output_size=None):
    n, c = x.shape[:2]
    g = _planes(grad_out, n, c)
    return np.take_along_axis(g, _planes(indices, n, c), axis=2).reshape(x.shape).astype(grad_out.dtype)


def global_avg_pool2d(x):
    return x.mean(axis=(2, 3), dtype=np.float64).astype(x.dtype, copy=False)


def global_avg_pool2d_backward(grad_out, x):
    h, w = x.shape[2:]
    g = grad_out / (h * w)
    return np.broadcast_to(g[:, :, None, None], x.shape).astype(grad_out.dtype, copy=True)
