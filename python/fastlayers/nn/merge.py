"""Merge layers for graph models: Add, Multiply, Concatenate. Each takes a list of arrays (call it on a
list of symbolic tensors: `nn.Add()([x, y])`) and its backward returns the list of their gradients.

Add runs on fl.add / fl.add_backward. Concatenate and Multiply go through the small functions below,
which use the ops fl.cat / fl.cat_backward (or fl.split) and fl.mul / fl.mul_backward when this
fastlayers has them (they are being added on other branches) and the array module's concatenate /
split / multiply (NumPy or CuPy) otherwise. Either way they look the ops up in the op namespace
(nn.use_ops), so nn.use_ops(fastlayers.reference) runs them in float64.
"""

from __future__ import annotations

import itertools

from .._backend import array_module
from ._ops import F
from .layers import Layer

__all__ = ["Add", "Multiply", "Concatenate"]


def _cat(arrays, axis: int):
    if hasattr(F, "cat"):
        return F.cat(list(arrays), axis)
    return array_module(arrays[0]).concatenate(arrays, axis=axis)


def _cat_backward(a, sizes, axis: int):
    """a cut along axis into pieces of the given sizes (the gradients of _cat's inputs)."""
    if hasattr(F, "cat_backward"):
        return list(F.cat_backward(a, list(sizes), axis))
    if hasattr(F, "split"):
        return list(F.split(a, list(sizes), axis))
    bounds = list(itertools.accumulate(int(s) for s in sizes))[:-1]
    return array_module(a).split(a, bounds, axis=axis)


def _mul(a, b):
    if hasattr(F, "mul"):
        return F.mul(a, b)
    return array_module(a).multiply(a, b)


class _Merge(Layer):
    """forward(list of arrays of one shape) -> one array; backward(grad) -> list of gradients."""

    _cache_attrs = ("_xs",)

    def _check_list(self, xs):
        if not isinstance(xs, (list, tuple)) or len(xs) < 2:
            got = f"a list of {len(xs)}" if isinstance(xs, (list, tuple)) else type(xs).__name__
            raise ValueError(f"{self.name} ({type(self).__name__}): takes a list of at least 2 inputs, got {got}")
        return list(xs)

    def _same_shapes(self, shapes, what="input shapes"):
        shapes = [tuple(s) for s in shapes]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{type(self).__name__} needs inputs of one shape, got {what} "
                             f"{', '.join(str(s) for s in shapes)}")
        return shapes[0]

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError("takes a list of at least 2 inputs")
        return self._same_shapes(input_shape)

    def _check_runtime(self, xs):
        xs = self._check_list(xs)
        try:
            self._same_shapes([x.shape for x in xs])
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None
        return xs


class Add(_Merge):
    """Elementwise sum of two or more inputs of one shape (a residual connection)."""

    def forward(self, xs, training=None):
        xs = self._check_runtime(xs)
        self._n = len(xs)
        y = F.add(xs[0], xs[1])
        for x in xs[2:]:
            y = F.add(y, x)
        return y

    def backward(self, grad_out):
        grads = list(F.add_backward(grad_out))
        while len(grads) < self._n:
            grads.append(F.add_backward(grad_out)[0])
        return grads


class Multiply(_Merge):
    """Elementwise product of two or more inputs of one shape (gating, attention masks)."""

    def forward(self, xs, training=None):
        xs = self._check_runtime(xs)
        self._xs = xs
        y = _mul(xs[0], xs[1])
        for x in xs[2:]:
            y = _mul(y, x)
        return y

    def backward(self, grad_out):
        xs = self._xs
        n = len(xs)
        if n == 2 and hasattr(F, "mul_backward"):
            return list(F.mul_backward(grad_out, xs[0], xs[1]))
        # d/dx_i = grad * prod_{j != i} x_j, from prefix and suffix products (no division)
        prefix = [None] * n
        for i in range(1, n):
            prefix[i] = xs[0] if i == 1 else _mul(prefix[i - 1], xs[i - 1])
        grads, suffix = [None] * n, None
        for i in range(n - 1, -1, -1):
            others = prefix[i] if suffix is None else (suffix if prefix[i] is None else _mul(prefix[i], suffix))
            grads[i] = _mul(grad_out, others)
            suffix = xs[i] if suffix is None else _mul(xs[i], suffix)
        return grads


class Concatenate(_Merge):
    """Joins two or more inputs along `axis`, counted over the batched array as torch.cat's dim:
    axis=1 (the default) is the channel axis of NCHW tensors, and the features of (N, F) ones.
    The batch axis (0) cannot be joined; negative axes count from the end."""

    _cache_attrs = ("_sizes",)

    def __init__(self, axis: int = 1):
        super().__init__()
        self.axis = int(axis)
        if self.axis == 0:
            raise ValueError("axis must not be 0 (the batch axis); axis=1 joins NCHW channels")
        self._config = dict(axis=self.axis)

    def describe(self, width: int = 44) -> str:
        return f"Concatenate(axis={self.axis})"[:width]

    def _sample_axis(self, rank: int) -> int:
        """The axis within a per-sample shape of `rank` dims (the batched array has rank + 1)."""
        ax = self.axis if self.axis > 0 else self.axis + rank + 1
        if not 1 <= ax <= rank:
            raise ValueError(f"axis {self.axis} is out of range for inputs of {rank + 1} dimensions (batch included)")
        return ax - 1

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError("takes a list of at least 2 inputs")
        shapes = [tuple(s) for s in input_shape]
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise ValueError(f"Concatenate needs inputs of one rank, got shapes {', '.join(map(str, shapes))}")
        ax = self._sample_axis(ranks.pop())
        rest = [s[:ax] + s[ax + 1:] for s in shapes]
        if any(r != rest[0] for r in rest):
            raise ValueError(f"Concatenate(axis={self.axis}) needs equal sizes on every other axis, got per-sample "
                             f"shapes {', '.join(map(str, shapes))}")
        out = list(shapes[0])
        out[ax] = sum(s[ax] for s in shapes)
        return tuple(out)

    def forward(self, xs, training=None):
        xs = self._check_list(xs)
        try:
            self.compute_output_shape([tuple(x.shape[1:]) for x in xs])
            if any(x.shape[0] != xs[0].shape[0] for x in xs):
                raise ValueError(f"the inputs have different batch sizes {[x.shape[0] for x in xs]}")
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None
        ax = self._sample_axis(xs[0].ndim - 1) + 1
        self._sizes = [int(x.shape[ax]) for x in xs]
        return _cat(xs, ax)

    def backward(self, grad_out):
        ax = self._sample_axis(grad_out.ndim - 1) + 1
        return _cat_backward(grad_out, self._sizes, ax)
