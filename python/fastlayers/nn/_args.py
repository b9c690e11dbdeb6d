"""Argument checks for the layers, models and training loop: each failure is a TypeError (wrong
kind of value) or ValueError (wrong value) naming the argument, the expected and the actual value.
Kept apart from the classes so that every container (Sequential, the graph Model) can share them."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _backend

INDEX_MAX = 2**63 - 1


def as_size(value, name: str, minimum: int | None = 0) -> int:
    """An integer size (layer sizes, kernel extents, epochs, ...): floats are refused even when
    integral (2.5 would otherwise be truncated), as are bools and strings."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    if v > INDEX_MAX:
        raise ValueError(f"{name} must be at most 2**63 - 1, got {v}")
    return v


def as_size_pair(value, name: str, minimum: int | None = 0) -> tuple[int, int]:
    """An integer or a pair of integers, as (height, width)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return as_size(value[0], name, minimum), as_size(value[1], name, minimum)
    v = as_size(value, name, minimum)
    return v, v


def as_real(value, name: str, lo: float = -math.inf, hi: float = math.inf, *, lo_open=False, hi_open=False,
            finite: bool = False) -> float:
    """A real number in [lo, hi] (bounds open as asked); NaN never passes a bound."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok or (finite and not math.isfinite(v)):
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        extra = " and finite" if finite else ""
        raise ValueError(f"{name} must be in {lb}{lo}, {hi}{rb}{extra}, got {value!r}")
    return v


def as_flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def as_input(x, name: str = "x"):
    """A layer's input: a NumPy or CuPy array as is; a list or scalar converted with np.asarray."""
    if isinstance(x, np.ndarray) or _backend.is_cupy_array(x):
        return x
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:  # ragged lists and the like
        raise TypeError(f"{name} must be an array, got {type(x).__name__} that NumPy cannot convert ({e})") from None
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__} of dtype {a.dtype}")
    return a


def as_samples(x, name: str, *, allow_empty: bool = False) -> np.ndarray:
    """Training / inference data as a float32 NumPy array with a batch dimension."""
    if x is None:
        raise TypeError(f"{name} must be an array of samples, got None")
    if _backend.is_cupy_array(x):
        x = x.get()
    try:
        a = np.asarray(x, dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise TypeError(f"{name} must be a numeric array of samples, got {type(x).__name__} "
                        f"that does not convert to float32 ({e})") from None
    if a.ndim < 2:
        raise ValueError(f"{name} must have a batch dimension (N, ...), got shape {a.shape}")
    if len(a) == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (0 samples)")
    return a


def check_optimizer(optimizer, name: str = "optimizer"):
    """An optimizer object (fastlayers.optim.SGD(...), or anything with a callable step())."""
    if not callable(getattr(optimizer, "step", None)):
        raise TypeError(f"{name} must be an optimizer such as fastlayers.optim.SGD(model.parameters(), lr=0.01) "
                        f"(an object with a step() method), got {type(optimizer).__name__} {optimizer!r}")
    return optimizer


def check_callbacks(callbacks, name: str = "callbacks") -> list:
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"{name} must be a list of callbacks, got {type(callbacks).__name__}")
    for i, cb in enumerate(callbacks):
        for hook in ("on_train_begin", "on_epoch_end", "on_train_end"):
            if not callable(getattr(cb, hook, None)):
                raise TypeError(f"{name}[{i}] must be a callback (fastlayers.nn.Callback: on_train_begin, "
                                f"on_epoch_end, on_train_end), got {type(cb).__name__} {cb!r}")
    return list(callbacks)


def check_seed(seed, name: str = "seed"):
    """None, an int >= 0 or a numpy Generator, as np.random.default_rng takes them."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    return as_size(seed, name, minimum=0)


def check_fit_args(epochs, batch_size, validation_split, validation_data, shuffle, callbacks, verbose, seed):
    """fit's scalar arguments, checked before any work; returns them normalised."""
    epochs = as_size(epochs, "epochs", minimum=1)
    batch_size = as_size(batch_size, "batch_size", minimum=1)
    validation_split = as_real(validation_split, "validation_split", 0.0, 1.0, hi_open=True)
    if validation_data is not None and (not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2):
        raise ValueError(f"validation_data must be a pair (x_val, y_val), got {type(validation_data).__name__}"
                         + (f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else ""))
    shuffle = as_flag(shuffle, "shuffle")
    callbacks = check_callbacks(callbacks)
    verbose = int(verbose) if isinstance(verbose, (bool, np.bool_)) else as_size(verbose, "verbose", minimum=0)
    seed = check_seed(seed)
    return epochs, batch_size, validation_split, validation_data, shuffle, callbacks, verbose, seed
