"""NumPy reference: pad (torch.nn.functional.pad) and its backward.

pad is (left, right) pairs from the last dimension backwards; a negative entry crops. Modes:
- "constant": out-of-range cells hold `value` (None means 0).
- "reflect": mirror at the edges without repeating the edge cell (NumPy's "reflect"); pads < size.
- "replicate": repeat the edge cell (NumPy's "edge").
- "circular": wrap around. PyTorch crops first and wraps around the cropped length (so with a negative
  pad on one side the other side's pad repeats the cropped block), pads <= that length.
reflect/replicate/constant crop after padding (a cropped side is simply cut off the padded result).
The argument checks live in fastlayers.ops.pad; this is the plain computation.
pad_backward is the adjoint: every output cell's gradient summed into the input cell it copies.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pad", "pad_backward"]

_NUMPY_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pairs(ndim, pad):
    """Per-dimension (left, right), all dimensions, from PyTorch's last-dimension-first list."""
    widths = [(0, 0)] * ndim
    for i in range(len(pad) // 2):
        widths[ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return widths


def _crop(a, widths):
    return a[tuple(slice(max(-lo, 0), a.shape[d] - max(-hi, 0)) for d, (lo, hi) in enumerate(widths))]


def _apply(a, pad, mode, fill):
    widths = _pairs(a.ndim, pad)
    if mode not in _NUMPY_MODE:
        raise ValueError(f"mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    out_shape = tuple(n + lo + hi for n, (lo, hi) in zip(a.shape, widths))
    if 0 in out_shape:  # nothing to compute (NumPy cannot wrap an array with an empty axis)
        return np.empty(out_shape, a.dtype)
    if mode == "circular":  # PyTorch crops first, then wraps around what is left
        a = _crop(a, widths)
    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    kw = {"constant_values": fill} if mode == "constant" else {}
    out = np.pad(a, grow, mode=_NUMPY_MODE[mode], **kw)
    if mode != "circular":
        out = _crop(out, widths)
    return out


def pad(x, pad, mode="constant", value=None):
    x = np.asarray(x)
    dt = np.float64 if x.dtype == np.float64 else np.float32
    return np.ascontiguousarray(_apply(x.astype(dt), pad, mode, 0.0 if value is None else value), dtype=dt)


def pad_backward(grad_out, x, pad, mode="constant", value=None):
    """grad_x[i] = sum of grad_out over the output cells that copy input cell i."""
    x, go = np.asarray(x), np.asarray(grad_out)
    dt = np.float64 if np.float64 in (x.dtype, go.dtype) else np.float32
    source = _apply(np.arange(x.size, dtype=np.int64).reshape(x.shape), pad, mode, -1)  # input cell per output
    if source.shape != go.shape:
        raise ValueError(f"grad_out must have shape {source.shape}, got {go.shape}")
    kept = source >= 0
    gx = np.bincount(source[kept], weights=go[kept].astype(np.float64), minlength=x.size)
    return gx.reshape(x.shape).astype(dt)
