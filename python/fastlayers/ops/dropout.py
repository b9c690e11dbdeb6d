"""Inverted dropout with a counter-based mask (Philox4x32-10, csrc/common/philox.h).

Element i (flat, C order) is kept iff u_i >= p, where u_i = (word >> 8) * 2^-24 and word is output
word i % 4 of Philox4x32-10(counter=(i//4 low 32 bits, i//4 high 32 bits, 0, 0),
key=(seed low 32 bits, seed high 32 bits)). The mask is therefore a pure function of (seed, i):
the CPU kernels, the CUDA kernels and fastlayers.reference give the same mask bit for bit, and the
backward pass regenerates it instead of storing it. Kept elements are scaled by float32(1/(1-p)).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._backend import CPU, backend_for
from .._checks import as_float, as_float32

__all__ = ["dropout", "dropout_backward", "dropout_mask"]


def _check_p(p) -> float:
    p = as_float(p, "p")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p must be in [0, 1), got {p!r}")
    return p


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed


def _threshold(p: float) -> int:
    # u >= p with u = k * 2^-24  <=>  k >= ceil(p * 2^24): exact (p * 2^24 is exact in double).
    return math.ceil(p * 2**24)


def _scale(p: float) -> float:
    return float(np.float32(1.0 / (1.0 - p)))


def _apply(kernel, t, name, p, seed):
    be = backend_for(**{name: t})
    t = as_float32(t, name, be)
    if p == 0.0:
        return t.copy()
    out = be.empty(t.shape)
    be.run(kernel, t, out, t.size, seed, _threshold(p), _scale(p))
    return out


def dropout(x, p=0.5, *, seed, training=True):
    """x * mask / (1 - p) with the Philox mask of (seed, element index); a copy of x when
    training is False or p == 0."""
    p, seed = _check_p(p), _check_seed(seed)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be a bool, got {type(training).__name__} {training!r}")
    if not training:
        be = backend_for(x=x)
        return as_float32(x, "x", be).copy()
    return _apply("dropout_forward", x, "x", p, seed)


def dropout_backward(grad_out, p=0.5, *, seed):
    """grad_out * mask / (1 - p) with the same mask as dropout(x, p, seed=seed)."""
    p, seed = _check_p(p), _check_seed(seed)
    return _apply("dropout_backward", grad_out, "grad_out", p, seed)


def dropout_mask(shape, p, *, seed):
    """The 0/1 float32 keep-mask of the given shape (a NumPy array), as dropout uses it."""
    p, seed = _check_p(p), _check_seed(seed)
    dims = (shape,) if isinstance(shape, numbers.Integral) else shape
    if not isinstance(dims, (tuple, list)) or any(
            isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in dims):
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}")
    dims = tuple(int(d) for d in dims)
    if any(d < 0 for d in dims):
        raise ValueError(f"shape must not have negative sizes, got {dims}")
    if math.prod(dims) > 2**48:  # the kernels' element limit (ops/conv.py MAX_ELEMENTS); far past any memory
        raise ValueError(f"shape {dims} has {math.prod(dims)} elements, more than the 2**48 fastlayers supports")
    mask = CPU.empty(dims)
    CPU.run("dropout_mask", mask, mask.size, seed, _threshold(p))
    return mask
