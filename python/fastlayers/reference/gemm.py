"""NumPy reference: gemm. Works in the dtype it is given (float32 or float64)."""

import numpy as np

__all__ = ["gemm", "gemm_backward"]


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
