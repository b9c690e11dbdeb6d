"""NumPy reference: elementwise add and mul with NumPy broadcasting, and their backwards."""

import numpy as np

__all__ = ["add", "add_backward", "mul", "mul_backward"]


def _sum_to_shape(g, shape):
    """Sum g over the axes along which an operand of `shape` was broadcast to g.shape."""
    shape = tuple(shape)
    lead = g.ndim - len(shape)
    if lead:
        g = np.sum(g, axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = np.sum(g, axis=axes, keepdims=True)
    return np.asarray(g).reshape(shape)


def add(a, b, alpha=1):
    """a + alpha * b (torch.add), broadcasting as NumPy."""
    a, b = np.asarray(a), np.asarray(b)
    return np.asarray(a + alpha * b if alpha != 1 else a + b)


def add_backward(grad_out, a=None, b=None, alpha=1):
    """(grad_a, grad_b); with no a and b (same-shape operands) both are grad_out (copies)."""
    grad_out = np.asarray(grad_out)
    if a is None and b is None:
        return grad_out.copy(), np.asarray(alpha * grad_out if alpha != 1 else grad_out.copy())
    return (_sum_to_shape(grad_out, np.shape(a)).copy(),
            _sum_to_shape(alpha * grad_out if alpha != 1 else grad_out, np.shape(b)).copy())


def mul(a, b):
    """a * b (torch.mul), broadcasting as NumPy."""
    return np.asarray(np.asarray(a) * np.asarray(b))


def mul_backward(grad_out, a, b):
    """(grad_out * b summed to a's shape, grad_out * a summed to b's shape)."""
    a, b, grad_out = np.asarray(a), np.asarray(b), np.asarray(grad_out)
    return _sum_to_shape(grad_out * b, a.shape), _sum_to_shape(grad_out * a, b.shape)
