"""NumPy reference: dropout with the counter-based Philox4x32-10 generator.

The mask is a pure function of (seed, flat element index i), identical to csrc/common/philox.h:
    key = (seed mod 2^32, seed >> 32);  counter = (i//4 mod 2^32, (i//4) >> 32, 0, 0)
    word = Philox4x32-10(counter, key)[i % 4];  u = (word >> 8) * 2^-24;  keep = u >= p
and y = x * mask * (1 / (1 - p)) with the scale rounded to x's dtype.
"""

import math
import numbers

import numpy as np

__all__ = ["dropout", "dropout_backward", "dropout_mask"]  # philox4x32_10 is a module-level helper

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_LO = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)


def philox4x32_10(counter, key):
    """Philox4x32-10 on arrays: counter is 4 arrays (or ints) of uint32 words, key 2 ints.

    Returns the 4 output words as uint64 arrays holding 32-bit values. The 32x32 -> 64-bit
    products are exact in uint64, which gives mulhi (>> 32) and mullo (& 0xffffffff)."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & _LO for c in counter)
    k0, k1 = int(key[0]) & 0xFFFFFFFF, int(key[1]) & 0xFFFFFFFF
    for r in range(10):
        if r:
            k0, k1 = (k0 + _W0) & 0xFFFFFFFF, (k1 + _W1) & 0xFFFFFFFF
        p0, p1 = _M0 * c0, _M1 * c2
        c0, c1, c2, c3 = ((p1 >> _32) ^ c1 ^ np.uint64(k0), p1 & _LO,
                          (p0 >> _32) ^ c3 ^ np.uint64(k1), p0 & _LO)
    return c0, c1, c2, c3


def _check(p, seed):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"p must be a number in [0, 1), got {p!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
    return int(seed)


def dropout_mask(shape, p, *, seed):
    seed = _check(p, seed)
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    n = math.prod(shape)
    block = np.arange((n + 3) // 4, dtype=np.uint64)
    words = philox4x32_10((block & _LO, block >> _32, 0, 0), (seed & 0xFFFFFFFF, seed >> 32))
    words = np.stack(np.broadcast_arrays(*words), axis=1).reshape(-1)[:n]  # element i = word i % 4 of block i//4
    threshold = math.ceil(p * 2**24)  # u >= p  <=>  (word >> 8) >= ceil(p * 2^24), exactly
    return ((words >> np.uint64(8)) >= threshold).astype(np.float32).reshape(shape)


def dropout(x, p=0.5, *, seed, training=True):
    _check(p, seed)
    if not training or p == 0:
        return x.copy()
    scale = np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
    with np.errstate(invalid="ignore"):  # a dropped inf gives NaN (inf * 0), as the product says
        return x * (dropout_mask(x.shape, p, seed=seed).astype(x.dtype) * scale)


def dropout_backward(grad_out, p=0.5, *, seed):
    return dropout(grad_out, p, seed=seed)
