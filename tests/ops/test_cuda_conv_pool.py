"""GPU-only extras for the CUDA convolution and pooling kernels (the shared op tests in
tests/ops/test_pool.py and tests/ops/test_conv.py already run every case on the 'cuda' device).

Here: the GPU results against the CPU kernels (max pool bit for bit: it selects values; sums within
reduction_tol of the reduction length), determinism of the backward passes (gathers and split
reductions in a fixed order, no atomics), a non-default CuPy stream, shapes that make the backward
weight pass split its reduction, and the int64 index path. Skipped with a reason without a GPU/CuPy.
"""

import numpy as np
import pytest

import fastlayers as fl

from ..helpers import CUDA_SKIP_REASON, assert_close, reduction_tol

pytestmark = pytest.mark.skipif(not fl.cuda.is_available(), reason=CUDA_SKIP_REASON)

POOL_CASES = [((2, 3, 9, 9), 2, 2, 0, 1, False), ((2, 3, 9, 9), 3, 2, 1, 1, False),
              ((1, 2, 7, 11), (3, 2), (1, 3), (1, 1), 1, True), ((1, 1, 9, 8), 2, 3, 0, 1, True),
              ((2, 2, 11, 10), 3, 1, 1, 2, False), ((1, 2, 9, 9), 2, 2, 0, 1, True)]


@pytest.fixture
def cp():
    import cupy

    return cupy


@pytest.mark.parametrize("shape,k,s,p,d,ceil", POOL_CASES)
def test_pool_gpu_matches_cpu(cp, shape, k, s, p, d, ceil):
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 3, size=shape).astype(np.float32)  # ties: first maximum must win on both
    x.flat[::7] = np.nan  # NaN windows: NaN out, gradient to the last NaN, on both
    y, idx = fl.max_pool2d(x, k, s, p, d, ceil, True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    gy, gidx = fl.max_pool2d(cp.asarray(x), k, s, p, d, ceil, True)
    np.testing.assert_array_equal(gy.get(), y)
    np.testing.assert_array_equal(gidx.get(), idx)
    want = fl.max_pool2d_backward(g, x, k, s, p, d, ceil)
    for indices in (None, gidx):  # the tiled one-pass kernel or workspace + gather; the gather alone
        got = fl.max_pool2d_backward(cp.asarray(g), cp.asarray(x), k, s, p, d, ceil, indices=indices)
        np.testing.assert_array_equal(got.get(), want)  # same sums in the same order: bit for bit
    if d != 1:
        return
    xf = rng.standard_normal(shape).astype(np.float32)
    kh, kw = (k, k) if isinstance(k, int) else k
    tol = reduction_tol(kh * kw)
    ga = rng.standard_normal(fl.avg_pool2d(xf, k, s, p, ceil).shape).astype(np.float32)
    for flag in (True, False):
        for div in (None, -3):
            opts = (k, s, p, ceil, flag, div)
            assert_close(fl.avg_pool2d(cp.asarray(xf), *opts), fl.avg_pool2d(xf, *opts), tol, "avg")
            assert_close(fl.avg_pool2d_backward(cp.asarray(ga), cp.asarray(xf), *opts),
                         fl.avg_pool2d_backward(ga, xf, *opts), tol, "avg backward")
    assert_close(fl.lp_pool2d(cp.asarray(xf), 3.0, k, s, ceil, padding=p), fl.lp_pool2d(xf, 3.0, k, s, ceil, padding=p),
                 tol, "lp")
    assert_close(fl.lp_pool2d_backward(cp.asarray(ga), cp.asarray(xf), 3.0, k, s, ceil, padding=p),
                 fl.lp_pool2d_backward(ga, xf, 3.0, k, s, ceil, padding=p), tol, "lp backward")


@pytest.mark.parametrize("shape,size", [((2, 3, 13, 13), (6, 6)), ((1, 2, 14, 64), (7, 8)), ((2, 2, 9, 9), 1),
                                        ((1, 1, 4, 5), (7, 3))])
def test_adaptive_and_unpool_gpu_match_cpu(cp, shape, size):
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 3, size=shape).astype(np.float32)
    y, idx = fl.adaptive_max_pool2d(x, size, True)
    gy, gidx = fl.adaptive_max_pool2d(cp.asarray(x), size, True)
    np.testing.assert_array_equal(gy.get(), y)
    np.testing.assert_array_equal(gidx.get(), idx)
    g = rng.standard_normal(y.shape).astype(np.float32)
    want = fl.adaptive_max_pool2d_backward(g, x, size)
    for indices in (None, gidx):
        np.testing.assert_array_equal(
            fl.adaptive_max_pool2d_backward(cp.asarray(g), cp.asarray(x), size, indices=indices).get(), want)
    tol = reduction_tol(shape[2] * shape[3])
    assert_close(fl.adaptive_avg_pool2d(cp.asarray(x), size), fl.adaptive_avg_pool2d(x, size), tol, "adaptive avg")
    assert_close(fl.adaptive_avg_pool2d_backward(cp.asarray(g), cp.asarray(x), size),
                 fl.adaptive_avg_pool2d_backward(g, x, size), tol, "adaptive avg backward")
    py, pidx = fl.max_pool2d(x, 2, return_indices=True)  # distinct indices: a defined unpool
    u = fl.max_unpool2d(cp.asarray(py), cp.asarray(pidx), 2, output_size=shape)
    np.testing.assert_array_equal(u.get(), fl.max_unpool2d(py, pidx, 2, output_size=shape))
    gu = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(fl.max_unpool2d_backward(cp.asarray(gu), cp.asarray(py), cp.asarray(pidx), 2,
                                                           output_size=shape).get(),
                                  fl.max_unpool2d_backward(gu, py, pidx, 2, output_size=shape))
    bad = pidx.copy()
    bad.flat[0] = 10**6  # skipped on the GPU (no host check), never written out of bounds
    u = fl.max_unpool2d(cp.asarray(py), cp.asarray(bad), 2, output_size=shape).get()
    assert u.shape == shape and np.isfinite(u).all()


def test_pool_on_a_non_default_stream(cp):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 8, 33, 33)).astype(np.float32)
    with cp.cuda.Stream(non_blocking=True) as stream:
        y = fl.max_pool2d(cp.asarray(x), 3, 2, 1)
        gy = fl.global_avg_pool2d(cp.asarray(x))
        stream.synchronize()
    np.testing.assert_array_equal(y.get(), fl.max_pool2d(x, 3, 2, 1))
    assert_close(gy, fl.global_avg_pool2d(x), reduction_tol(33 * 33), "global avg")


def _conv_case(rng, N, C, H, W, K, R, S, groups):
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C // groups, R, S)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    return x, w, b


# (N, C, H, W, K, R, S, stride, padding, dilation, groups); the last two make N*P*Q long enough
# for the backward weight pass to split its reduction across blocks.
CONV_CASES = [
    (2, 3, 9, 8, 4, 3, 3, 1, 1, 1, 1),
    (1, 4, 11, 10, 6, 3, 2, (2, 3), (1, 0), (2, 1), 2),
    (2, 6, 7, 7, 6, 3, 3, 1, 1, 1, 6),
    (64, 3, 16, 16, 8, 3, 3, 1, 1, 1, 1),
    (8, 16, 30, 30, 16, 1, 1, 1, 0, 1, 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_gpu_matches_cpu_and_is_deterministic(cp, case):
    N, C, H, W, K, R, S, st, pad, dil, groups = case
    if not hasattr(fl, "conv2d"):
        pytest.skip("conv2d op not merged into this branch yet")
    rng = np.random.default_rng(2)
    x, w, b = _conv_case(rng, N, C, H, W, K, R, S, groups)
    kw = dict(stride=st, padding=pad, dilation=dil, groups=groups)
    y = fl.conv2d(x, w, b, **kw)
    g = rng.standard_normal(y.shape).astype(np.float32)
    crs = (C // groups) * R * S
    assert_close(fl.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), **kw), y, reduction_tol(crs), "forward")
    want = fl.conv2d_backward(g, x, w, **kw)
    args = (cp.asarray(g), cp.asarray(x), cp.asarray(w))
    got = fl.conv2d_backward(*args, **kw)
    again = fl.conv2d_backward(*args, **kw)
    P, Q = y.shape[2], y.shape[3]
    for name, a, b2, c, n in zip(("grad_x", "grad_w", "grad_b"), got, again, want,
                                 ((K // groups) * R * S, N * P * Q, N * P * Q)):
        assert_close(a, c, reduction_tol(n), name)
        np.testing.assert_array_equal(a.get(), b2.get(), err_msg=f"{name} not deterministic")


def test_pool_int64_index_path(cp):
    """planes*h*w >= 2^30 takes the int64 kernels (needs ~8.6 GB of GPU memory)."""
    free, _ = cp.cuda.runtime.memGetInfo()
    if free < 12 * 2**30:
        pytest.skip("needs about 12 GiB of free GPU memory")
    x = cp.zeros((1, 2**14, 256, 257), dtype=cp.float32)  # 2^30 + 2^22 elements
    x[0, -1, -2:, -3:] = cp.asarray([[1, 5, 2], [7, 3, 4]], dtype=cp.float32)
    y = fl.max_pool2d(x, 2, 2)
    assert float(y[0, -1, -1, -1]) == 7.0 and float(y[0, -2].max()) == 0.0
    g = fl.max_pool2d_backward(cp.ones_like(y), x, 2, 2)
    assert float(g[0, -1, -1, -3]) == 1.0 and float(g.sum(dtype=cp.float64)) == y.size
