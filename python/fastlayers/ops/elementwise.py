"""Elementwise binary ops with NumPy broadcasting: add (a + alpha * b) and mul, and their backwards.

Same-shape operands take a flat kernel (the residual add of a ResNet block). Other shapes are
broadcast as NumPy and torch do; the kernels get a canonical geometry (`_collapse`): the output
shape with size-1 dimensions dropped and neighbouring dimensions merged where both operands are
laid out alike, and each operand's strides over it (0 along a broadcast dimension). A scalar or a
same-shape pair is then one dimension, a bias over rows or columns two, so the common patterns
run as plain strided loops; anything else takes the same general strided path. The backward of a
broadcast operand sums the output gradient over its broadcast dimensions (`sum_to_shape`).
"""

from __future__ import annotations

import numbers

import numpy as np

from .._backend import CPU, backend_for
from .._checks import as_float, as_float32
from ..memory import cached_float32

__all__ = ["add", "add_backward", "mul", "mul_backward"]

_ADD, _MUL = 0, 1  # cpu::BinaryOp
_MAX_DIMS = 8  # cpu::kMaxBroadcastDims (and the CUDA twin)


def _collapse(out_shape, *shapes):
    """(shape, [strides of each operand]) of the broadcast out_shape in canonical form."""
    nd = len(out_shape)
    strides = []
    for s in shapes:
        s = (1,) * (nd - len(s)) + tuple(s)
        st, acc = [0] * nd, 1
        for i in range(nd - 1, -1, -1):
            if s[i] == 1 and out_shape[i] != 1:
                st[i] = 0
            else:
                st[i] = acc
                acc *= s[i]
        strides.append(st)
    dims = []
    for i in range(nd):
        if out_shape[i] == 1:
            continue
        cur = [st[i] for st in strides]
        if dims:
            size, prev = dims[-1]
            if all(p == c * out_shape[i] for p, c in zip(prev, cur)):  # one run across both dims
                dims[-1] = (size * out_shape[i], cur)
                continue
        dims.append((out_shape[i], cur))
    if not dims:
        return [1], [[0] for _ in shapes]
    return [d[0] for d in dims], [[d[1][k] for d in dims] for k in range(len(shapes))]


def _operand(x, name, be):
    if isinstance(x, numbers.Number) and not isinstance(x, bool):
        return be.xp.asarray(x, dtype=np.float32)
    return as_float32(x, name, be)


def _alpha(alpha) -> float:
    return as_float(alpha, "alpha")


def _broadcast_shape(a_shape, b_shape):
    try:
        return tuple(np.broadcast_shapes(tuple(a_shape), tuple(b_shape)))
    except ValueError:
        raise ValueError(f"b must have a shape that broadcasts with a's {tuple(a_shape)}, got "
                         f"{tuple(b_shape)}") from None


def _binary(op, a, b, alpha, be):
    shape = _broadcast_shape(a.shape, b.shape)
    y = be.empty(shape)
    if y.size == 0:
        return y
    dims, (sa, sb) = _collapse(shape, a.shape, b.shape)
    if len(dims) > _MAX_DIMS:  # an exotic pattern: expand b (one copy), then a plain pass
        b = be.xp.broadcast_to(b, shape).copy()
        dims, (sa, sb) = _collapse(shape, a.shape, b.shape)
        if len(dims) > _MAX_DIMS:
            a = be.xp.broadcast_to(a, shape).copy()
            dims, (sa, sb) = [a.size], [[1], [1]]
    be.run("binary_broadcast_forward", op, a, b, y, dims, sa, sb, alpha)
    return y


def add(a, b, alpha=1):
    """a + alpha * b, with NumPy broadcasting (torch.add); a or b may be a Python number.

    Same-shape float32 operands with alpha 1 take the flat residual-add kernel."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape and alpha == 1
            and a.dtype == np.float32 and b.dtype == np.float32 and a.flags.c_contiguous
            and b.flags.c_contiguous and a.flags.aligned and b.flags.aligned):
        y = cached_float32(a.shape, a.size)  # the residual add: nothing to check or convert
        CPU._module.add_forward(a, b, y, a.size)
        return y
    be = backend_for(a=a if hasattr(a, "dtype") else None, b=b if hasattr(b, "dtype") else None)
    alpha = _alpha(alpha)
    a = _operand(a, "a", be)
    b = _operand(b, "b", be)
    if a.shape == b.shape and alpha == 1.0:
        y = be.empty(a.shape)
        be.run("add_forward", a, b, y, a.size)
        return y
    return _binary(_ADD, a, b, alpha, be)


def mul(a, b):
    """a * b elementwise with NumPy broadcasting (torch.mul); a or b may be a Python number."""
    be = backend_for(a=a if hasattr(a, "dtype") else None, b=b if hasattr(b, "dtype") else None)
    return _binary(_MUL, _operand(a, "a", be), _operand(b, "b", be), 1.0, be)


def sum_to_shape(g, shape, alpha=1.0):
    """alpha * g summed over the dimensions along which an operand of `shape` was broadcast to
    g's shape (the backward of broadcasting); g is a contiguous float32 array. Always a new array."""
    be = backend_for(g=g)
    shape = tuple(shape)
    out = be.empty(shape)
    if out.size == 0:
        return out
    if g.size == 0:
        out[...] = 0
        return out
    dims, (so,) = _collapse(tuple(g.shape), shape)
    be.run("sum_broadcast", g, out, dims, so, alpha)
    return out


def _shape_of(x, name):
    if isinstance(x, numbers.Number) and not isinstance(x, bool):
        return ()
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    return tuple(shape)


def add_backward(grad_out, a=None, b=None, alpha=1):
    """(grad_a, grad_b) of add(a, b, alpha): grad_out summed to a's shape, and alpha * grad_out
    summed to b's shape. Only the shapes of a and b are used. add_backward(grad_out) (same-shape
    operands, alpha 1) gives two new arrays equal to grad_out (copies, never the caller's array
    and not one array twice, so accumulating into one gradient cannot change the other)."""
    be = backend_for(grad_out=grad_out)
    g = as_float32(grad_out, "grad_out", be)
    if a is None and b is None:
        alpha = _alpha(alpha)
        if alpha == 1.0:
            return g.copy(), g.copy()
        return g.copy(), sum_to_shape(g, g.shape, alpha)
    if a is None or b is None:
        raise TypeError("add_backward needs both a and b (their shapes), or neither for same-shape operands")
    alpha = _alpha(alpha)
    a_shape, b_shape = _shape_of(a, "a"), _shape_of(b, "b")
    shape = _broadcast_shape(a_shape, b_shape)
    if tuple(g.shape) != shape:
        raise ValueError(f"grad_out must have the output's shape {shape}, got {tuple(g.shape)}")
    grad_a = g.copy() if a_shape == shape else sum_to_shape(g, a_shape)
    grad_b = g.copy() if b_shape == shape and alpha == 1.0 else sum_to_shape(g, b_shape, alpha)
    return grad_a, grad_b


def mul_backward(grad_out, a, b):
    """(grad_a, grad_b) of mul(a, b): grad_out * b summed to a's shape, grad_out * a summed to
    b's shape."""
    be = backend_for(grad_out=grad_out, a=a if hasattr(a, "dtype") else None,
                     b=b if hasattr(b, "dtype") else None)
    g = as_float32(grad_out, "grad_out", be)
    a = _operand(a, "a", be)
    b = _operand(b, "b", be)
    shape = _broadcast_shape(a.shape, b.shape)
    if tuple(g.shape) != shape:
        raise ValueError(f"grad_out must have the output's shape {shape}, got {tuple(g.shape)}")
    gb_full = _binary(_MUL, g, a, 1.0, be)  # g * a, in the output's shape
    ga_full = _binary(_MUL, g, b, 1.0, be)
    grad_a = ga_full if tuple(a.shape) == shape else sum_to_shape(ga_full, a.shape)
    grad_b = gb_full if tuple(b.shape) == shape else sum_to_shape(gb_full, b.shape)
    return grad_a, grad_b

