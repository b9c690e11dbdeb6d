"""gemm / gemm_backward against the float64 NumPy reference, on every ISA path of the CPU kernel.

Tolerance: reduction_tol(K) (tests/helpers.py) — every output sums K products."""

import concurrent.futures

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import _cpu
from fastlayers import reference as ref

from ..helpers import assert_close, num_threads, reduction_tol

TRANS = [(False, False), (False, True), (True, False), (True, True)]


def operands(rng, m, n, k, trans_a, trans_b, dtype=np.float32):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def expected(a, b, trans_a, trans_b, alpha=1.0, beta=0.0, c=None):
    f64 = (lambda x: None if x is None else x.astype(np.float64))
    return ref.gemm(f64(a), f64(b), trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=f64(c))


# Sizes around the register tiles (MR = 4/6/14, NR = 16/32) and the cache blocks (KC = 256/384).
EDGE_SHAPES = [(1, 1, 1), (1, 33, 7), (13, 1, 5), (14, 32, 1), (15, 31, 17), (13, 33, 257),
               (31, 65, 385), (65, 14, 600), (257, 15, 33), (6, 16, 256), (100, 200, 784)]


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("m,n,k", EDGE_SHAPES)
def test_gemm_edge_shapes(device, isa, rng, m, n, k, trans_a, trans_b):
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    got = fl.gemm(device.put(a), device.put(b), trans_a=trans_a, trans_b=trans_b)
    assert got.dtype == np.float32 and got.shape == (m, n)
    assert_close(got, expected(a, b, trans_a, trans_b), reduction_tol(k), f"gemm {m}x{n}x{k}")


# Big enough for several MC/KC/NC blocks of the ISA under test and for both threads.
BIG = {"generic": (300, 2100, 600), "avx2": (300, 3100, 600), "avx512": (700, 3100, 800)}


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_gemm_multi_block(isa, rng, trans_a, trans_b):
    if isa != "avx512" and (trans_a, trans_b) not in [(False, False), (True, True)]:
        pytest.skip("the slower paths run two transpose combinations at this size to save time")
    m, n, k = BIG[isa]
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    c = rng.standard_normal((m, n)).astype(np.float32)
    got = fl.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=0.75, beta=-0.5, c=c)
    assert_close(got, expected(a, b, trans_a, trans_b, 0.75, -0.5, c), reduction_tol(k), "big gemm")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gemm_thread_counts(rng, threads):
    with num_threads(threads):
        for m, n, k in [(100, 200, 784), (37, 20, 500), (500, 40, 300), (1, 1000, 700)]:
            a, b = operands(rng, m, n, k, False, True)
            assert_close(fl.gemm(a, b, trans_b=True), expected(a, b, False, True), reduction_tol(k),
                         f"{threads} threads {m}x{n}x{k}")


def test_gemm_concurrent_callers(rng):
    # Several Python threads (GIL released) each run their own OpenMP team: the thread-local
    # packing buffers must not be shared between concurrent calls.
    cases = []
    for i in range(8):
        m, n, k = 60 + 37 * i, 90 + 11 * i, 300 + 50 * i
        a, b = operands(rng, m, n, k, i % 2 == 1, i % 3 == 0)
        cases.append((a, b, i % 2 == 1, i % 3 == 0))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda cs: fl.gemm(cs[0], cs[1], trans_a=cs[2], trans_b=cs[3]), cases * 3))
    for (a, b, ta, tb), got in zip(cases * 3, results):
        assert_close(got, expected(a, b, ta, tb), reduction_tol(a.size // max(got.shape[0], 1)), "concurrent")


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -1.5), (-2.0, 0.0), (0.0, 2.0), (1.0, 0.0)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
def test_gemm_alpha_beta(device, isa, rng, alpha, beta, trans_a, trans_b):
    m, n, k = 29, 47, 400
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    c = rng.standard_normal((m, n)).astype(np.float32)
    got = fl.gemm(device.put(a), device.put(b), trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta,
                  c=device.put(c))
    assert_close(got, expected(a, b, trans_a, trans_b, alpha, beta, c), reduction_tol(k), "alpha/beta")


def test_gemm_beta_zero_ignores_nan_in_c(device, isa, rng):
    a, b = operands(rng, 20, 40, 30, False, False)
    c = np.full((20, 40), np.nan, np.float32)
    got = device.get(fl.gemm(device.put(a), device.put(b), beta=0.0, c=device.put(c)))
    assert np.isfinite(got).all()
    assert_close(got, expected(a, b, False, False), reduction_tol(30), "beta=0 with NaN c")


def test_gemm_nan_in_operands_propagates(device, rng):
    a, b = operands(rng, 20, 40, 30, False, False)
    a[3, 7] = np.nan
    got = device.get(fl.gemm(device.put(a), device.put(b)))
    assert np.isnan(got[3]).all() and np.isfinite(np.delete(got, 3, axis=0)).all()


@pytest.mark.parametrize("m,n,k", [(0, 3, 5), (4, 0, 5), (4, 3, 0), (0, 0, 0)])
def test_gemm_empty_dims(device, rng, m, n, k):
    a, b = operands(rng, m, n, k, False, False)
    c = rng.standard_normal((m, n)).astype(np.float32)
    got = fl.gemm(device.put(a), device.put(b), beta=2.0, c=device.put(c))
    assert_close(got, 2.0 * c, reduction_tol(1), "empty")
    assert_close(fl.gemm(device.put(a), device.put(b)), np.zeros((m, n)), reduction_tol(1), "empty")


def test_gemm_keeps_inputs_and_converts(device, rng):
    a = rng.standard_normal((30, 20))[:, ::2]  # float64, non-contiguous, 30 x 10
    b = rng.standard_normal((10, 17))
    c = rng.standard_normal((30, 17)).astype(np.float32)
    copies = [a.copy(), b.copy(), c.copy()]
    got = fl.gemm(device.put(a), device.put(b), beta=1.0, c=device.put(c))
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert_close(got, a @ b + c, reduction_tol(10), "converted")
    for before, after in zip(copies, [a, b, c]):
        np.testing.assert_array_equal(before, after)


def _raw_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    _cpu.sgemm(ta, tb, m, n, k, alpha, a.ctypes.data, lda, b.ctypes.data, ldb, beta, c.ctypes.data, ldc)


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_sgemm_leading_dimensions(isa, rng, trans_a, trans_b):
    # The C++ kernel works on sub-matrices of larger buffers (the conv kernels rely on it).
    m, n, k, pad = 37, 45, 70, 5
    big_a = rng.standard_normal((k, m + pad) if trans_a else (m, k + pad)).astype(np.float32)
    big_b = rng.standard_normal((n, k + pad) if trans_b else (k, n + pad)).astype(np.float32)
    big_c = rng.standard_normal((m, n + pad)).astype(np.float32)
    a = big_a[:, :m] if trans_a else big_a[:, :k]
    b = big_b[:, :k] if trans_b else big_b[:, :n]
    want = expected(a, b, trans_a, trans_b, 1.5, 0.5, big_c[:, :n])
    outside = big_c[:, n:].copy()
    _raw_sgemm(trans_a, trans_b, m, n, k, 1.5, big_a, big_a.shape[1], big_b, big_b.shape[1], 0.5, big_c,
               big_c.shape[1])
    assert_close(big_c[:, :n], want, reduction_tol(k), "ld > row length")
    np.testing.assert_array_equal(big_c[:, n:], outside)  # columns past N untouched


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,n,k", [(101, 200, 2051), (100, 209, 1100), (64, 24, 1030)])
def test_sgemm_a_read_in_place(isa, rng, threads, m, n, k):
    # alpha == 1 with A as stored: the AVX2 kernels read A's rows where they are (lda > K here),
    # with K cut in blocks of up to 1024 (beta applied by the first only), short row tiles (M % 6)
    # and a last panel of 8 or 1 columns (its sums split over even and odd k; K odd).
    pad = 3
    big_a = rng.standard_normal((m, k + pad)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    big_c = rng.standard_normal((m, n + pad)).astype(np.float32)
    a = big_a[:, :k]
    want = expected(a, b, False, False, 1.0, 0.5, big_c[:, :n])
    outside = big_c[:, n:].copy()
    with num_threads(threads):
        _raw_sgemm(False, False, m, n, k, 1.0, big_a, k + pad, b, n, 0.5, big_c, n + pad)
        packed = fl.gemm(a, fl.pack_gemm_b(b))
    assert_close(big_c[:, :n], want, reduction_tol(k), "A in place")
    np.testing.assert_array_equal(big_c[:, n:], outside)
    assert_close(packed, expected(a, b, False, False), reduction_tol(k), "A in place, B packed once")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [5, 8, 20, 24, 40, 57, 200])
@pytest.mark.parametrize("m", [27, 100])
def test_sgemm_column_tails(isa, rng, threads, m, n):
    # Row tiles of nearly equal height (27: 14 + 13; 100: 8 tiles of 12-13) against 32-column
    # tiles; on AVX-512 the last tile's columns take a masked zmm (9-16 or 25-31 left), a zmm and
    # a masked ymm (17-24) or a masked ymm alone (1-8). B small enough to stay in L2 is read in
    # place by sgemm; packed once (pack_gemm_b), it runs the packed panels' edge kernels, A
    # packed or (transposed) read as stored. C is a window of a wider buffer: nothing right of
    # column n may be written.
    k, pad = 300, 7
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    for alpha, beta in [(1.0, 0.0), (0.5, -1.0)]:
        big_c = rng.standard_normal((m, n + pad)).astype(np.float32)
        if beta == 0.0:
            big_c[:, :n] = np.nan  # beta == 0: C is not read
        want = expected(a, b, False, False, alpha, beta, big_c[:, :n])
        outside = big_c[:, n:].copy()
        with num_threads(threads):
            _raw_sgemm(False, False, m, n, k, alpha, a, k, b, n, beta, big_c, n + pad)
        assert_close(big_c[:, :n], want, reduction_tol(k), f"B in place {m}x{n}, alpha {alpha}, beta {beta}")
        np.testing.assert_array_equal(big_c[:, n:], outside)
        c = rng.standard_normal((m, n)).astype(np.float32)
        with num_threads(threads):
            got = fl.gemm(np.ascontiguousarray(a.T), fl.pack_gemm_b(b), trans_a=True, alpha=alpha, beta=beta, c=c)
        assert_close(got, expected(a, b, False, False, alpha, beta, c), reduction_tol(k), f"B packed {m}x{n}")


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 80), n=st.integers(1, 80), k=st.integers(1, 300), trans_a=st.booleans(),
       trans_b=st.booleans(), alpha=st.sampled_from([1.0, -0.5, 3.0]), beta=st.sampled_from([0.0, 1.0, 0.25]),
       seed=st.integers(0, 2**31))
def test_gemm_hypothesis(m, n, k, trans_a, trans_b, alpha, beta, seed):
    rng = np.random.default_rng(seed)
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    c = rng.standard_normal((m, n)).astype(np.float32)
    got = fl.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c)
    assert_close(got, expected(a, b, trans_a, trans_b, alpha, beta, c), reduction_tol(k), "hypothesis")


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_gemm_backward_matches_reference(device, rng, trans_a, trans_b, beta):
    m, n, k = 23, 41, 35
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    g = rng.standard_normal((m, n)).astype(np.float32)
    got = fl.gemm_backward(device.put(g), device.put(a), device.put(b), trans_a=trans_a, trans_b=trans_b,
                           alpha=1.5, beta=beta)
    want = ref.gemm_backward(g.astype(np.float64), a.astype(np.float64), b.astype(np.float64),
                             trans_a=trans_a, trans_b=trans_b, alpha=1.5, beta=beta)
    assert_close(got[0], want[0], reduction_tol(n), "grad_a")
    assert_close(got[1], want[1], reduction_tol(m), "grad_b")
    if beta == 0.0:
        assert got[2] is None
    else:
        assert_close(got[2], want[2], reduction_tol(1), "grad_c")


def test_gemm_bad_input(device):
    ones = lambda *s: device.put(np.ones(s, np.float32))  # noqa: E731
    with pytest.raises(ValueError, match=r"a must be 2-D"):
        fl.gemm(ones(3), ones(3, 2))
    with pytest.raises(ValueError, match=r"b must be 2-D"):
        fl.gemm(ones(2, 3), ones(3, 2, 1))
    with pytest.raises(ValueError, match=r"inner dimensions.*2x3.*4x5"):
        fl.gemm(ones(2, 3), ones(4, 5))
    with pytest.raises(ValueError, match=r"inner dimensions.*3x2.*trans_a=True"):
        fl.gemm(ones(2, 3), ones(3, 5), trans_a=True)
    with pytest.raises(ValueError, match=r"c must have shape \(2, 5\), got \(5, 2\)"):
        fl.gemm(ones(2, 3), ones(3, 5), beta=1.0, c=ones(5, 2))
    with pytest.raises(ValueError, match=r"c is required"):
        fl.gemm(ones(2, 3), ones(3, 5), beta=1.0)
    with pytest.raises(TypeError, match=r"trans_a must be a bool"):
        fl.gemm(ones(2, 3), ones(3, 5), trans_a=1)
    with pytest.raises(TypeError, match=r"alpha must be a real number"):
        fl.gemm(ones(2, 3), ones(3, 5), alpha="2")
    with pytest.raises(TypeError, match=r"b must have a real numeric dtype"):
        fl.gemm(ones(2, 3), device.put(np.ones((3, 5), np.complex64)))
    with pytest.raises(TypeError, match=r"a must be an array, got None"):
        fl.gemm(None, ones(3, 5))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 5\)"):
        fl.gemm_backward(ones(5, 2), ones(2, 3), ones(3, 5))


# The few-rows path (M <= 4, A not transposed; gemm_small.h): lanes of 16, column blocks of 256,
# row pairs plus a single row, and the column split over threads.
SMALL_M_SHAPES = [(1, 1, 1), (1, 200, 1024), (1, 10, 200), (2, 17, 15), (3, 33, 16), (4, 257, 31),
                  (3, 600, 5), (4, 1, 300), (1, 513, 17),
                  (4, 1000, 100), (2, 70, 2000)]  # these two: enough work to split the columns over threads


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", SMALL_M_SHAPES)
def test_gemm_small_m(isa, rng, m, n, k, trans_b):
    a, b = operands(rng, m, n, k, False, trans_b)
    for threads in (1, 2):
        with num_threads(threads):
            got = fl.gemm(a, b, trans_b=trans_b)
        assert_close(got, expected(a, b, False, trans_b), reduction_tol(k), f"small-M gemm {m}x{n}x{k}")


@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_small_m_alpha_beta_and_ld(isa, rng, trans_b):
    m, n, k, pad = 3, 70, 41, 4
    big_a = rng.standard_normal((m, k + pad)).astype(np.float32)
    big_b = rng.standard_normal((n, k + pad) if trans_b else (k, n + pad)).astype(np.float32)
    big_c = rng.standard_normal((m, n + pad)).astype(np.float32)
    a, b = big_a[:, :k], (big_b[:, :k] if trans_b else big_b[:, :n])
    want = expected(a, b, False, trans_b, -1.5, 0.5, big_c[:, :n])
    outside = big_c[:, n:].copy()
    _raw_sgemm(False, trans_b, m, n, k, -1.5, big_a, big_a.shape[1], big_b, big_b.shape[1], 0.5, big_c,
               big_c.shape[1])
    assert_close(big_c[:, :n], want, reduction_tol(k), "small-M with ld, alpha, beta")
    np.testing.assert_array_equal(big_c[:, n:], outside)
    c = np.full((m, n), np.nan, np.float32)  # beta == 0: C is not read
    _raw_sgemm(False, trans_b, m, n, k, 1.0, big_a, big_a.shape[1], big_b, big_b.shape[1], 0.0, c, n)
    assert_close(c, expected(a, b, False, trans_b), reduction_tol(k), "small-M beta 0 over NaN")
