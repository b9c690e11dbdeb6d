"""General matrix multiply: C = alpha * op(a) * op(b) + beta * c, and its gradients."""

from __future__ import annotations

import math

import numpy as np

from .._backend import CPU, backend_for
from .._checks import as_float, as_float32, check_ndim, check_shape

__all__ = ["gemm", "gemm_backward"]


def _as_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def _finite(value, name: str) -> float:
    """alpha / beta: finite (inf * an empty sum would be 0 by BLAS's rule and NaN by IEEE's; no
    use of an infinite scale is worth that ambiguity)."""
    value = as_float(value, name)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def _op_shape(x, trans: bool) -> tuple[int, int]:
    rows, cols = x.shape
    return (cols, rows) if trans else (rows, cols)


def sgemm_into(be, out, a, b, trans_a: bool, trans_b: bool, alpha: float, beta: float):
    """out = alpha * op(a) * op(b) + beta * out on contiguous float32 2-D arrays (no checks).

    Shared by the ops built on GEMM; `be.run("sgemm", ...)` has the same arguments on both backends,
    plus, on the GPU, the split-K workspace its plan asks for (Backend.workspace).
    """
    m, k = _op_shape(a, trans_a)
    n = out.shape[1]
    be.run("sgemm", trans_a, trans_b, m, n, k, alpha, a, a.shape[1], b, b.shape[1], beta, out,
           out.shape[1], *be.workspace("sgemm_workspace_floats", trans_a, trans_b, m, n, k))
    return out


def _prepare(a, b, trans_a, trans_b, be):
    a = as_float32(a, "a", be)
    b = as_float32(b, "b", be)
    check_ndim(a, 2, "a")
    check_ndim(b, 2, "b")
    m, k = _op_shape(a, trans_a)
    kb, n = _op_shape(b, trans_b)
    if k != kb:
        raise ValueError(
            f"inner dimensions must agree: op(a) is {m}x{k} (a.shape={tuple(a.shape)}, trans_a={trans_a}) "
            f"but op(b) is {kb}x{n} (b.shape={tuple(b.shape)}, trans_b={trans_b})"
        )
    return a, b, m, n, k


def _plain_numpy(a, b, trans_a, trans_b, alpha, beta, c) -> bool:
    """Two C-contiguous, aligned float32 NumPy matrices with agreeing inner dimensions, bool flags,
    alpha 1, beta 0, no c: nothing to convert and nothing that could fail a check."""
    return (c is None and type(a) is np.ndarray and type(b) is np.ndarray
            and (trans_a is False or trans_a is True) and (trans_b is False or trans_b is True)
            and type(alpha) is float and alpha == 1.0 and type(beta) is float and beta == 0.0
            and a.dtype == np.float32 and b.dtype == np.float32 and a.ndim == 2 and b.ndim == 2
            and a.flags.c_contiguous and b.flags.c_contiguous and a.flags.aligned and b.flags.aligned
            and a.shape[0 if trans_a else 1] == b.shape[1 if trans_b else 0])


def gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """alpha * op(a) @ op(b) + beta * c, op(x) = x.T when trans_x; c (M, N) is only read.

    c is required when beta != 0 and ignored (not read) when beta == 0.
    """
    if _plain_numpy(a, b, trans_a, trans_b, alpha, beta, c):
        # The common call skips the generic checks: they cost ~2.5 us, as much as a whole
        # 100x200x10 product (the 200->10 dense layer).
        m, k = _op_shape(a, trans_a)
        n = b.shape[0] if trans_b else b.shape[1]
        out = np.empty((m, n), np.float32)
        CPU._module.sgemm(trans_a, trans_b, m, n, k, 1.0, a, a.shape[1], b, b.shape[1], 0.0, out, n)
        return out
    be = backend_for(a=a, b=b, c=c)
    trans_a = _as_bool(trans_a, "trans_a")
    trans_b = _as_bool(trans_b, "trans_b")
    alpha = _finite(alpha, "alpha")
    beta = _finite(beta, "beta")
    a, b, m, n, _ = _prepare(a, b, trans_a, trans_b, be)
    if beta != 0.0 and c is None:
        raise ValueError(f"c is required when beta != 0 (beta={beta}), got None")
    out = be.empty((m, n))
    if c is not None:
        c = as_float32(c, "c", be)
        check_shape(c, (m, n), "c")
        if beta != 0.0:
            out[...] = c
    return sgemm_into(be, out, a, b, trans_a, trans_b, alpha, beta if c is not None else 0.0)


def gemm_backward(grad_out, a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """Gradients of gemm: (grad_a, grad_b, grad_c), grad_c = beta * grad_out or None when beta == 0.

    With G = grad_out: d op(a) = alpha G op(b)^T and d op(b) = alpha op(a)^T G, transposed back
    when the operand was transposed, each as one GEMM with the transposes folded into the flags.
    """
    be = backend_for(grad_out=grad_out, a=a, b=b)
    trans_a = _as_bool(trans_a, "trans_a")
    trans_b = _as_bool(trans_b, "trans_b")
    alpha = _finite(alpha, "alpha")
    beta = _finite(beta, "beta")
    a, b, m, n, _ = _prepare(a, b, trans_a, trans_b, be)
    g = as_float32(grad_out, "grad_out", be)
    check_shape(g, (m, n), "grad_out")

    grad_a = be.empty(a.shape)
    if trans_a:  # a is K x M: grad_a = alpha op(b) G^T
        sgemm_into(be, grad_a, b, g, trans_b, True, alpha, 0.0)
    else:  # a is M x K: grad_a = alpha G op(b)^T
        sgemm_into(be, grad_a, g, b, False, not trans_b, alpha, 0.0)
    grad_b = be.empty(b.shape)
    if trans_b:  # b is N x K: grad_b = alpha G^T op(a)
        sgemm_into(be, grad_b, g, a, True, trans_a, alpha, 0.0)
    else:  # b is K x N: grad_b = alpha op(a)^T G
        sgemm_into(be, grad_b, a, g, not trans_a, False, alpha, 0.0)
    grad_c = None
    if beta != 0.0:
        grad_c = g * be.xp.float32(beta)
    return grad_a, grad_b, grad_c
