"""fl.pack_gemm_b / fl.gemm(a, packed): op(b) packed once (a constant right-hand side, as ONNX
Runtime's Gemm with B an initialiser) and used by many products, against the float64 NumPy
reference (tolerance reduction_tol(K)), on every ISA the CPU has and on the GPU when there is one.
The packed kernels themselves (sgemm_pack_b / sgemm_prepacked_b) are tested in test_gemm_paths.py."""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import _cpu

from ..helpers import assert_close, reduction_tol


def expected(a, b, trans_a, trans_b, alpha=1.0, beta=0.0, c=None):
    oa = (a.T if trans_a else a).astype(np.float64)
    ob = (b.T if trans_b else b).astype(np.float64)
    out = alpha * (oa @ ob)
    if c is not None:
        out = out + beta * c.astype(np.float64)
    return out


def operands(rng, m, n, k, trans_a, trans_b):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    return a, b


# M: one row, an edge row tile, the dense layer's batches; N: one column, an edge panel, 200;
# K: one, an odd tail, the SGEMM anchor's 784 (100 x 784 x 200), two kc blocks.
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 200, 784), (5, 17, 1), (13, 1, 31), (100, 200, 784), (64, 33, 1100)])
def test_packed_matches_reference(device, rng, m, n, k, trans_a, trans_b):
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    a0, b0 = a.copy(), b.copy()
    a_in, b_in = device.put(a), device.put(b)
    packed = fl.pack_gemm_b(b_in, trans_b=trans_b)
    assert packed.shape == (k, n) and packed.device == device.name
    got = device.get(fl.gemm(a_in, packed, trans_a=trans_a))
    assert_close(got, expected(a, b, trans_a, trans_b), reduction_tol(k), f"{m}x{n}x{k}")
    c = rng.standard_normal((m, n)).astype(np.float32)
    got = device.get(fl.gemm(a_in, packed, trans_a=trans_a, alpha=-0.5, beta=0.25, c=device.put(c)))
    assert_close(got, expected(a, b, trans_a, trans_b, -0.5, 0.25, c), reduction_tol(k), "alpha, beta, c")
    # The same as the unpacked call, and the inputs untouched.
    plain = device.get(fl.gemm(a_in, b_in, trans_a=trans_a, trans_b=trans_b))
    assert_close(device.get(fl.gemm(a_in, packed, trans_a=trans_a)), plain, reduction_tol(k), "vs unpacked")
    np.testing.assert_array_equal(device.get(a_in), a0)
    np.testing.assert_array_equal(device.get(b_in), b0)


def test_packed_on_every_isa_and_across_isas(isa, rng):
    # Packed under the ISA of the fixture, used under each ISA the CPU has: the panels are repacked
    # to the active kernel's width as they are used, the product stays the same.
    m, n, k = 23, 70, 90
    a, b = operands(rng, m, n, k, False, True)
    packed = fl.pack_gemm_b(b, trans_b=True)
    have = ["generic", "avx2", "avx512"]
    have = have[: have.index(_cpu.detected_isa()) + 1]
    try:
        for run_under in have:
            _cpu.set_max_isa(run_under)
            assert_close(fl.gemm(a, packed), expected(a, b, False, True), reduction_tol(k), f"packed {isa}, run {run_under}")
    finally:
        _cpu.set_max_isa(isa)


def test_packed_is_a_copy(rng):
    a, b = operands(rng, 8, 24, 40, False, False)
    packed = fl.pack_gemm_b(b)
    want = expected(a, b, False, False)
    b[...] = 0.0  # changing b after packing does not change the packed operand
    assert_close(fl.gemm(a, packed), want, reduction_tol(40), "after b changed")


def test_packed_converts_and_empty_shapes(rng):
    a, b = operands(rng, 6, 10, 12, False, False)
    got = fl.gemm(a.astype(np.float64), fl.pack_gemm_b(b.astype(np.float64)))  # float64 in: converted
    assert got.dtype == np.float32
    assert_close(got, expected(a, b, False, False), reduction_tol(12), "float64 operands")
    view = np.repeat(b, 2, axis=1)[:, ::2]  # a strided view of b: packed from its own strides
    assert_close(fl.gemm(a, fl.pack_gemm_b(view)), expected(a, b, False, False), reduction_tol(12), "strided b")
    # K = 0: an empty sum, C = beta * c; M = 0 and N = 0: empty results.
    packed = fl.pack_gemm_b(np.zeros((0, 5), np.float32))
    assert packed.shape == (0, 5)
    c = rng.standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_allclose(fl.gemm(np.zeros((3, 0), np.float32), packed, beta=2.0, c=c), 2.0 * c)
    junk = np.full((3, 5), np.nan, np.float32)
    del junk  # NumPy's cache of small blocks hands this memory to the result next: it must be written
    np.testing.assert_array_equal(fl.gemm(np.zeros((3, 0), np.float32), packed), np.zeros((3, 5), np.float32))
    np.testing.assert_array_equal(fl.gemm(np.zeros((3, 0), np.float32), packed, beta=0.0, c=c), np.zeros((3, 5), np.float32))
    assert fl.gemm(np.zeros((0, 12), np.float32), fl.pack_gemm_b(b)).shape == (0, 10)
    assert fl.gemm(a, fl.pack_gemm_b(np.zeros((12, 0), np.float32))).shape == (6, 0)


def test_packed_bad_input(rng):
    a, b = operands(rng, 4, 6, 8, False, False)
    packed = fl.pack_gemm_b(b)
    with pytest.raises(ValueError, match="trans_b must be False when b is a PackedGemmB"):
        fl.gemm(a, packed, trans_b=True)
    with pytest.raises(ValueError, match=r"inner dimensions must agree: op\(a\) is 4x7"):
        fl.gemm(a[:, :7].copy(), packed)
    with pytest.raises(ValueError, match=r"inner dimensions must agree: op\(a\) is 8x4"):
        fl.gemm(a, packed, trans_a=True)
    with pytest.raises(ValueError, match="c is required when beta != 0"):
        fl.gemm(a, packed, beta=1.0)
    with pytest.raises(ValueError, match="c"):
        fl.gemm(a, packed, beta=1.0, c=np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        fl.gemm(a, packed, alpha=float("inf"))
    with pytest.raises(TypeError, match="trans_a must be a bool"):
        fl.gemm(a, packed, trans_a=1)
    with pytest.raises(TypeError, match="trans_b must be a bool"):
        fl.pack_gemm_b(b, trans_b="yes")
    with pytest.raises(ValueError, match="b"):
        fl.pack_gemm_b(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="b must be 2-D"):
        fl.pack_gemm_b(np.float32(1.0))
    with pytest.raises(ValueError, match="a"):
        fl.gemm(np.zeros((4, 8, 1), np.float32), packed)
