"""NumPy reference: gemm and matmul. Works in the dtype it is given (float32 or float64)."""

import numpy as np

__all__ = ["gemm", "gemm_backward", "matmul", "matmul_backward"]


def _op(x, trans):
    return x.T if trans else x


def gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    out = alpha * (_op(a, trans_a) @ _op(b, trans_b))
    if beta != 0.0:
        out = out + beta * c
    return out


def gemm_backward(grad_out, a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    d_op_a = alpha * (grad_out @ _op(b, trans_b).T)
    d_op_b = alpha * (_op(a, trans_a).T @ grad_out)
    grad_c = beta * grad_out if beta != 0.0 else None
    return _op(d_op_a, trans_a), _op(d_op_b, trans_b), grad_c


def matmul(a, b):
    """torch.matmul (NumPy's matmul has the same rules: 1-D operands promoted, batch broadcast)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul needs arguments of at least 1 dimension")
    return np.asarray(np.matmul(a, b))


def _sum_to_shape(g, shape):
    lead = g.ndim - len(shape)
    if lead:
        g = np.sum(g, axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return np.sum(g, axis=axes, keepdims=True) if axes else g


def matmul_backward(grad_out, a, b):
    """(grad_a, grad_b): grad_out @ b^T and a^T @ grad_out, summed over broadcast batch dims."""
    a, b, g = np.asarray(a), np.asarray(b), np.asarray(grad_out)
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    g2 = g.reshape(batch + (a2.shape[-2], b2.shape[-1]))
    ga = _sum_to_shape(g2 @ np.swapaxes(b2, -1, -2), a2.shape)
    gb = _sum_to_shape(np.swapaxes(a2, -1, -2) @ g2, b2.shape)
    return ga.reshape(a.shape), gb.reshape(b.shape)
