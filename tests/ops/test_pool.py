"""Pooling kernels against the NumPy reference (float64), every backend, and on the CPU both the
portable and the AVX2 paths (2x2 stride-2 kernels, the separable general max, the argmax rows).

Tolerances: max pool is exact (it selects and routes values, in the reference's order; indices equal);
avg and lp pool sum kh*kw terms: reduction_tol(kh*kw) (global average: reduction_tol(H*W); adaptive:
the largest window)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import _cpu
from fastlayers import reference as ref

from ..helpers import Device, assert_close, reduction_tol

# (x shape, kernel_size, stride, padding, dilation, ceil_mode)
CASES = [
    ((2, 3, 8, 8), 2, None, 0, 1, False),            # the common 2x2/2
    ((1, 2, 7, 37), 2, 2, 0, 1, False),              # 2x2/2, odd H, ow = 18: SIMD body + tail, odd leftover col
    ((1, 2, 7, 37), 2, 2, 0, 1, True),               # ... ceil_mode: the odd last row/column get a window
    ((2, 2, 33, 50), 2, None, 0, 1, False),          # 2x2/2, odd H, ow = 25
    ((2, 2, 33, 51), 2, None, 0, 1, True),
    ((1, 3, 4, 16), 2, None, 0, 1, False),           # 2x2/2, ow = 8: exactly one SIMD step
    ((1, 1, 1, 1), 1, None, 0, 1, False),            # 1x1 everything
    ((1, 1, 1, 1), 2, None, 0, 1, True),             # a ceil window over a single cell
    ((2, 3, 5, 6), 1, 1, 0, 1, False),               # 1x1 window
    ((3, 2, 9, 9), 3, 2, 1, 1, False),               # 3x3 stride 2 padding 1 (ResNet stem)
    ((3, 2, 10, 10), 3, 2, 1, 1, True),              # ... ceil: the last window runs past the padding
    ((1, 2, 55, 55), 3, 2, 0, 1, True),              # GoogLeNet's ceil pool, SIMD rows with tails
    ((1, 3, 10, 11), 3, 3, 0, 1, False),             # stride 3, tiled, leftover rows/cols
    ((1, 3, 10, 11), 3, 3, 0, 1, True),              # tiled, the last windows cut short
    ((2, 2, 7, 7), 3, 1, 1, 1, False),               # overlapping windows, padded
    ((1, 2, 6, 9), (2, 3), (1, 2), (1, 1), 1, False),  # non-square kernel and stride
    ((2, 1, 11, 5), (3, 2), (2, 3), (1, 0), 1, True),
    ((1, 2, 9, 8), (2, 2), (3, 3), 0, 1, False),     # stride > kernel: gaps no window covers
    ((1, 2, 9, 8), (2, 2), (3, 3), 0, 1, True),
    ((1, 1, 5, 13), (5, 4), (2, 4), (2, 2), 1, False),  # window as tall as the input with padding
    ((1, 1, 6, 6), 4, 3, 2, 1, True),                # ceil: a window starting in the right padding is dropped
    ((1, 1, 5, 5), 2, 2, 1, 1, True),                # ceil window starting in the padding's last cell
    ((2, 8, 48, 48), 2, 2, 0, 1, False),             # crosses the OpenMP grain
    ((2, 8, 48, 48), 3, 2, 1, 1, False),
    ((2, 8, 47, 47), 3, 2, 1, 1, True),
    ((3, 2, 8, 10), 2, None, 0, 1, False),           # 2x2/2, ow = 5: the 4-wide SIMD step plus an overlapping one
    ((2, 3, 9, 15), 2, None, 0, 1, False),           # ow = 7, odd H and W
    ((4, 64, 8, 8), 2, None, 0, 1, False),           # LeNet's pool2 (ow = 4), several planes
    ((2, 2, 9, 10), 3, 1, 1, 2, False),              # dilation with padding
    ((1, 2, 20, 21), 3, 1, 1, 2, True),              # dilation, SIMD rows
    ((1, 1, 8, 9), (3, 2), (2, 1), (1, 1), (3, 2), True),
    ((2, 2, 14, 30), 3, 2, 1, 3, False),             # dilation, stride 2
    ((1, 1, 1, 3), 2, 2, 1, 2, True),                # dilation stepping over the input: empty windows
]

ISAS = ["generic", "native"]


@pytest.fixture(params=ISAS)
def isa(request, device):
    """On the CPU, run once on the portable kernels and once on the widest the machine has."""
    if device.name != "cpu" and request.param != "native":
        pytest.skip("the ISA ceiling only applies to the CPU backend")
    if request.param == "generic":
        _cpu.set_max_isa("generic")
    try:
        yield request.param
    finally:
        _cpu.set_max_isa(_cpu.detected_isa())


def _k(kernel_size):
    return kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)


def _check_max(device, x, k, s, p, d, ceil):
    dx = device.put(x)
    y, idx = fl.max_pool2d(dx, k, s, p, d, ceil, True)
    ry, ridx = ref.max_pool2d(x, k, s, p, d, ceil, True)
    np.testing.assert_array_equal(device.get(y), ry)
    np.testing.assert_array_equal(device.get(fl.max_pool2d(dx, k, s, p, d, ceil)), ry)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(device.get(idx), ridx)
    g = np.random.default_rng(7).standard_normal(ry.shape).astype(np.float32)
    dg = device.put(g)
    want = ref.max_pool2d_backward(g, x, k, s, p, d, ceil)
    np.testing.assert_array_equal(device.get(fl.max_pool2d_backward(dg, dx, k, s, p, d, ceil)), want)
    np.testing.assert_array_equal(device.get(fl.max_pool2d_backward(dg, dx, k, s, p, d, ceil, indices=idx)), want)


def _check_avg_lp(device, x, k, s, p, ceil):
    x64 = x.astype(np.float64)
    kh, kw = _k(k)
    tol = reduction_tol(kh * kw)
    dx = device.put(x)
    g = np.random.default_rng(8).standard_normal(ref.avg_pool2d(x, k, s, p, ceil).shape)
    dg = device.put(g.astype(np.float32))
    # divisor_override on the small cases only (the reference is a Python loop over windows)
    divisors = (None, 3, -2) if x.size < 3000 else (None,)
    for include in (True, False):
        for div in divisors:
            what = f"avg_pool2d include_pad={include} divisor_override={div}"
            assert_close(fl.avg_pool2d(dx, k, s, p, ceil, include, div), ref.avg_pool2d(x64, k, s, p, ceil, include, div),
                         tol, what)
            assert_close(fl.avg_pool2d_backward(dg, dx, k, s, p, ceil, include, div),
                         ref.avg_pool2d_backward(g, x64, k, s, p, ceil, include, div), tol, what + " backward")
    for pw in (1.0, 2.0, 3.5) if x.size < 3000 else (2.0,):
        assert_close(fl.lp_pool2d(dx, pw, k, s, ceil, padding=p), ref.lp_pool2d(x64, pw, k, s, ceil, padding=p), tol,
                     f"lp_pool2d p={pw}")
        assert_close(fl.lp_pool2d_backward(dg, dx, pw, k, s, ceil, padding=p),
                     ref.lp_pool2d_backward(g, x64, pw, k, s, ceil, padding=p), tol, f"lp_pool2d_backward p={pw}")


@pytest.mark.parametrize("shape,k,s,p,d,ceil", CASES)
def test_matches_reference(device, isa, rng, shape, k, s, p, d, ceil):
    x = rng.standard_normal(shape).astype(np.float32)
    _check_max(device, x, k, s, p, d, ceil)
    if d == 1:
        _check_avg_lp(device, x, k, s, p, ceil)


@pytest.mark.parametrize("shape,k,s,p,d,ceil", CASES)
def test_max_pool_ties_nan_inf(device, isa, rng, shape, k, s, p, d, ceil):
    # Three distinct values (most windows hold tied maxima: the first one wins), NaN (the window is
    # NaN, its index the last NaN), -inf (windows of -inf route to their first cell) and +inf.
    x = rng.integers(0, 3, size=shape).astype(np.float32)
    x[rng.random(shape) < 0.1] = np.nan
    x[rng.random(shape) < 0.1] = -np.inf
    x[rng.random(shape) < 0.05] = np.inf
    _check_max(device, x, k, s, p, d, ceil)


def test_max_pool_tie_example(device, isa):
    x = np.array([[[[1, 5, 5, 0], [5, 2, 0, 0]]]], dtype=np.float32)
    gi = device.get(fl.max_pool2d_backward(device.put(np.array([[[[3, 4]]]], np.float32)), device.put(x), 2))
    np.testing.assert_array_equal(gi, [[[[0, 3, 4, 0], [0, 0, 0, 0]]]])  # 2nd cell; then cell 0 of window 2
    _, idx = fl.max_pool2d(device.put(x), 2, return_indices=True)
    np.testing.assert_array_equal(device.get(idx), [[[[1, 2]]]])


def test_max_pool_nan_example(device, isa):
    # One 2x2 window per case, repeated 9 times along W so the SIMD body (8 outputs) sees it too,
    # and 5 times for the 4-wide path; also as a ceil_mode pool of a 3-wide input.
    for window, first in [([1, np.nan, np.nan, 9], 2), ([np.nan, 2, 3, 4], 0), ([np.nan, 2, np.nan, 4], 2),
                          ([4, 2, 3, np.nan], 3), ([-np.inf] * 4, 0)]:
        for reps in (9, 5):
            w = np.array(window, np.float32).reshape(2, 2)
            x = np.tile(w, (1, reps))[None, None]
            y, idx = fl.max_pool2d(device.put(x), 2, return_indices=True)
            np.testing.assert_array_equal(device.get(y), np.full((1, 1, 1, reps), w.flat[first], np.float32))
            np.testing.assert_array_equal(device.get(idx)[0, 0, 0], [2 * r + first // 2 * 2 * reps + first % 2
                                                                      for r in range(reps)])
            gi = device.get(fl.max_pool2d_backward(device.put(np.ones((1, 1, 1, reps), np.float32)), device.put(x), 2))
            expected = np.zeros((2, 2), np.float32)
            expected.flat[first] = 1
            np.testing.assert_array_equal(gi[0, 0], np.tile(expected, (1, reps)))


def test_avg_and_lp_propagate_nan(device, isa):
    x = np.ones((1, 1, 2, 18), np.float32)
    x[0, 0, 1, 5] = np.nan
    for y in (fl.avg_pool2d(device.put(x), 2), fl.lp_pool2d(device.put(x), 2.0, 2),
              fl.adaptive_avg_pool2d(device.put(x), (1, 9)), fl.adaptive_max_pool2d(device.put(x), (1, 9)),
              fl.max_pool2d(device.put(x), 2, ceil_mode=True)):
        y = device.get(y)
        assert np.isnan(y[0, 0, 0, 2]) and np.isnan(y).sum() == 1


def test_lp_pool_zero_windows_have_zero_gradient(device):
    x = np.zeros((1, 2, 4, 6), np.float32)
    x[0, 0, 1, 1] = -2.0
    for p in (0.5, 1.0, 2.0, 3.5):
        y = device.get(fl.lp_pool2d(device.put(x), p, 2))
        assert y[0, 0, 0, 0] == 2.0 and np.count_nonzero(y) == 1
        gi = device.get(fl.lp_pool2d_backward(device.put(np.ones(y.shape, np.float32)), device.put(x), p, 2))
        assert np.all(np.isfinite(gi))
        expected = np.zeros_like(x)
        expected[0, 0, 1, 1] = -1.0  # y = |x| for a lone non-zero cell: dy/dx = sign(x)
        np.testing.assert_array_equal(gi, expected)


@pytest.mark.parametrize("p", [3.0, 9.0, 20.0])
def test_lp_pool_norm_exact_where_the_power_sum_overflows(device, p):
    """|x| near float32's max: |x|^p overflows float32 (p = 3) and even double (p >= 9), but the norm
    and its gradient |x|^(p-1) / y^(p-1) are finite; found by the fuzz (LpPool2d, p = 3, padding 1).
    The exact values come from the scaled form: y = m * (sum (|x|/m)^p)^(1/p), m = max |x|."""
    x = np.array([[[[3e38, -3e38, 1.0, 0.0], [3e37, 2.0, 3e38, 1e-42]]]], np.float32)
    k = (1, 2)
    y = device.get(fl.lp_pool2d(device.put(x), p, k))
    gi = device.get(fl.lp_pool2d_backward(device.put(np.ones(y.shape, np.float32)), device.put(x), p, k))
    a = np.abs(x.astype(np.float64)).reshape(1, 1, 2, 2, 2)
    m = a.max(axis=-1, keepdims=True)
    t = (np.sum((a / m) ** p, axis=-1, keepdims=True)) ** (1 / p)
    with np.errstate(over="ignore"):
        want_y = (m * t)[..., 0].astype(np.float32)
    want_g = (np.sign(x).reshape(a.shape) * (a / m / t) ** (p - 1)).reshape(x.shape).astype(np.float32)
    np.testing.assert_array_equal(np.isinf(y), np.isinf(want_y))
    assert_close(y[np.isfinite(y)], want_y[np.isfinite(want_y)], 1e-6)
    assert np.all(np.isfinite(gi))
    assert_close(gi, want_g, 1e-5)
    ry = ref.lp_pool2d(x, p, k)
    rg = ref.lp_pool2d_backward(np.ones(y.shape, np.float32), x, p, k)
    np.testing.assert_array_equal(np.isinf(ry), np.isinf(want_y))
    assert_close(rg, want_g, 1e-5)


# ------------------------------------------------------------------ the option edges, by example

def test_ceil_mode_last_window_rule(device):
    # 5 wide, kernel 2, stride 2, padding 1: floor gives 3 windows ([-1,0], [1,2], [3,4]); ceil would
    # add one starting at 5 == H + padding (entirely in the right padding): dropped, so also 3.
    x = device.put(np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5))
    assert fl.max_pool2d(x, 2, 2, 1, ceil_mode=True).shape == (1, 1, 3, 3)
    # 6 wide, kernel 2, stride 2, padding 1: ceil adds the window starting at 5 (inside the input).
    x6 = device.put(np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6))
    y = device.get(fl.max_pool2d(x6, 2, 2, 1, ceil_mode=True))
    assert y.shape == (1, 1, 4, 4) and y[0, 0, 3, 3] == 35
    # Its avg divisor: the window [5, 7) clipped to the padded input [-1, 7) counts 2 cells a side
    # with count_include_pad (one of them padding), 1 without.
    a = device.get(fl.avg_pool2d(x6, 2, 2, 1, ceil_mode=True))
    assert a[0, 0, 3, 3] == pytest.approx(35 / 4) and a.shape == (1, 1, 4, 4)
    assert device.get(fl.avg_pool2d(x6, 2, 2, 1, True, False))[0, 0, 3, 3] == 35
    # A ceil window running past the padded input: 5 wide, kernel 3, stride 2, padding 1, window 2
    # covers [3, 6); clipped to [-1, 6) it is 3 wide: divisor 3*3 even though the kernel is 3x3 ...
    ones = device.put(np.ones((1, 1, 6, 6), np.float32))
    a = device.get(fl.avg_pool2d(ones, 3, 2, 1, ceil_mode=True))
    np.testing.assert_allclose(a[0, 0, -1], [2 / 6, 3 / 6, 3 / 6, 1 / 4], rtol=1e-6)  # extents 2 x (3, 3, 3, 2)
    # ... and PyTorch's lp_pool2d (avg-based) scales a window past the input by kh*kw / that divisor.
    lp = device.get(fl.lp_pool2d(device.put(np.ones((1, 1, 5, 5), np.float32)), 1.0, 2, 2, True))
    np.testing.assert_allclose(lp[0, 0], [[4, 4, 4], [4, 4, 4], [4, 4, 4]], rtol=1e-6)


def test_divisor_override_and_count_include_pad(device):
    x = device.put(np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4))
    for include in (True, False):
        y = device.get(fl.avg_pool2d(x, 3, 1, 1, False, include, divisor_override=-2))
        assert y[0, 0, 0, 0] == (1 + 2 + 5 + 6) / -2  # the override wins over both counts
        g = device.get(fl.avg_pool2d_backward(device.put(np.ones((1, 1, 4, 4), np.float32)), x, 3, 1, 1, False,
                                              include, -2))
        assert g[0, 0, 0, 0] == 4 / -2  # in 4 windows
    y = device.get(fl.avg_pool2d(x, 3, 1, 1, False, False))
    assert y[0, 0, 0, 0] == pytest.approx((1 + 2 + 5 + 6) / 4)


def test_dilation_with_padding(device):
    x = np.arange(49, dtype=np.float32).reshape(1, 1, 7, 7)
    y, idx = fl.max_pool2d(device.put(x), 3, 2, 1, dilation=2, return_indices=True)
    # window (0, 0) covers rows/cols -1, 1, 3: its cells (1, 1) .. (3, 3); the max is at (3, 3)
    assert device.get(y)[0, 0, 0, 0] == 24 and device.get(idx)[0, 0, 0, 0] == 24
    assert y.shape == (1, 1, 3, 3)  # (7 + 2 - 5) // 2 + 1


def test_empty_dilated_window(device):
    # 1x3 input, kernel 2, dilation 2, padding 1, ceil: window 0 covers columns -1 and 1 (real),
    # the row window covers rows -1 and 1: no real row. -inf, index -1, no gradient.
    x = device.put(np.ones((1, 1, 1, 3), np.float32))
    y, idx = fl.max_pool2d(x, 2, 2, 1, 2, True, True)
    assert np.all(device.get(y) == -np.inf) and np.all(device.get(idx) == -1)
    g = fl.max_pool2d_backward(device.put(np.ones(y.shape, np.float32)), x, 2, 2, 1, 2, True, indices=idx)
    assert np.all(device.get(g) == 0)


# ----------------------------------------------------------------------------------- adaptive

ADAPTIVE = [((2, 3, 13, 13), (6, 6)), ((1, 2, 7, 5), (3, 4)), ((1, 1, 4, 4), (7, 9)), ((2, 3, 5, 8), 1),
            ((1, 2, 8, 8), (None, 3)), ((1, 2, 6, 6), (3, None)), ((2, 2, 16, 32), (8, 16)),  # divisible: windowed
            ((1, 3, 9, 9), (None, None)), ((2, 4, 14, 56), (7, 8)), ((1, 1, 5, 5), (0, 3))]


@pytest.mark.parametrize("shape,size", ADAPTIVE)
def test_adaptive_pools(device, isa, rng, shape, size):
    x = rng.integers(-3, 4, size=shape).astype(np.float32)  # ties
    x[rng.random(shape) < 0.05] = np.nan
    xf = rng.standard_normal(shape).astype(np.float32)
    dx, dxf = device.put(x), device.put(xf)
    y, idx = fl.adaptive_max_pool2d(dx, size, return_indices=True)
    ry, ridx = ref.adaptive_max_pool2d(x, size, True)
    np.testing.assert_array_equal(device.get(y), ry)
    np.testing.assert_array_equal(device.get(idx), ridx)
    np.testing.assert_array_equal(device.get(fl.adaptive_max_pool2d(dx, size)), ry)
    g = rng.standard_normal(ry.shape).astype(np.float32)
    want = ref.adaptive_max_pool2d_backward(g, x, size)
    np.testing.assert_array_equal(device.get(fl.adaptive_max_pool2d_backward(device.put(g), dx, size)), want)
    np.testing.assert_array_equal(device.get(fl.adaptive_max_pool2d_backward(device.put(g), dx, size, indices=idx)),
                                  want)
    tol = reduction_tol(shape[2] * shape[3])
    assert_close(fl.adaptive_avg_pool2d(dxf, size), ref.adaptive_avg_pool2d(xf.astype(np.float64), size), tol, "avg")
    assert_close(fl.adaptive_avg_pool2d_backward(device.put(g), dxf, size),
                 ref.adaptive_avg_pool2d_backward(g.astype(np.float64), xf, size), tol, "avg backward")


def test_adaptive_global_is_the_global_kernel(device, rng):
    x = rng.standard_normal((2, 5, 7, 9)).astype(np.float32)
    dx = device.put(x)
    np.testing.assert_array_equal(device.get(fl.adaptive_avg_pool2d(dx, 1))[:, :, 0, 0],
                                  device.get(fl.global_avg_pool2d(dx)))
    g = rng.standard_normal((2, 5, 1, 1)).astype(np.float32)
    np.testing.assert_array_equal(device.get(fl.adaptive_avg_pool2d_backward(device.put(g), dx, (1, 1))),
                                  device.get(fl.global_avg_pool2d_backward(device.put(g[:, :, 0, 0]), dx)))


# ------------------------------------------------------------------------------------- unpool

@pytest.mark.parametrize("shape,k,s,p,ceil", [((2, 3, 8, 8), 2, None, 0, False), ((1, 2, 9, 7), 3, 2, 1, False),
                                              ((1, 2, 9, 7), 3, 2, 1, True), ((2, 1, 5, 6), (2, 3), (1, 2), 1, False)])
def test_max_unpool_roundtrip(device, rng, shape, k, s, p, ceil):
    x = rng.standard_normal(shape).astype(np.float32)
    y, idx = fl.max_pool2d(device.put(x), k, s, p, 1, ceil, True)
    for output_size in (shape, shape[2:], None):
        try:
            want = ref.max_unpool2d(device.get(y), device.get(idx), k, s, p, output_size)
        except IndexError:  # the default size is smaller than x: the CPU check must say so
            if device.name == "cuda":  # (the GPU skips such indices: no host check)
                continue
            with pytest.raises(ValueError, match="indices must lie in"):
                fl.max_unpool2d(y, idx, k, s, p, output_size)
            continue
        u = fl.max_unpool2d(y, idx, k, s, p, output_size)
        np.testing.assert_array_equal(device.get(u), want)
        if output_size is not None:  # every pooled max back in its place, the rest 0
            kept = np.zeros(shape, bool).reshape(shape[0], shape[1], -1)
            np.put_along_axis(kept, device.get(idx).reshape(shape[0], shape[1], -1), True, axis=2)
            np.testing.assert_array_equal(device.get(u), np.where(kept.reshape(shape), x, 0))
        g = rng.standard_normal(want.shape).astype(np.float32)
        np.testing.assert_array_equal(device.get(fl.max_unpool2d_backward(device.put(g), y, idx, k, s, p, output_size)),
                                      ref.max_unpool2d_backward(g, device.get(y), device.get(idx), k, s, p, output_size))


def test_max_unpool_duplicates_and_bad_indices(device):
    x = device.put(np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32))
    if device.name == "cpu":  # the last of duplicate indices wins (on the GPU: one of them, unordered)
        u = fl.max_unpool2d(x, np.array([[[[0, 0], [5, 0]]]]), 2)
        np.testing.assert_array_equal(u.reshape(-1)[[0, 5]], [4.0, 3.0])
        for bad in (-1, 16, 2**40):
            with pytest.raises(ValueError, match=r"indices must lie in \[0, 16\).*1 out-of-range"):
                fl.max_unpool2d(x, np.array([[[[0, 1], [2, bad]]]]), 2)
            with pytest.raises(ValueError, match=r"indices must lie in \[0, 16\)"):
                fl.max_unpool2d_backward(np.ones((1, 1, 4, 4), np.float32), x, np.array([[[[0, 1], [2, bad]]]]), 2)
    with pytest.raises(ValueError, match=r"indices must have shape \(1, 1, 2, 2\)"):
        fl.max_unpool2d(x, device.put(np.zeros((1, 1, 2, 1), np.int64)), 2)
    with pytest.raises(TypeError, match="indices must hold integer"):
        fl.max_unpool2d(x, device.put(np.zeros((1, 1, 2, 2), np.float32)), 2)
    with pytest.raises(ValueError, match=r"output_size .*dim 0 must be non-negative and strictly between 2 and 6"):
        fl.max_unpool2d(x, device.put(np.zeros((1, 1, 2, 2), np.int64)), 2, output_size=(6, 4))
    with pytest.raises(ValueError, match="output_size must be a sequence of 2"):
        fl.max_unpool2d(x, device.put(np.zeros((1, 1, 2, 2), np.int64)), 2, output_size=(1, 4, 4))
    with pytest.raises(ValueError, match="unpooled output .* is too large"):
        fl.max_unpool2d(x, device.put(np.zeros((1, 1, 2, 2), np.int64)), 2, stride=2**40)
    with pytest.raises(ValueError, match="must be positive"):
        fl.max_unpool2d(x, device.put(np.zeros((1, 1, 2, 2), np.int64)), 1, padding=2)


# ----------------------------------------------------------------------------------- unbatched

def test_unbatched_inputs(device, rng):
    x = rng.standard_normal((3, 9, 8)).astype(np.float32)
    dx = device.put(x)
    xb = x[None]
    y, idx = fl.max_pool2d(dx, 3, 2, 1, 1, True, True)
    assert y.shape == (3, 5, 5) and idx.shape == (3, 5, 5)
    np.testing.assert_array_equal(device.get(y), ref.max_pool2d(xb, 3, 2, 1, 1, True)[0])
    np.testing.assert_array_equal(device.get(y), ref.max_pool2d(x, 3, 2, 1, 1, True))  # the reference too
    g = rng.standard_normal((3, 5, 5)).astype(np.float32)
    gx = fl.max_pool2d_backward(device.put(g), dx, 3, 2, 1, 1, True, indices=idx)
    assert gx.shape == x.shape
    np.testing.assert_array_equal(device.get(gx), ref.max_pool2d_backward(g[None], xb, 3, 2, 1, 1, True)[0])
    tol = reduction_tol(9)
    assert_close(fl.avg_pool2d(dx, 3, 2, 1, True, False), ref.avg_pool2d(xb, 3, 2, 1, True, False)[0], tol, "avg")
    assert_close(fl.avg_pool2d_backward(device.put(g), dx, 3, 2, 1, True), ref.avg_pool2d_backward(g[None], xb, 3, 2, 1,
                 True)[0], tol, "avg backward")
    assert_close(fl.lp_pool2d(dx, 2, 2), ref.lp_pool2d(xb, 2, 2)[0], tol, "lp")
    assert_close(fl.adaptive_avg_pool2d(dx, (4, 3)), ref.adaptive_avg_pool2d(xb, (4, 3))[0], tol, "adaptive avg")
    ya, ia = fl.adaptive_max_pool2d(dx, 5, True)
    assert ya.shape == (3, 5, 5) and ia.shape == (3, 5, 5)
    u = fl.max_unpool2d(y, idx, 3, 2, 1, output_size=(9, 8))
    assert u.shape == (3, 9, 8)
    np.testing.assert_array_equal(device.get(u), ref.max_unpool2d(device.get(y)[None], device.get(idx)[None], 3, 2, 1,
                                                                  (9, 8))[0])
    assert fl.max_unpool2d_backward(device.put(np.ones((3, 9, 8), np.float32)), y, idx, 3, 2, 1, (9, 8)).shape == y.shape
    with pytest.raises(ValueError, match=r"grad_out must have shape \(3, 5, 5\)"):
        fl.max_pool2d_backward(device.put(g[None]), dx, 3, 2, 1, 1, True)


# ------------------------------------------------------------------------- geometry hardening

o = lambda *s: np.ones(s, np.float32)  # noqa: E731


def test_issue17_reproducers(device):
    x8 = device.put(np.arange(384, dtype=np.float32).reshape(2, 3, 8, 8))
    x8h = np.arange(384, dtype=np.float32).reshape(2, 3, 8, 8)
    # a stride past the padded input: one window, the stride irrelevant
    g = fl.max_pool2d_backward(device.put(o(2, 3, 1, 1)), x8, 5, 2**63 - 1, 2)
    np.testing.assert_array_equal(device.get(g), ref.max_pool2d_backward(o(2, 3, 1, 1), x8h, 5, 2**63 - 1, 2))
    np.testing.assert_array_equal(device.get(fl.max_pool2d(x8, 5, 2**63 - 1, 2)), ref.max_pool2d(x8h, 5, 2**63 - 1, 2))
    np.testing.assert_array_equal(device.get(fl.max_pool2d(x8, 5, 2**64, 2)), ref.max_pool2d(x8h, 5, 2**64, 2))
    # kh*kw would overflow int64: the divisor is formed in double
    y = device.get(fl.avg_pool2d(device.put(o(1, 1, 4, 4)), 2**62, padding=2**61))
    np.testing.assert_allclose(y, 16.0 / 2**124, rtol=1e-6)
    np.testing.assert_allclose(device.get(fl.lp_pool2d(device.put(o(1, 1, 4, 4)), 2.0, 2**62, 1, True, padding=2**61)),
                               ref.lp_pool2d(np.ones((1, 1, 4, 4)), 2.0, 2**62, 1, True, padding=2**61), rtol=1e-5)


@pytest.mark.parametrize("value", [2**31, 2**62, 2**63 - 1, 2**63, 2**64])
def test_huge_geometry_values(device, value):
    x = device.put(np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8))
    xh = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8)
    for kwargs in (dict(kernel_size=value), dict(kernel_size=3, dilation=value), dict(kernel_size=3, padding=value),
                   dict(kernel_size=value, padding=value // 2), dict(kernel_size=(3, value), padding=(1, value // 2))):
        for op, reference in ((fl.max_pool2d, ref.max_pool2d), (fl.avg_pool2d, ref.avg_pool2d)):
            if op is fl.avg_pool2d and "dilation" in kwargs:
                continue
            try:  # the right answer or a ValueError naming the argument
                y = device.get(op(x, **kwargs))
            except ValueError as e:
                assert "kernel_size" in str(e) or "padding" in str(e), e
                continue
            want = reference(xh.astype(np.float64), **kwargs)
            np.testing.assert_allclose(y, want, 1e-6)
            gy = np.ones(y.shape, np.float32)
            back = fl.max_pool2d_backward if op is fl.max_pool2d else fl.avg_pool2d_backward
            rback = ref.max_pool2d_backward if op is fl.max_pool2d else ref.avg_pool2d_backward
            np.testing.assert_allclose(device.get(back(device.put(gy), x, **kwargs)), rback(gy, xh, **kwargs),
                                       rtol=1e-6, atol=1e-30)
    for ceil in (False, True):  # huge strides: one window per axis
        assert fl.max_pool2d(x, 3, value, 1, ceil_mode=ceil).shape == (1, 1, 1, 1)
        assert fl.avg_pool2d(x, 3, (1, value), ceil_mode=ceil).shape == (1, 1, 6, 1)
    if value >= 2**43:
        with pytest.raises(ValueError, match="output_size .* is too large"):
            fl.adaptive_avg_pool2d(x, (value, 1))
    with pytest.raises(ValueError, match="divisor_override must fit in int64"):
        fl.avg_pool2d(x, 2, divisor_override=value * 2**64)


def test_inputs_not_modified(device, rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    g = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    gg = rng.standard_normal((2, 3)).astype(np.float32)
    x0, g0, gg0 = x.copy(), g.copy(), gg.copy()
    dx, dg, dgg = device.put(x), device.put(g), device.put(gg)
    for k, s, p in [(2, 2, 0), (3, 2, 1)]:
        _, idx = fl.max_pool2d(dx, k, s, p, return_indices=True)
        idx0 = device.get(idx).copy()
        fl.max_pool2d_backward(dg, dx, k, s, p), fl.max_pool2d_backward(dg, dx, k, s, p, indices=idx)
        fl.avg_pool2d(dx, k, s, p), fl.avg_pool2d_backward(dg, dx, k, s, p, False, False)
        fl.lp_pool2d(dx, 2.0, k, s, padding=p), fl.lp_pool2d_backward(dg, dx, 2.0, k, s, padding=p)
        fl.max_unpool2d(dg, idx, k, s, p, (8, 8)), fl.max_unpool2d_backward(dx, dg, idx, k, s, p, (8, 8))
        np.testing.assert_array_equal(device.get(idx), idx0)
    fl.adaptive_max_pool2d_backward(dg, dx, 4), fl.adaptive_avg_pool2d_backward(dg, dx, 4)
    fl.global_avg_pool2d(dx), fl.global_avg_pool2d_backward(dgg, dx)
    np.testing.assert_array_equal(device.get(dx), x0)
    np.testing.assert_array_equal(device.get(dg), g0)
    np.testing.assert_array_equal(device.get(dgg), gg0)


def test_empty_batch(device):
    x = device.put(np.zeros((0, 3, 4, 4), np.float32))
    assert fl.max_pool2d(x, 2).shape == (0, 3, 2, 2)
    y, idx = fl.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    assert y.shape == idx.shape == (0, 3, 3, 3)
    assert fl.avg_pool2d_backward(device.put(np.zeros((0, 3, 2, 2), np.float32)), x, 2).shape == (0, 3, 4, 4)
    assert fl.adaptive_max_pool2d(x, 3).shape == (0, 3, 3, 3)
    assert fl.max_unpool2d(device.put(np.zeros((0, 3, 3, 3), np.float32)), idx, 2).shape == (0, 3, 6, 6)
    assert fl.global_avg_pool2d(x).shape == (0, 3)


def test_bad_input(device):
    x = device.put(np.ones((1, 2, 6, 6), np.float32))
    g = device.put(np.ones((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"x must be 3-D \(C, H, W\) or 4-D \(N, C, H, W\), got shape \(6, 6\)"):
        fl.max_pool2d(device.put(np.ones((6, 6), np.float32)), 2)
    with pytest.raises(ValueError, match=r"x must have a non-empty H x W plane"):
        fl.avg_pool2d(device.put(np.ones((1, 2, 0, 6), np.float32)), 1)
    with pytest.raises(ValueError, match=r"x must be 4-D"):
        fl.global_avg_pool2d(device.put(np.ones((2, 6, 6), np.float32)))
    with pytest.raises(ValueError, match=r"kernel_size must be positive.*0"):
        fl.max_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"kernel_size must be positive"):
        fl.avg_pool2d(x, (2, -1))
    with pytest.raises(ValueError, match=r"stride must be positive.*0"):
        fl.avg_pool2d(x, 2, 0)
    with pytest.raises(ValueError, match=r"dilation must be positive.*0"):
        fl.max_pool2d(x, 2, 2, 0, (1, 0))
    with pytest.raises(ValueError, match=r"padding must be non-negative.*-1"):
        fl.max_pool2d(x, 2, 2, -1)
    with pytest.raises(ValueError, match=r"padding must be at most half.*\(1, 1\).*\(2, 2\)"):
        fl.max_pool2d(x, 3, 1, 2)
    with pytest.raises(ValueError, match=r"padding must be at most half.*\(1, 1\).*\(2, 2\)"):
        fl.max_pool2d(x, 3, 1, 2, dilation=3)  # the undilated kernel, as PyTorch
    with pytest.raises(ValueError, match=r"padding must be at most half.*\(1, 0\)"):
        fl.lp_pool2d(x, 2.0, (2, 1), 1, padding=(0, 1))
    with pytest.raises(ValueError, match=r"kernel_size \(7, 7\) is larger than the padded input \(6, 6\)"):
        fl.max_pool2d(x, 7)
    with pytest.raises(ValueError, match=r"kernel_size \(3, 3\) with dilation \(3, 3\) spans \(7, 7\) cells, larger"):
        fl.max_pool2d(x, 3, dilation=3)
    with pytest.raises(ValueError, match=r"kernel_size \(3, 9\) is larger than the padded input \(8, 8\)"):
        fl.avg_pool2d_backward(g, x, (3, 9), 1, 1)
    with pytest.raises(TypeError, match=r"kernel_size must be an int, got float 2.0"):
        fl.max_pool2d(x, 2.0)
    with pytest.raises(TypeError, match=r"kernel_size must be an int, got bool"):
        fl.max_pool2d(x, True)
    with pytest.raises(TypeError, match=r"stride must be an int, got str"):
        fl.max_pool2d(x, 2, "2")
    with pytest.raises(ValueError, match=r"padding must be an int or a pair"):
        fl.max_pool2d(x, 2, 2, (0, 0, 0))
    with pytest.raises(TypeError, match=r"count_include_pad must be a bool, got int"):
        fl.avg_pool2d(x, 2, count_include_pad=1)
    with pytest.raises(TypeError, match=r"ceil_mode must be a bool, got int"):
        fl.max_pool2d(x, 2, ceil_mode=1)
    with pytest.raises(TypeError, match=r"return_indices must be a bool"):
        fl.adaptive_max_pool2d(x, 2, return_indices="yes")
    with pytest.raises(ValueError, match=r"divisor_override must be a non-zero int, got 0"):
        fl.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match=r"divisor_override must be an int, got float"):
        fl.avg_pool2d_backward(g, x, 2, divisor_override=2.0)
    for bad in (0, -1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"norm_type must be a positive finite number"):
            fl.lp_pool2d(x, bad, 2)
    with pytest.raises(TypeError, match=r"norm_type must be a real number, got str"):
        fl.lp_pool2d_backward(g, x, "2", 2)
    with pytest.raises(ValueError, match=r"output_size must be non-negative, got \(-1, 0\)"):
        fl.adaptive_avg_pool2d(x, (-1, 0))
    empty = np.zeros((0, 1, 7, 6), np.float32)  # an empty batch does not make a 2**47-square output valid
    with pytest.raises(ValueError, match=r"output_size \(140737488355328, 140737488355328\) is too large"):
        fl.adaptive_max_pool2d(empty, (2**47, 2**47))
    with pytest.raises(ValueError, match=r"output_size must be an int or a pair"):
        fl.adaptive_max_pool2d(x, (2, 2, 2))
    with pytest.raises(TypeError, match=r"output_size must be an int or a pair, got None"):
        fl.adaptive_max_pool2d(x, None)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 3, 3\), got \(1, 2, 2, 2\)"):
        fl.max_pool2d_backward(device.put(np.ones((1, 2, 2, 2), np.float32)), x, 2)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 5, 5\)"):
        fl.avg_pool2d_backward(g, x, 2, 1)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 4, 4\)"):
        fl.adaptive_max_pool2d_backward(g, x, 4)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2\)"):
        fl.global_avg_pool2d_backward(g, x)
    with pytest.raises(ValueError, match=r"indices must have shape \(1, 2, 3, 3\)"):
        fl.max_pool2d_backward(g, x, 2, indices=device.put(np.zeros((1, 2, 3), np.int64)))
    with pytest.raises(TypeError, match="x"):
        fl.max_pool2d(device.put(np.ones((1, 1, 2, 2), np.complex64)), 2)
    if device.name == "cpu":  # the GPU kernels skip such indices without a host check (docs/ops.md)
        bad = np.zeros((1, 2, 3, 3), np.int64)
        bad[0, 0, 1, 1] = 100
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 36\).*1 out-of-range"):
            fl.max_pool2d_backward(g, x, 2, indices=bad)


def test_torch_style_sizes(device):
    # 1-element sequences and an empty stride, as PyTorch's own tests pass them
    x = device.put(np.arange(81, dtype=np.float32).reshape(1, 1, 9, 9))
    np.testing.assert_array_equal(device.get(fl.avg_pool2d(x, (3, 3), (), (1,), True, False, 2)),
                                  device.get(fl.avg_pool2d(x, 3, 3, 1, True, False, 2)))
    np.testing.assert_array_equal(device.get(fl.max_pool2d(x, (3,), [2], (1,), (2,))),
                                  device.get(fl.max_pool2d(x, 3, 2, 1, 2)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 20),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 4), sw=st.integers(1, 4),
       pad_h=st.integers(0, 2), pad_w=st.integers(0, 2), dh=st.integers(1, 3), dw=st.integers(1, 3),
       ceil=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_hypothesis_shapes(n, c, h, w, kh, kw, sh, sw, pad_h, pad_w, dh, dw, ceil, seed):
    ph, pw = min(pad_h, kh // 2), min(pad_w, kw // 2)
    if h + 2 * ph < dh * (kh - 1) + 1 or w + 2 * pw < dw * (kw - 1) + 1:
        return  # empty output: covered by test_bad_input
    x = np.random.default_rng(seed).integers(-2, 3, size=(n, c, h, w)).astype(np.float32)
    _check_max(Device("cpu"), x, (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil)
    if h + 2 * ph >= kh and w + 2 * pw >= kw:
        _check_avg_lp(Device("cpu"), x + 0.25, (kh, kw), (sh, sw), (ph, pw), ceil)


def test_float64_and_noncontiguous_input(device, rng):
    x = rng.standard_normal((2, 3, 10, 16))[:, :, :, ::2]  # float64, non-contiguous
    y = fl.max_pool2d(device.put(x), 2)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_array_equal(device.get(y), ref.max_pool2d(x.astype(np.float32), 2))
    assert_close(fl.avg_pool2d(device.put(x), 3, 1, 1), ref.avg_pool2d(x, 3, 1, 1), reduction_tol(9), "avg")
    _, idx = fl.max_pool2d(device.put(x), 2, return_indices=True)
    g = fl.max_pool2d_backward(device.put(np.ones((2, 3, 5, 4))), device.put(x), 2, indices=idx.astype(np.int32))
    np.testing.assert_array_equal(device.get(g), ref.max_pool2d_backward(np.ones((2, 3, 5, 4), np.float32),
                                                                         x.astype(np.float32), 2))


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (1, 4, 56, 56), (3, 16, 30, 30)])
def test_global_avg_pool(device, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape[:2]).astype(np.float32)
    tol = reduction_tol(shape[2] * shape[3])
    assert_close(fl.global_avg_pool2d(device.put(x)), ref.global_avg_pool2d(x.astype(np.float64)), tol, "gap")
    assert_close(fl.global_avg_pool2d_backward(device.put(g), device.put(x)),
                 ref.global_avg_pool2d_backward(g.astype(np.float64), x), reduction_tol(1), "gap backward")


def test_mixed_devices_rejected():
    cupy = pytest.importorskip("cupy", reason="CuPy not installed: cannot mix NumPy and CuPy arrays")
    if not fl.cuda.is_available():
        pytest.skip("no usable CUDA GPU: cannot make a CuPy array")
    x = np.ones((1, 1, 4, 4), np.float32)
    with pytest.raises(TypeError, match="different devices"):
        fl.max_pool2d_backward(cupy.ones((1, 1, 2, 2), cupy.float32), x, 2)
    with pytest.raises(TypeError, match="different devices"):
        fl.max_pool2d_backward(cupy.ones((1, 1, 2, 2), cupy.float32), cupy.asarray(x), 2,
                               indices=np.zeros((1, 1, 2, 2), np.int64))


@pytest.mark.parametrize("k,s,p,d", [(3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 1, 2), (2, 2, 1, 1), (5, 1, 2, 1)])
def test_windows_of_minus_inf_at_the_padding(device, isa, k, s, p, d):
    # Padded cells never win, even against a window of -inf: its first input cell does (the SIMD
    # argmax pads rows with -inf and must redo such windows).
    x = np.full((1, 2, 9, 40), -np.inf, np.float32)
    x[0, 1, 4, 17] = 1.0
    _check_max(device, x, k, s, p, d, False)
    _check_max(device, x, k, s, p, d, True)
