"""cat (torch.cat), cat_backward and split (torch.split), on the CPU and CUDA copy kernels
(csrc/*/concat.*).

- cat(arrays, axis=0): a new array of the inputs joined along axis (PyTorch's `dim`); all other sizes
  must match, inputs must have at least one dimension, and a 1-D array of shape (0,) is skipped as
  PyTorch does (a legacy rule). The CPU kernel is a parallel memcpy over the output; the CUDA kernel
  a copy kernel that moves up to 32 pieces per launch (addresses passed by value, float4 moves when
  everything is 16-byte aligned).
- cat_backward(grad_out, sizes, axis=0): the tuple of pieces of grad_out of the given sizes along
  axis (cat's input gradients, in order).
- split(x, split_size_or_sections, axis=0): torch.split: an int is a chunk size (the last chunk may be
  smaller; 0 only for an empty axis), a list gives each size (they must sum to the axis' size).
  Returns a tuple of new contiguous arrays (PyTorch returns views; ours are copies, see docs/ops.md).
"""

from __future__ import annotations

import math

from .._backend import backend_for
from .._checks import as_float32, as_int

__all__ = ["cat", "cat_backward", "split"]


def _axis(axis, ndim: int, what: str) -> int:
    axis = as_int(axis, "axis")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis must be in [{-ndim}, {ndim - 1}] for {what} of {ndim} dimensions, got {axis}")
    return axis % ndim


def _address_list(be, arrays):
    """What the bindings take for a list of arrays: the arrays themselves on the CPU (the binding reads
    their data pointers), their device addresses on the GPU."""
    return list(arrays) if be.name == "cpu" else [a.data.ptr for a in arrays]


def cat(arrays, axis=0):
    """The arrays joined along axis, as torch.cat(arrays, dim=axis); a new float32 array."""
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(f"arrays must be a list or tuple of arrays, got {type(arrays).__name__}")
    if not arrays:
        raise ValueError("arrays must be a non-empty list of arrays, got an empty one")
    be = backend_for(**{f"arrays[{i}]": a for i, a in enumerate(arrays)})
    converted = []
    for i, a in enumerate(arrays):
        zero_d = getattr(a, "ndim", None) == 0
        a = as_float32(a, f"arrays[{i}]", be)
        if zero_d or a.ndim == 0:
            raise ValueError(f"arrays[{i}] is 0-dimensional: a zero-dimensional array cannot be concatenated")
        converted.append(a)
    kept = [(i, a) for i, a in enumerate(converted) if tuple(a.shape) != (0,)]  # PyTorch's legacy rule
    if not kept:
        return be.empty((0,))
    i0, first = kept[0]
    ndim = first.ndim
    ax = _axis(axis, ndim, f"arrays[{i0}]")
    for i, a in kept[1:]:
        if a.ndim != ndim:
            raise ValueError(f"arrays[{i}] has {a.ndim} dimensions (shape {tuple(a.shape)}) but arrays[{i0}] has "
                             f"{ndim} (shape {tuple(first.shape)}): all must have the same number")
        for d in range(ndim):
            if d != ax and a.shape[d] != first.shape[d]:
                raise ValueError(f"sizes must match except along axis {ax}: arrays[{i}] has shape "
                                 f"{tuple(a.shape)}, arrays[{i0}] has {tuple(first.shape)} (dimension {d})")
    shape = list(first.shape)
    shape[ax] = sum(int(a.shape[ax]) for _, a in kept)
    y = be.empty(tuple(shape))
    if y.size == 0:
        return y
    outer = math.prod(shape[:ax])
    inner = math.prod(shape[ax + 1:])
    pieces = [a for _, a in kept]
    be.run("cat_forward", _address_list(be, pieces), [int(a.shape[ax]) * inner for a in pieces], y, outer)
    return y


def _pieces(be, x, sizes, ax):
    shape = list(x.shape)
    outs = []
    for s in sizes:
        shape[ax] = s
        outs.append(be.empty(tuple(shape)))
    if x.size:
        outer = math.prod(shape[:ax])
        inner = math.prod(shape[ax + 1:])
        keep = [o for o in outs if o.size]
        if keep:
            be.run("cat_backward", x, _address_list(be, keep), [int(o.shape[ax]) * inner for o in keep], outer)
    return tuple(outs)


def _sizes(sizes, n: int, name: str) -> list[int]:
    if not isinstance(sizes, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of ints, got {type(sizes).__name__}")
    sizes = [as_int(s, name) for s in sizes]
    if any(s < 0 for s in sizes):
        raise ValueError(f"{name} must be non-negative, got {sizes}")
    if sum(sizes) != n:
        raise ValueError(f"{name} must sum exactly to the axis' size {n}, got {sizes} (sum {sum(sizes)})")
    return sizes


def cat_backward(grad_out, sizes, axis=0):
    """(grad of arrays[0], grad of arrays[1], ...): grad_out cut into pieces of the given sizes along axis."""
    be = backend_for(grad_out=grad_out)
    grad_out = as_float32(grad_out, "grad_out", be)
    if grad_out.ndim == 0:
        raise ValueError("grad_out must have at least one dimension, got a 0-dimensional array")
    ax = _axis(axis, grad_out.ndim, "grad_out")
    if isinstance(sizes, (list, tuple)) and not sizes:
        raise ValueError("sizes must be a non-empty list (one size per concatenated array), got []")
    return _pieces(be, grad_out, _sizes(sizes, int(grad_out.shape[ax]), "sizes"), ax)


def split(x, split_size_or_sections, axis=0):
    """torch.split(x, split_size_or_sections, dim=axis) as a tuple of new contiguous arrays."""
    be = backend_for(x=x)
    zero_d = getattr(x, "ndim", None) == 0
    x = as_float32(x, "x", be)
    if zero_d or x.ndim == 0:
        raise ValueError("x must have at least one dimension to split, got a 0-dimensional array")
    ax = _axis(axis, x.ndim, "x")
    n = int(x.shape[ax])
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = _sizes(split_size_or_sections, n, "split_size_or_sections")
    else:
        step = as_int(split_size_or_sections, "split_size_or_sections")
        if step < 0:
            raise ValueError(f"split_size_or_sections must be non-negative, got {step}")
        if step == 0 and n:
            raise ValueError(f"split_size_or_sections can only be 0 when the axis is empty, got 0 for an axis "
                             f"of size {n}")
        sizes = [min(step, n - s) for s in range(0, n, step)] if n else [0]
    return _pieces(be, x, sizes, ax)
