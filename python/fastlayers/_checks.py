"""Argument checks shared by the public ops. Every failure names the argument and says what was
expected and what was given. Checks run once, before any kernel sees a pointer."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._backend import is_cupy_array

_F32 = np.dtype(np.float32)


def as_float32(x, name: str, backend):
    """x as a C-contiguous float32 array on `backend` (a copy only when needed).

    Float16/float64 and integer input is converted, non-contiguous input made contiguous;
    the caller's array is never modified. bool, complex and object arrays are rejected.
    """
    # Fast path (batch-1 work is many tiny calls): already a C-contiguous, aligned float32 NumPy
    # array (0-D included: its shape is kept).
    if type(x) is np.ndarray and x.dtype is _F32 and backend.name == "cpu":
        flags = x.flags
        if flags.c_contiguous and flags.aligned:
            return x
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    xp = backend.xp
    if backend.name == "cpu":
        if is_cupy_array(x):
            raise TypeError(f"{name} is a CuPy (GPU) array but the other arguments are NumPy arrays")
        if not isinstance(x, np.ndarray):
            try:
                x = np.asarray(x)
            except Exception as exc:  # e.g. ragged lists
                raise TypeError(f"{name} must be an array, got {type(x).__name__}") from exc
    kind = x.dtype.kind
    if kind not in "fiu":
        raise TypeError(f"{name} must have a real numeric dtype (float32 preferred), got {x.dtype}")
    # asarray(order="C"), not ascontiguousarray: the latter makes a 0-D array 1-D.
    return aligned(xp.asarray(x, dtype=xp.float32, order="C"))


def aligned(a):
    """a, or an aligned copy of it: a float32 view at an odd byte offset (np.frombuffer(buf,
    offset=1)) stays misaligned through asarray, and the kernels' float loads assume natural
    alignment (anything else is undefined behaviour in C++)."""
    if isinstance(a, np.ndarray):
        return a if a.flags.aligned else a.copy()
    return a if a.data.ptr % a.dtype.itemsize == 0 else a.copy()  # CuPy


def as_labels(labels, name: str, backend, *, batch: int, num_classes: int):
    """Integer class labels of shape (batch,) in [0, num_classes), as contiguous int64."""
    xp = backend.xp
    if backend.name == "cpu" and not isinstance(labels, np.ndarray):
        labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    if labels.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},) to match the batch, got {tuple(labels.shape)}")
    if batch:  # in the caller's dtype: a uint64 2**64-1 must not show as -1 after the int64 cast
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} must lie in [0, {num_classes}), got a label {bad}")
    return aligned(xp.ascontiguousarray(labels, dtype=xp.int64))


def check_ndim(x, ndim: int, name: str, layout: str = ""):
    if x.ndim != ndim:
        what = f" {layout}" if layout else ""
        raise ValueError(f"{name} must be {ndim}-D{what}, got shape {tuple(x.shape)}")


def check_shape(x, shape: tuple, name: str):
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(x.shape)}")


def as_int(value, name: str) -> int:
    if type(value) is int:  # fast path; the ABC check below costs ~0.3 us
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


INDEX_MAX = 2**63 - 1  # the kernels index with int64


def as_index(value, name: str) -> int:
    """An int that fits the kernels' int64 sizes (a geometry argument: stride, padding, ...)."""
    if type(value) is int and -INDEX_MAX <= value <= INDEX_MAX:  # fast path
        return value
    v = as_int(value, name)
    if not -INDEX_MAX <= v <= INDEX_MAX:
        raise ValueError(f"{name} must fit in a 64-bit signed integer (|{name}| <= 2**63 - 1), got {v}")
    return v


def as_index_pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints, as (height, width), each within int64."""
    if type(value) is int and -INDEX_MAX <= value <= INDEX_MAX:  # fast path
        return value, value
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return as_index(value[0], name), as_index(value[1], name)
    v = as_index(value, name)
    return v, v


def as_pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints, as (height, width)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return as_int(value[0], name), as_int(value[1], name)
    v = as_int(value, name)
    return v, v


def check_positive(value, name: str):
    values = value if isinstance(value, tuple) else (value,)
    if any(v <= 0 for v in values):
        raise ValueError(f"{name} must be positive, got {value!r}")


def check_nonnegative(value, name: str):
    values = value if isinstance(value, tuple) else (value,)
    if any(v < 0 for v in values):
        raise ValueError(f"{name} must be non-negative, got {value!r}")


FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_float(value, name: str) -> float:
    """A real scalar argument. The kernels take scalars as float32: a finite value past float32's
    range (|v| > 3.4e38) would turn into inf there, so it is refused (NaN and inf pass: the op
    decides)."""
    if type(value) is not float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
        try:
            value = float(value)
        except OverflowError:  # an int past double's range
            raise ValueError(f"{name} must be representable as float32 (|{name}| <= 3.4e38), got {value!r}") \
                from None
    if -FLOAT32_MAX <= value <= FLOAT32_MAX or value != value or value in (math.inf, -math.inf):
        return value
    raise ValueError(f"{name} must be representable as float32 (|{name}| <= 3.4e38, the kernels compute in "
                     f"float32), got {value!r}")


def check_reduction(reduction: str) -> str:
    if not isinstance(reduction, str):
        raise TypeError(f"reduction must be 'mean' or 'sum', got {type(reduction).__name__} {reduction!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return reduction
