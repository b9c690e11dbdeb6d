"""General matrix multiply: C = alpha * op(a) * op(b) + beta * c, and its gradients; batched matmul."""

from __future__ import annotations

import math

import numpy as np

from .._backend import CPU, backend_for
from .._checks import as_float, as_float32, check_ndim, check_shape
from ..memory import cached_float32

__all__ = ["gemm", "gemm_backward", "matmul", "matmul_backward"]
# Also public, outside __all__ (an operand's preparation, not an op with a NumPy reference; exported
# as fl.pack_gemm_b / fl.PackedGemmB): pack_gemm_b, PackedGemmB.


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


def _result_with_c(be, m, n, beta: float, c):
    """gemm's (m, n) result, holding c where beta != 0 (c checked), and the beta for the kernel: 0
    without c, which is then not read."""
    if beta != 0.0 and c is None:
        raise ValueError(f"c is required when beta != 0 (beta={beta}), got None")
    out = be.empty((m, n))
    if c is not None:
        c = as_float32(c, "c", be)
        check_shape(c, (m, n), "c")
        if beta != 0.0:
            out[...] = c
    return out, (beta if c is not None else 0.0)


# --- op(b) packed once (a constant right-hand side) -----------------------------------------------

class PackedGemmB:
    """op(b) packed once into the GEMM kernels' own layout, for many `gemm(a, packed)` calls with
    different a: what ONNX Runtime does with a Gemm whose B is a constant initialiser, and what the
    inference plan does with its dense weights. Made by `pack_gemm_b`; it holds a copy, so later
    changes to b are not seen (pack again).

    shape is op(b)'s (K, N). On the CPU the copy is in panels of the active ISA's micro-kernel width
    (a product after `set_max_isa` to another ISA repacks block by block as it goes, still right);
    on the GPU, whose kernels read B as stored, it is op(b) as a contiguous (K, N) array.
    """

    __slots__ = ("shape", "_data", "_cols")

    def __init__(self, shape, data, cols):
        self.shape = shape
        self._data = data  # CPU: 64-byte aligned float32 panels; GPU: contiguous op(b)
        self._cols = cols  # CPU: the panel width the packing used; GPU: 0

    @property
    def device(self) -> str:
        return "cpu" if isinstance(self._data, np.ndarray) else "cuda"

    def __repr__(self) -> str:
        return f"PackedGemmB(shape={self.shape}, device={self.device!r})"


def _aligned_empty(floats: int) -> np.ndarray:
    """floats float32 starting on a 64-byte boundary (the packed panels' kernels load them aligned)."""
    raw = np.empty(floats + 16, np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    return raw[skip:skip + floats]


def pack_gemm_b(b, *, trans_b=False) -> PackedGemmB:
    """Pack op(b) (op(b) = b.T when trans_b) once for `gemm(a, packed, ...)` calls: they skip
    copying B's panels on every call. b is copied, never modified."""
    be = backend_for(b=b)
    trans_b = _as_bool(trans_b, "trans_b")
    b = as_float32(b, "b", be)
    check_ndim(b, 2, "b")
    k, n = _op_shape(b, trans_b)
    if be is not CPU:
        data = be.xp.ascontiguousarray(b.T if trans_b else b)
        if data is b:
            data = b.copy()
        return PackedGemmB((k, n), data, 0)
    data = _aligned_empty(max(int(CPU._module.sgemm_packed_b_floats(k, n)), 1))
    if k > 0 and n > 0:
        CPU._module.sgemm_pack_b(trans_b, k, n, b, b.shape[1], data)
    return PackedGemmB((k, n), data, int(CPU._module.sgemm_packed_b_cols()))


def _gemm_packed(a, b: PackedGemmB, trans_a, trans_b, alpha, beta, c):
    if trans_b is not False:
        raise ValueError("trans_b must be False when b is a PackedGemmB: pack_gemm_b(b, trans_b=True) "
                         f"applies the transpose when packing (got trans_b={trans_b!r})")
    k, n = b.shape
    if (c is None and type(a) is np.ndarray and b._cols and (trans_a is False or trans_a is True)
            and type(alpha) is float and alpha == 1.0 and type(beta) is float and beta == 0.0
            and a.dtype == np.float32 and a.ndim == 2 and a.flags.c_contiguous and a.flags.aligned
            and a.shape[0 if trans_a else 1] == k):
        m = a.shape[1] if trans_a else a.shape[0]  # the common call: nothing to convert or check
        out = cached_float32((m, n), m * n)
        CPU._module.sgemm_prepacked_b(trans_a, m, n, k, 1.0, a, a.shape[1], b._data, b._cols, 0.0, out, n)
        return out
    be = backend_for(a=a, b=b._data, c=c)
    trans_a = _as_bool(trans_a, "trans_a")
    alpha = _finite(alpha, "alpha")
    beta = _finite(beta, "beta")
    a = as_float32(a, "a", be)
    check_ndim(a, 2, "a")
    m, ka = _op_shape(a, trans_a)
    if ka != k:
        raise ValueError(f"inner dimensions must agree: op(a) is {m}x{ka} (a.shape={tuple(a.shape)}, "
                         f"trans_a={trans_a}) but the packed op(b) is {k}x{n}")
    out, beta = _result_with_c(be, m, n, beta, c)
    if be is not CPU:
        return sgemm_into(be, out, a, b._data, trans_a, False, alpha, beta)
    # (K = 0 or alpha = 0: the kernel sets C = beta * C without reading a or the panels, as sgemm)
    CPU._module.sgemm_prepacked_b(trans_a, m, n, k, alpha, a, a.shape[1], b._data, b._cols, beta, out, n)
    return out


def gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """alpha * op(a) @ op(b) + beta * c, op(x) = x.T when trans_x; c (M, N) is only read.

    c is required when beta != 0 and ignored (not read) when beta == 0. b may be a PackedGemmB
    (`pack_gemm_b`: op(b) packed once for many calls; trans_b is then False).
    """
    if type(b) is PackedGemmB:
        return _gemm_packed(a, b, trans_a, trans_b, alpha, beta, c)
    if _plain_numpy(a, b, trans_a, trans_b, alpha, beta, c):
        # The common call skips the generic checks: they cost ~2.5 us, as much as a whole
        # 100x200x10 product (the 200->10 dense layer).
        m, k = _op_shape(a, trans_a)
        n = b.shape[0] if trans_b else b.shape[1]
        out = cached_float32((m, n), m * n)
        CPU._module.sgemm(trans_a, trans_b, m, n, k, 1.0, a, a.shape[1], b, b.shape[1], 0.0, out, n)
        return out
    be = backend_for(a=a, b=b, c=c)
    trans_a = _as_bool(trans_a, "trans_a")
    trans_b = _as_bool(trans_b, "trans_b")
    alpha = _finite(alpha, "alpha")
    beta = _finite(beta, "beta")
    a, b, m, n, _ = _prepare(a, b, trans_a, trans_b, be)
    out, beta = _result_with_c(be, m, n, beta, c)
    return sgemm_into(be, out, a, b, trans_a, trans_b, alpha, beta)


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


# --- matmul (torch.matmul) ------------------------------------------------------------------------

_MAX_BATCH_DIMS = 8  # cpu::kMaxBatchDims (and the CUDA twin)


def _mat_shape(x, trans: bool) -> tuple[int, int]:
    rows, cols = x.shape[-2:]
    return (cols, rows) if trans else (rows, cols)


def _batched_product(be, a, b, trans_a: bool, trans_b: bool, out_shape=None):
    """op(a) @ op(b) over the last two dimensions, the leading ones broadcast (a, b contiguous
    float32, at least 2-D, inner dimensions checked). With out_shape (the shape of an operand whose
    gradient this is) the product is summed over the batch dimensions it was broadcast along."""
    from .elementwise import _collapse

    m, k = _mat_shape(a, trans_a)
    n = _mat_shape(b, trans_b)[1]
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    c_batch = batch if out_shape is None else tuple(out_shape[:-2])
    full = c_batch + (m, n)
    reduce = c_batch != batch
    out = be.zeros(full) if reduce else be.empty(full)
    if out.size == 0:
        return out
    a2, b2 = a.ndim == 2, b.ndim == 2
    if math.prod(batch) == 0:
        return out
    if not reduce and b2 and not trans_a and not a2:
        # (..., M, K) @ (K, N): the batch folds into the rows: one GEMM of (B*M) x K by K x N.
        rows = math.prod(a.shape[:-1])
        be.run("sgemm", False, trans_b, rows, n, k, 1.0, a, k, b, b.shape[1], 0.0, out, n,
               *be.workspace("sgemm_workspace_floats", False, trans_b, rows, n, k))
        return out
    dims, (sa, sb, sc) = _collapse(batch, a.shape[:-2], b.shape[:-2], c_batch)
    if len(dims) > _MAX_BATCH_DIMS:  # an exotic broadcast (17+ batch dimensions): go through copies
        a = be.xp.broadcast_to(a, batch + a.shape[-2:]).copy()
        b = be.xp.broadcast_to(b, batch + b.shape[-2:]).copy()
        if reduce:
            from .elementwise import sum_to_shape

            return sum_to_shape(_batched_product(be, a, b, trans_a, trans_b), full)
        dims, (sa, sb, sc) = _collapse(batch, a.shape[:-2], b.shape[:-2], c_batch)
    sa = [s * a.shape[-2] * a.shape[-1] for s in sa]
    sb = [s * b.shape[-2] * b.shape[-1] for s in sb]
    sc = [s * m * n for s in sc]
    be.run("sgemm_batched", trans_a, trans_b, m, n, k, 1.0, a, a.shape[-1], b, b.shape[-1],
           1.0 if reduce else 0.0, out, n, dims, sa, sb, sc,
           *be.workspace("sgemm_workspace_floats", trans_a, trans_b, m, n, k))
    return out


def _check_inner(a, b, k_a: int, k_b: int):
    if k_a != k_b:
        raise ValueError(f"matmul: the last dimension of a (shape {tuple(a.shape)}) must equal the "
                         f"{'only' if b.ndim == 1 else 'second-to-last'} dimension of b (shape "
                         f"{tuple(b.shape)})")


def _stored_transposed(x) -> bool:
    """A 2-D float32 array whose transpose is C-contiguous (w.T of a C-contiguous w)."""
    if getattr(x, "ndim", 0) != 2 or getattr(x, "dtype", None) != np.float32:
        return False
    flags = x.flags
    return flags.f_contiguous and not flags.c_contiguous


def _matmul_operands(a, b, be):
    a = as_float32(a, "a", be)
    b = as_float32(b, "b", be)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs a and b of at least 1 dimension each, got a of shape {tuple(a.shape)} "
                         f"and b of shape {tuple(b.shape)}")
    a2 = a.reshape(1, -1) if a.ndim == 1 else a  # (K,) -> (1, K)
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b  # (K,) -> (K, 1)
    _check_inner(a, b, a2.shape[-1], b2.shape[-2])
    try:
        np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: the batch dimensions of a {tuple(a.shape[:-2])} and b "
                         f"{tuple(b.shape[:-2])} do not broadcast") from None
    return a, b, a2, b2


def _drop_promoted(x, a_1d: bool, b_1d: bool):
    """Remove the dimensions matmul added for 1-D operands."""
    shape = x.shape
    if a_1d:
        shape = shape[:-2] + shape[-1:]
    if b_1d:
        shape = shape[:-1]
    return x.reshape(shape)


def matmul(a, b):
    """torch.matmul: the matrix product of the last two dimensions, the leading (batch) dimensions
    broadcast as NumPy; a 1-D a is a row vector (the dimension is removed from the result), a 1-D b
    a column vector; two 1-D operands give their dot product (0-D). Built on the sgemm kernels:
    a batched a times a 2-D b is one GEMM over the stacked rows, anything else one GEMM per batch
    entry."""
    be = backend_for(a=a, b=b)
    ta, tb = _stored_transposed(a), _stored_transposed(b)
    if (ta or tb) and a.ndim == 2 and b.ndim == 2:
        # An operand stored transposed (x @ w.T): the GEMM reads it in place through its transpose
        # flag rather than from a contiguous copy (100x1024 @ (200x1024).T, 1 thread: 1.0 -> 0.46 ms).
        at = as_float32(a.T if ta else a, "a", be)
        bt = as_float32(b.T if tb else b, "b", be)
        _check_inner(a, b, a.shape[1], b.shape[0])
        return _batched_product(be, at, bt, ta, tb)
    a, b, a2, b2 = _matmul_operands(a, b, be)
    out = _batched_product(be, a2, b2, False, False)
    return _drop_promoted(out, a.ndim == 1, b.ndim == 1)


def matmul_backward(grad_out, a, b):
    """(grad_a, grad_b) of matmul(a, b): grad_out @ b^T and a^T @ grad_out over the last two
    dimensions, each summed over the batch dimensions its operand was broadcast along and shaped
    like that operand."""
    be = backend_for(grad_out=grad_out, a=a, b=b)
    a, b, a2, b2 = _matmul_operands(a, b, be)
    g = as_float32(grad_out, "grad_out", be)
    batch = tuple(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]))
    full = batch + (a2.shape[-2], b2.shape[-1])
    want = _drop_promoted(np.empty(full, np.bool_), a.ndim == 1, b.ndim == 1).shape
    if tuple(g.shape) != tuple(want):
        raise ValueError(f"grad_out must have the shape of matmul(a, b) {tuple(want)}, got {tuple(g.shape)}")
    g2 = g.reshape(full)
    if b2.ndim == 2 and a2.ndim > 2:
        # the rows of every batch entry stacked: two plain GEMMs, no reduction
        k, n = b2.shape
        rows = math.prod(a2.shape[:-1])
        grad_a = be.empty(a2.shape)
        be.run("sgemm", False, True, rows, k, n, 1.0, g2, n, b2, n, 0.0, grad_a, k,
               *be.workspace("sgemm_workspace_floats", False, True, rows, k, n))
        grad_b = be.empty(b2.shape)
        be.run("sgemm", True, False, k, n, rows, 1.0, a2, k, g2, n, 0.0, grad_b, n,
               *be.workspace("sgemm_workspace_floats", True, False, k, n, rows))
    else:
        grad_a = _batched_product(be, g2, b2, False, True, out_shape=a2.shape)
        grad_b = _batched_product(be, a2, g2, True, False, out_shape=b2.shape)
    return grad_a.reshape(a.shape), grad_b.reshape(b.shape)
