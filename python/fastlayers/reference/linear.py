"""NumPy reference: the dense layer y = x w^T + b over the last axis of x."""

import numpy as np

__all__ = ["linear", "linear_backward"]


def linear(x, w, b=None):
    y = np.matmul(x, w.T)
    return y if b is None else y + b


def linear_backward(grad_out, x, w, *, with_bias=True):
    rows = int(np.prod(x.shape[:-1]))  # explicit: reshape(-1, 0) is ambiguous when in == 0
    g2 = grad_out.reshape(rows, w.shape[0])
    x2 = x.reshape(rows, w.shape[1])
    grad_x = (g2 @ w).reshape(x.shape)
    grad_w = g2.T @ x2
    grad_b = g2.sum(axis=0) if with_bias else None
    return grad_x, grad_w, grad_b
