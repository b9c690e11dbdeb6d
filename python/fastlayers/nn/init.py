"""Weight initialisers, seedable through a numpy Generator (or an int seed).

Every function takes the weight shape and returns a float32 NumPy array. Fans follow PyTorch:
dense (out, in) -> fan_in = in, fan_out = out; conv (K, C/groups, *kernel) -> fan_in = C/groups * prod(kernel),
fan_out = K * prod(kernel).

- lecun_uniform / lecun_normal: variance 1/fan_in (std 1/sqrt(fan_in)); the default for Linear and Conv.
- xavier_* (= glorot_*): variance 2/(fan_in + fan_out).
- he_* (Kaiming): variance 2/fan_in, for ReLU networks.
Biases start at zero.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["fans", "as_generator", "lecun_uniform", "lecun_normal", "xavier_uniform", "xavier_normal",
           "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros", "get"]


def as_generator(rng=None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def fans(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"shape must have at least 2 dimensions (out, in, ...), got {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _uniform(shape, bound, rng):
    return as_generator(rng).uniform(-bound, bound, size=shape).astype(np.float32)


def _normal(shape, std, rng):
    return (as_generator(rng).standard_normal(size=shape) * std).astype(np.float32)


def lecun_uniform(shape, rng=None):
    fan_in, _ = fans(shape)
    return _uniform(shape, math.sqrt(3.0 / fan_in), rng)


def lecun_normal(shape, rng=None):
    fan_in, _ = fans(shape)
    return _normal(shape, math.sqrt(1.0 / fan_in), rng)


def xavier_uniform(shape, rng=None):
    fan_in, fan_out = fans(shape)
    return _uniform(shape, math.sqrt(6.0 / (fan_in + fan_out)), rng)


def xavier_normal(shape, rng=None):
    fan_in, fan_out = fans(shape)
    return _normal(shape, math.sqrt(2.0 / (fan_in + fan_out)), rng)


glorot_uniform = xavier_uniform
glorot_normal = xavier_normal


def he_uniform(shape, rng=None):
    fan_in, _ = fans(shape)
    return _uniform(shape, math.sqrt(6.0 / fan_in), rng)


def he_normal(shape, rng=None):
    fan_in, _ = fans(shape)
    return _normal(shape, math.sqrt(2.0 / fan_in), rng)


def zeros(shape, rng=None):
    return np.zeros(shape, dtype=np.float32)


_BY_NAME = {f.__name__: f for f in (lecun_uniform, lecun_normal, xavier_uniform, xavier_normal,
                                   he_uniform, he_normal, zeros)}
_BY_NAME.update(glorot_uniform=xavier_uniform, glorot_normal=xavier_normal)


def get(init):
    """An initialiser by name ('lecun_uniform', 'he_normal', ...) or a callable(shape, rng) as is."""
    if callable(init):
        return init
    try:
        return _BY_NAME[init]
    except KeyError:
        raise ValueError(f"init must be one of {sorted(_BY_NAME)} or a callable, got {init!r}") from None
