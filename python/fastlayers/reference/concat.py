"""NumPy reference: cat (torch.cat), its backward, and split (torch.split).

cat joins arrays along `axis` (PyTorch's `dim`); every other size must match. As PyTorch (a legacy
rule), a 1-D array of shape (0,) is skipped whatever the others' rank. cat_backward(grad_out, sizes,
axis) cuts grad_out into pieces of the given sizes along axis. split(x, split_size_or_sections, axis):
an int is a chunk size (the last chunk may be smaller), a list gives every piece's size. The
argument checks live in fastlayers.ops.concat; this is the plain computation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cat", "cat_backward", "split"]


def _dtype(*arrays):
    return np.float64 if any(np.asarray(a).dtype == np.float64 for a in arrays) else np.float32


def cat(arrays, axis=0):
    dt = _dtype(*arrays)
    kept = [np.asarray(a, dt) for a in arrays if np.shape(a) != (0,)]
    if not kept:
        return np.zeros((0,), dt)
    return np.concatenate(kept, axis=axis)


def cat_backward(grad_out, sizes, axis=0):
    go = np.asarray(grad_out)
    dt = np.float64 if go.dtype == np.float64 else np.float32
    cuts = np.cumsum([int(s) for s in sizes])[:-1]
    return tuple(np.ascontiguousarray(p, dtype=dt) for p in np.split(go, cuts, axis=axis))


def split(x, split_size_or_sections, axis=0):
    x = np.asarray(x)
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
    else:
        step = int(split_size_or_sections)
        sizes = [min(step, n - start) for start in range(0, n, step)] if n else [0]
    return cat_backward(x, sizes, axis)
