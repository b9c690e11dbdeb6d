"""The special paths of the CPU SGEMM driver, each against the float64 NumPy reference:

- few columns (N <= 16, A not transposed): dot products over rows of A and B (op(B) = B is
  transposed into scratch first), tiles of R x J with the K tail masked;
- B in place (B not transposed, and M <= MR or K x N <= 160 Ki floats): no B panels, each row
  tile of op(A) packed (or used as stored: one transposed tile), K in blocks of 512.

Both run on every ISA the CPU has (the ISAs without them take the packed path: same answers).
Also op(B) packed once and used by many products (sgemm_pack_b / sgemm_prepacked_b, the
inference plan's dense weights), including panels packed under another ISA.
Calls go through the raw kernel where the test needs a C that the op would not hand over (NaN in
C with beta 0, leading dimensions wider than the rows). Tolerance: reduction_tol(K)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import _cpu
from fastlayers import reference as ref

from ..helpers import assert_close, reduction_tol


@pytest.fixture
def threads():
    """Restores the thread count a test changes."""
    old = fl.get_num_threads()
    yield fl.set_num_threads
    fl.set_num_threads(old)


def operands(rng, m, n, k, trans_a, trans_b):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    return a, b


def expected(a, b, trans_a, trans_b, alpha=1.0, beta=0.0, c=None):
    f64 = (lambda x: None if x is None else x.astype(np.float64))
    return ref.gemm(f64(a), f64(b), trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=f64(c))


def raw_sgemm(ta, tb, m, n, k, alpha, a, b, beta, c):
    """The kernel on (possibly wider) buffers: leading dimensions are the buffers' row lengths."""
    _cpu.sgemm(ta, tb, m, n, k, alpha, a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1], beta,
               c.ctypes.data, c.shape[1])


# ---- few columns ---------------------------------------------------------------------------

# K: empty, shorter than a vector, odd, exactly one and just over one 16-lane step, several.
SMALL_N_K = [0, 1, 7, 16, 17, 200]


@pytest.mark.parametrize("trans_b", [True, False])
@pytest.mark.parametrize("k", SMALL_N_K)
def test_few_columns_every_n(isa, rng, k, trans_b):
    # M = 37 runs whole row tiles and a remainder for every tile height 16 / J (J = 1..5).
    m = 37
    for n in range(1, 18):
        a, b = operands(rng, m, n, k, False, trans_b)
        got = fl.gemm(a, b, trans_b=trans_b)
        assert_close(got, expected(a, b, False, trans_b), reduction_tol(k), f"{m}x{n}x{k} trans_b={trans_b}")


@pytest.mark.parametrize("m", [1, 2, 3, 5, 6, 15, 16, 17, 100])
def test_few_columns_every_row_remainder(isa, rng, m):
    for n in [1, 2, 3, 4, 5, 10, 16]:
        a, b = operands(rng, m, n, 33, False, True)
        assert_close(fl.gemm(a, b, trans_b=True), expected(a, b, False, True), reduction_tol(33),
                     f"{m}x{n}x33")


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (1.0, 1.0), (0.5, -1.5), (-2.0, 0.25), (0.0, 2.0)])
@pytest.mark.parametrize("trans_b", [True, False])
def test_few_columns_alpha_beta(isa, rng, alpha, beta, trans_b):
    m, n, k = 41, 10, 45
    a, b = operands(rng, m, n, k, False, trans_b)
    c = rng.standard_normal((m, n)).astype(np.float32)
    got = fl.gemm(a, b, trans_b=trans_b, alpha=alpha, beta=beta, c=c)
    assert_close(got, expected(a, b, False, trans_b, alpha, beta, c), reduction_tol(k), "alpha/beta")


@pytest.mark.parametrize("m,n,k", [(23, 10, 30), (23, 3, 17), (5, 16, 1)])
@pytest.mark.parametrize("trans_b", [True, False])
def test_few_columns_beta_zero_ignores_nan_in_c(isa, rng, m, n, k, trans_b):
    a, b = operands(rng, m, n, k, False, trans_b)
    c = np.full((m, n), np.nan, np.float32)
    raw_sgemm(False, trans_b, m, n, k, 1.0, a, b, 0.0, c)
    assert np.isfinite(c).all()
    assert_close(c, expected(a, b, False, trans_b), reduction_tol(k), "beta=0 over NaN")


@pytest.mark.parametrize("trans_b", [True, False])
def test_few_columns_nan_in_operands_propagates(isa, rng, trans_b):
    m, n, k = 20, 10, 37  # the NaN sits in the masked K tail step (k = 35 > 32)
    a, b = operands(rng, m, n, k, False, trans_b)
    a[3, 35] = np.nan
    if trans_b:
        b[7, 2] = np.inf
    else:
        b[2, 7] = np.inf
    got = fl.gemm(a, b, trans_b=trans_b)
    want = expected(a, b, False, trans_b)
    assert np.isnan(got[3]).all()
    rest = np.delete(np.arange(m), 3)
    np.testing.assert_array_equal(got[rest, 7], want[rest, 7])  # +-inf, the signs included
    assert np.isinf(got[rest, 7]).all()
    finite = np.delete(np.delete(got, 3, axis=0), 7, axis=1)
    assert_close(finite, np.delete(np.delete(want, 3, axis=0), 7, axis=1), reduction_tol(k), "the rest")


@pytest.mark.parametrize("trans_b", [True, False])
@pytest.mark.parametrize("n", [1, 5, 10, 16])
def test_few_columns_leading_dimensions(isa, rng, n, trans_b):
    m, k, pad = 29, 37, 3
    big_a = rng.standard_normal((m, k + pad)).astype(np.float32)
    big_b = rng.standard_normal((n, k + pad) if trans_b else (k, n + pad)).astype(np.float32)
    big_c = rng.standard_normal((m, n + pad)).astype(np.float32)
    a, b = big_a[:, :k], (big_b[:, :k] if trans_b else big_b[:, :n])
    # NaN in the padding of A and B: the masked K tail must not read it.
    big_a[:, k:] = np.nan
    big_b[:, (k if trans_b else n):] = np.nan
    want = expected(a, b, False, trans_b, 0.5, 2.0, big_c[:, :n])
    outside = big_c[:, n:].copy()
    raw_sgemm(False, trans_b, m, n, k, 0.5, big_a, big_b, 2.0, big_c)
    assert_close(big_c[:, :n], want, reduction_tol(k), "ld > row length")
    np.testing.assert_array_equal(big_c[:, n:], outside)


@pytest.mark.parametrize("nt", [1, 2, 3])
def test_few_columns_threads(threads, rng, nt):
    threads(nt)
    for m, n, k in [(300, 10, 200), (33, 16, 600), (1000, 1, 300)]:
        a, b = operands(rng, m, n, k, False, True)
        assert_close(fl.gemm(a, b, trans_b=True), expected(a, b, False, True), reduction_tol(k),
                     f"{nt} threads {m}x{n}x{k}")


# ---- B in place -----------------------------------------------------------------------------

# Column counts around the 32-wide tiles and their 16-lane halves; K around the 512 blocks.
FEW_ROWS_N = [1, 15, 16, 17, 31, 32, 33, 200]


@pytest.mark.parametrize("trans_a", [True, False])
@pytest.mark.parametrize("k", [0, 1, 9, 511, 512, 1030])
def test_few_rows_every_m(isa, rng, k, trans_a):
    if isa != "avx512" and k > 512:
        pytest.skip("this ISA has no B-in-place path; its packed path at this K is test_gemm.py's")
    # M <= 14: one row tile; 15..30: two or three (B in place for these K x N), the last partial.
    for m in list(range(1, 16)) + [27, 28, 29]:
        for n in FEW_ROWS_N:
            a, b = operands(rng, m, n, k, trans_a, False)
            got = fl.gemm(a, b, trans_a=trans_a)
            assert_close(got, expected(a, b, trans_a, False), reduction_tol(k),
                         f"{m}x{n}x{k} trans_a={trans_a}")


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (1.0, 1.0), (0.5, -1.5), (0.0, 2.0)])
@pytest.mark.parametrize("trans_a", [True, False])
def test_few_rows_alpha_beta(isa, rng, alpha, beta, trans_a):
    for m, n, k in [(10, 200, 600), (40, 200, 600)]:  # two K blocks: beta applies once
        a, b = operands(rng, m, n, k, trans_a, False)
        c = rng.standard_normal((m, n)).astype(np.float32)
        got = fl.gemm(a, b, trans_a=trans_a, alpha=alpha, beta=beta, c=c)
        assert_close(got, expected(a, b, trans_a, False, alpha, beta, c), reduction_tol(k), f"{m}x{n}x{k}")


@pytest.mark.parametrize("m", [10, 31])
@pytest.mark.parametrize("trans_a", [True, False])
def test_few_rows_beta_zero_ignores_nan_in_c_and_leading_dimensions(isa, rng, trans_a, m):
    n, k, pad = 45, 100, 3
    big_a = rng.standard_normal((k, m + pad) if trans_a else (m, k + pad)).astype(np.float32)
    big_b = rng.standard_normal((k, n + pad)).astype(np.float32)
    big_c = np.full((m, n + pad), np.nan, np.float32)
    big_b[:, n:] = np.nan  # the masked column tail must not read past N
    a, b = (big_a[:, :m] if trans_a else big_a[:, :k]), big_b[:, :n]
    raw_sgemm(trans_a, False, m, n, k, 1.0, big_a, big_b, 0.0, big_c)
    assert np.isfinite(big_c[:, :n]).all()
    assert np.isnan(big_c[:, n:]).all()  # columns past N untouched
    assert_close(big_c[:, :n], expected(a, b, trans_a, False), reduction_tol(k), "beta=0 over NaN")


def test_few_rows_nan_in_operands_propagates(isa, rng):
    a, b = operands(rng, 10, 40, 30, True, False)
    a[7, 3] = np.nan  # op(A)[3, 7]
    got = fl.gemm(a, b, trans_a=True)
    assert np.isnan(got[3]).all() and np.isfinite(np.delete(got, 3, axis=0)).all()


@pytest.mark.parametrize("nt", [1, 2, 3])
def test_few_rows_threads(threads, rng, nt):
    threads(nt)
    for m, n, k, ta in [(10, 300, 200, True), (14, 1000, 90, False), (3, 700, 300, True),
                        (100, 200, 30, False), (101, 130, 600, True), (300, 200, 100, True),
                        (15, 800, 30, False)]:  # column splits, then row splits
        a, b = operands(rng, m, n, k, ta, False)
        assert_close(fl.gemm(a, b, trans_a=ta), expected(a, b, ta, False), reduction_tol(k),
                     f"{nt} threads {m}x{n}x{k}")


# ---- the packed path's cache blocks (AVX-512: kc = 1024, mc = 168, nc = 1024) --------------------

@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
def test_packed_several_blocks_each_way(threads, rng, trans_a, trans_b):
    # K = 1100: two kc blocks (beta applies to the first only); M = 400: several mc blocks per
    # thread; N = 2100: three nc blocks, the last one narrow.
    threads(2)
    m, n, k = 400, 2100, 1100
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    c = rng.standard_normal((m, n)).astype(np.float32)
    got = fl.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=0.75, beta=-0.5, c=c)
    assert_close(got, expected(a, b, trans_a, trans_b, 0.75, -0.5, c), reduction_tol(k), "blocks")


# ---- the dense 200 -> 10 layer's three products, every transpose pair -------------------------

@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("m,n,k", [(100, 10, 200), (100, 200, 10), (10, 200, 100)])
def test_dense_layer_shapes(isa, rng, m, n, k, trans_a, trans_b):
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    copies = (a.copy(), b.copy())
    got = fl.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    assert_close(got, expected(a, b, trans_a, trans_b), reduction_tol(k), f"{m}x{n}x{k}")
    np.testing.assert_array_equal(a, copies[0])
    np.testing.assert_array_equal(b, copies[1])


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(0, 80), trans_a=st.booleans(),
       trans_b=st.booleans(), alpha=st.sampled_from([1.0, -0.5]), beta=st.sampled_from([0.0, 1.0, 0.25]),
       seed=st.integers(0, 2**31))
def test_small_shapes_hypothesis(m, n, k, trans_a, trans_b, alpha, beta, seed):
    # Small M or N hits the special paths; the rest the packed path. Same answers everywhere.
    rng = np.random.default_rng(seed)
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    c = rng.standard_normal((m, n)).astype(np.float32)
    got = fl.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c)
    assert_close(got, expected(a, b, trans_a, trans_b, alpha, beta, c), reduction_tol(k), "hypothesis")


# ---- op(B) packed once (sgemm_pack_b / sgemm_prepacked_b: the inference plan's dense weights) --

def aligned_floats(n):
    """n float32s starting at a 64-byte boundary (the packed panels' kernels load them aligned)."""
    raw = np.empty(n + 16, np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    return raw[skip:skip + n]


def pack_b(b, k, n, trans_b):
    bp = aligned_floats(max(_cpu.sgemm_packed_b_floats(k, n), 1))
    _cpu.sgemm_pack_b(trans_b, k, n, b, b.shape[1], bp)
    return bp, _cpu.sgemm_packed_b_cols()


def prepacked_gemm(ta, m, n, k, alpha, a, bp, cols, beta, c):
    _cpu.sgemm_prepacked_b(ta, m, n, k, alpha, a, a.shape[1], bp, cols, beta, c, c.shape[1])


# M: one row, an edge tile of rows (5 < 6, 13 < 14), exactly one tile, the dense layer's batches;
# N: one column, under a vector, one panel, one panel and a column, the dense layer's 200 and 10.
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 200, 1024), (4, 10, 7), (5, 17, 300), (6, 16, 16), (13, 1, 5),
                                   (64, 200, 1024), (100, 10, 200), (7, 33, 0)])
def test_prepacked_b_matches_reference(isa, rng, m, n, k, trans_a, trans_b):
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    copies = (a.copy(), b.copy())
    bp, cols = pack_b(b, k, n, trans_b)
    c = np.full((m, n), np.nan, np.float32)  # beta 0: C is write-only, NaN in it ignored
    prepacked_gemm(trans_a, m, n, k, 1.0, a, bp, cols, 0.0, c)
    assert_close(c, expected(a, b, trans_a, trans_b), reduction_tol(k), f"{isa} {m}x{n}x{k}")
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    c = c0.copy()
    prepacked_gemm(trans_a, m, n, k, -0.5, a, bp, cols, 0.25, c)
    assert_close(c, expected(a, b, trans_a, trans_b, -0.5, 0.25, c0), reduction_tol(k), "alpha, beta")
    np.testing.assert_array_equal(a, copies[0])
    np.testing.assert_array_equal(b, copies[1])


@pytest.mark.parametrize("nt", [1, 2, 3])
def test_prepacked_b_threads_and_blocks(threads, rng, nt):
    # K = 1100 and N = 1100: two kc blocks and (AVX-512, nc = 1024) two nc blocks, the later kc
    # blocks adding to C; the threads share the row blocks with no barrier between blocks.
    threads(nt)
    m, n, k = 300, 1100, 1100
    a, b = operands(rng, m, n, k, False, True)
    bp, cols = pack_b(b, k, n, True)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    c = c0.copy()
    prepacked_gemm(False, m, n, k, 1.0, a, bp, cols, 1.0, c)
    assert_close(c, expected(a, b, False, True, 1.0, 1.0, c0), reduction_tol(k), f"{nt} threads")


def test_prepacked_b_packed_under_another_isa(rng):
    # Panels packed under one ISA and used under another (set_max_isa in between) are repacked
    # to the active kernel's width as they are used: the same product either way.
    have = ["generic", "avx2", "avx512"]
    have = have[: have.index(_cpu.detected_isa()) + 1]
    m, n, k = 23, 70, 90
    a, b = operands(rng, m, n, k, False, True)
    want = expected(a, b, False, True)
    try:
        for packed_under in have:
            _cpu.set_max_isa(packed_under)
            bp, cols = pack_b(b, k, n, True)
            for run_under in have:
                _cpu.set_max_isa(run_under)
                c = np.zeros((m, n), np.float32)
                prepacked_gemm(False, m, n, k, 1.0, a, bp, cols, 0.0, c)
                assert_close(c, want, reduction_tol(k), f"packed {packed_under} ({cols} wide), run {run_under}")
    finally:
        _cpu.set_max_isa("avx512")


def test_prepacked_b_refuses_misaligned_panels(rng):
    b = rng.standard_normal((8, 8)).astype(np.float32)
    bp = aligned_floats(_cpu.sgemm_packed_b_floats(8, 8) + 1)[1:]
    with pytest.raises(ValueError, match="bp must be 64-byte aligned"):
        _cpu.sgemm_pack_b(False, 8, 8, b, 8, bp)
    a = np.ones((2, 8), np.float32)
    c = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError, match="bp must be 64-byte aligned"):
        _cpu.sgemm_prepacked_b(False, 2, 8, 8, 1.0, a, 8, bp, 16, 0.0, c, 8)
    with pytest.raises(ValueError, match="packed_cols must be positive"):
        _cpu.sgemm_prepacked_b(False, 2, 8, 8, 1.0, a, 8, aligned_floats(256), 0, 0.0, c, 8)
