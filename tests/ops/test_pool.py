"""Pooling kernels against the NumPy reference (float64), every backend, and on the CPU both the
portable and the AVX2 paths of the 2x2 stride-2 fast kernels.

Tolerances: max pool is exact (it selects and routes values, in the reference's order);
avg and lp pool sum kh*kw terms: reduction_tol(kh*kw) (global average: reduction_tol(H*W))."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import _cpu
from fastlayers import reference as ref

from ..helpers import Device, assert_close, reduction_tol

# (x shape, kernel_size, stride, padding)
CASES = [
    ((2, 3, 8, 8), 2, None, 0),            # the common 2x2/2
    ((1, 2, 7, 37), 2, 2, 0),              # 2x2/2, odd H, ow = 18: SIMD body + tail, odd leftover col
    ((2, 2, 33, 50), 2, None, 0),          # 2x2/2, odd H, ow = 25
    ((1, 3, 4, 16), 2, None, 0),           # 2x2/2, ow = 8: exactly one SIMD step
    ((1, 1, 1, 1), 1, None, 0),            # 1x1 everything
    ((2, 3, 5, 6), 1, 1, 0),               # 1x1 window
    ((3, 2, 9, 9), 3, 2, 1),               # 3x3 stride 2 padding 1 (ResNet stem)
    ((1, 3, 10, 11), 3, 3, 0),             # stride 3, tiled, leftover rows/cols
    ((2, 2, 7, 7), 3, 1, 1),               # overlapping windows, padded
    ((1, 2, 6, 9), (2, 3), (1, 2), (1, 1)),  # non-square kernel and stride
    ((2, 1, 11, 5), (3, 2), (2, 3), (1, 0)),
    ((1, 2, 9, 8), (2, 2), (3, 3), 0),     # stride > kernel: gaps no window covers
    ((1, 1, 5, 13), (5, 4), (2, 4), (2, 2)),  # window as tall as the input with padding
    ((2, 8, 48, 48), 2, 2, 0),             # crosses the OpenMP grain
    ((2, 8, 48, 48), 3, 2, 1),
    ((3, 2, 8, 10), 2, None, 0),           # 2x2/2, ow = 5: the 4-wide SIMD step plus an overlapping one
    ((2, 3, 9, 15), 2, None, 0),           # ow = 7, odd H and W
    ((100 // 25, 64, 8, 8), 2, None, 0),   # LeNet's pool2 (ow = 4), several planes
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


def _check_all(device, x, k, s, p):
    """Every windowed op, forward and backward, against the float64 reference."""
    x64 = x.astype(np.float64)
    kh, kw = _k(k)
    tol = reduction_tol(kh * kw)
    dx = device.put(x)

    y = device.get(fl.max_pool2d(dx, k, s, p))
    np.testing.assert_array_equal(y, ref.max_pool2d(x, k, s, p))
    g = np.random.default_rng(7).standard_normal(y.shape).astype(np.float32)
    dg = device.put(g)
    np.testing.assert_array_equal(device.get(fl.max_pool2d_backward(dg, dx, k, s, p)),
                                  ref.max_pool2d_backward(g, x, k, s, p))
    for include in (True, False):
        assert_close(fl.avg_pool2d(dx, k, s, p, include), ref.avg_pool2d(x64, k, s, p, include), tol,
                     f"avg_pool2d include_pad={include}")
        assert_close(fl.avg_pool2d_backward(dg, dx, k, s, p, include),
                     ref.avg_pool2d_backward(g.astype(np.float64), x64, k, s, p, include), tol,
                     f"avg_pool2d_backward include_pad={include}")
    for pw in (1.0, 2.0, 3.5):
        assert_close(fl.lp_pool2d(dx, pw, k, s, p), ref.lp_pool2d(x64, pw, k, s, p), tol, f"lp_pool2d p={pw}")
        assert_close(fl.lp_pool2d_backward(dg, dx, pw, k, s, p),
                     ref.lp_pool2d_backward(g.astype(np.float64), x64, pw, k, s, p), tol,
                     f"lp_pool2d_backward p={pw}")


@pytest.mark.parametrize("shape,k,s,p", CASES)
def test_matches_reference(device, isa, rng, shape, k, s, p):
    _check_all(device, rng.standard_normal(shape).astype(np.float32), k, s, p)


@pytest.mark.parametrize("shape,k,s,p", CASES)
def test_max_pool_ties_go_to_first_max(device, isa, rng, shape, k, s, p):
    # Three distinct values: most windows hold tied maxima. The reference routes to the first one.
    x = rng.integers(0, 3, size=shape).astype(np.float32)
    g = rng.standard_normal(ref.max_pool2d(x, k, s, p).shape).astype(np.float32)
    np.testing.assert_array_equal(device.get(fl.max_pool2d(device.put(x), k, s, p)), ref.max_pool2d(x, k, s, p))
    np.testing.assert_array_equal(device.get(fl.max_pool2d_backward(device.put(g), device.put(x), k, s, p)),
                                  ref.max_pool2d_backward(g, x, k, s, p))


def test_max_pool_tie_example(device, isa):
    x = np.array([[[[1, 5, 5, 0], [5, 2, 0, 0]]]], dtype=np.float32)
    gi = device.get(fl.max_pool2d_backward(device.put(np.array([[[[3, 4]]]], np.float32)), device.put(x), 2))
    np.testing.assert_array_equal(gi, [[[[0, 3, 4, 0], [0, 0, 0, 0]]]])  # 2nd cell; then cell 0 of window 2


@pytest.mark.parametrize("shape,k,s,p", CASES[:3] + CASES[5:9] + CASES[-3:])
def test_max_pool_nan_and_inf(device, isa, rng, shape, k, s, p):
    # NaN wins its window (forward NaN, gradient to the last NaN); -inf windows route to the first cell.
    x = rng.integers(0, 3, size=shape).astype(np.float32)
    x[rng.random(shape) < 0.1] = np.nan
    x[rng.random(shape) < 0.1] = -np.inf
    x[rng.random(shape) < 0.05] = np.inf
    y = device.get(fl.max_pool2d(device.put(x), k, s, p))
    expected = ref.max_pool2d(x, k, s, p)
    np.testing.assert_array_equal(y, expected)  # equal_nan: NaN positions must match
    assert np.isnan(expected).any()
    g = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(device.get(fl.max_pool2d_backward(device.put(g), device.put(x), k, s, p)),
                                  ref.max_pool2d_backward(g, x, k, s, p))


def test_max_pool_nan_example(device, isa):
    # One 2x2 window per case, repeated 9 times along W so the SIMD body (8 outputs) sees it too,
    # and 5 times for the 4-wide path.
    for window, first in [([1, np.nan, np.nan, 9], 2), ([np.nan, 2, 3, 4], 0), ([np.nan, 2, np.nan, 4], 2), ([4, 2, 3, np.nan], 3),
                          ([-np.inf] * 4, 0)]:
        for reps in (9, 5):
            w = np.array(window, np.float32).reshape(2, 2)
            x = np.tile(w, (1, reps))[None, None]
            y = device.get(fl.max_pool2d(device.put(x), 2))
            np.testing.assert_array_equal(y, np.full((1, 1, 1, reps), w.flat[first], np.float32))  # NaN == NaN here
            gi = device.get(fl.max_pool2d_backward(device.put(np.ones((1, 1, 1, reps), np.float32)), device.put(x), 2))
            expected = np.zeros((2, 2), np.float32)
            expected.flat[first] = 1
            np.testing.assert_array_equal(gi[0, 0], np.tile(expected, (1, reps)))


def test_avg_and_lp_propagate_nan(device, isa):
    x = np.ones((1, 1, 2, 18), np.float32)
    x[0, 0, 1, 5] = np.nan
    for y in (fl.avg_pool2d(device.put(x), 2), fl.lp_pool2d(device.put(x), 2.0, 2)):
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


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (1, 4, 56, 56), (3, 16, 30, 30)])
def test_global_avg_pool(device, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape[:2]).astype(np.float32)
    tol = reduction_tol(shape[2] * shape[3])
    assert_close(fl.global_avg_pool2d(device.put(x)), ref.global_avg_pool2d(x.astype(np.float64)), tol, "gap")
    assert_close(fl.global_avg_pool2d_backward(device.put(g), device.put(x)),
                 ref.global_avg_pool2d_backward(g.astype(np.float64), x), reduction_tol(1), "gap backward")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 20),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 4), sw=st.integers(1, 4),
       pad_h=st.integers(0, 2), pad_w=st.integers(0, 2), seed=st.integers(0, 2**31 - 1))
def test_hypothesis_shapes(n, c, h, w, kh, kw, sh, sw, pad_h, pad_w, seed):
    ph, pw = min(pad_h, kh // 2), min(pad_w, kw // 2)
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return  # empty output: covered by test_bad_input
    x = np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)
    _check_all(Device("cpu"), x, (kh, kw), (sh, sw), (ph, pw))


def test_float64_and_noncontiguous_input(device, rng):
    x = rng.standard_normal((2, 3, 10, 16))[:, :, :, ::2]  # float64, non-contiguous
    y = fl.max_pool2d(device.put(x), 2)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_array_equal(device.get(y), ref.max_pool2d(x.astype(np.float32), 2))
    assert_close(fl.avg_pool2d(device.put(x), 3, 1, 1), ref.avg_pool2d(x, 3, 1, 1), reduction_tol(9), "avg")


def test_inputs_not_modified(device, rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    g = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    gg = rng.standard_normal((2, 3)).astype(np.float32)
    x0, g0, gg0 = x.copy(), g.copy(), gg.copy()
    dx, dg, dgg = device.put(x), device.put(g), device.put(gg)
    for k, s, p in [(2, 2, 0), (3, 2, 1)]:
        fl.max_pool2d(dx, k, s, p), fl.max_pool2d_backward(dg, dx, k, s, p)
        fl.avg_pool2d(dx, k, s, p), fl.avg_pool2d_backward(dg, dx, k, s, p, False)
        fl.lp_pool2d(dx, 2.0, k, s, p), fl.lp_pool2d_backward(dg, dx, 2.0, k, s, p)
    fl.global_avg_pool2d(dx), fl.global_avg_pool2d_backward(dgg, dx)
    np.testing.assert_array_equal(device.get(dx), x0)
    np.testing.assert_array_equal(device.get(dg), g0)
    np.testing.assert_array_equal(device.get(dgg), gg0)


def test_empty_batch(device):
    x = np.zeros((0, 3, 4, 4), np.float32)
    assert fl.max_pool2d(device.put(x), 2).shape == (0, 3, 2, 2)
    assert fl.avg_pool2d_backward(device.put(np.zeros((0, 3, 2, 2), np.float32)), device.put(x), 2).shape == x.shape
    assert fl.global_avg_pool2d(device.put(x)).shape == (0, 3)


def test_bad_input(device):
    x = device.put(np.ones((1, 2, 6, 6), np.float32))
    g = device.put(np.ones((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"x must be 4-D.*\(6, 6\)"):
        fl.max_pool2d(device.put(np.ones((6, 6), np.float32)), 2)
    with pytest.raises(ValueError, match=r"x must be 4-D"):
        fl.global_avg_pool2d(device.put(np.ones((2, 6, 6), np.float32)))
    with pytest.raises(ValueError, match=r"kernel_size must be positive.*0"):
        fl.max_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"kernel_size must be positive"):
        fl.avg_pool2d(x, (2, -1))
    with pytest.raises(ValueError, match=r"stride must be positive.*0"):
        fl.avg_pool2d(x, 2, 0)
    with pytest.raises(ValueError, match=r"padding must be non-negative.*-1"):
        fl.max_pool2d(x, 2, 2, -1)
    with pytest.raises(ValueError, match=r"padding must be at most half.*\(1, 1\).*\(2, 2\)"):
        fl.max_pool2d(x, 3, 1, 2)
    with pytest.raises(ValueError, match=r"padding must be at most half.*\(1, 0\)"):
        fl.lp_pool2d(x, 2.0, (2, 1), 1, (0, 1))
    with pytest.raises(ValueError, match=r"kernel_size \(7, 7\) is larger than the padded input \(6, 6\)"):
        fl.max_pool2d(x, 7)
    with pytest.raises(ValueError, match=r"kernel_size \(3, 9\) is larger than the padded input \(8, 8\)"):
        fl.avg_pool2d_backward(g, x, (3, 9), 1, 1)
    with pytest.raises(TypeError, match=r"kernel_size must be an int, got float 2.0"):
        fl.max_pool2d(x, 2.0)
    with pytest.raises(TypeError, match=r"stride must be an int, got str"):
        fl.max_pool2d(x, 2, "2")
    with pytest.raises(ValueError, match=r"padding must be an int or a pair"):
        fl.max_pool2d(x, 2, 2, (0, 0, 0))
    with pytest.raises(TypeError, match=r"count_include_pad must be a bool, got int"):
        fl.avg_pool2d(x, 2, count_include_pad=1)
    for bad in (0, -1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"p must be a positive finite number"):
            fl.lp_pool2d(x, bad, 2)
    with pytest.raises(TypeError, match=r"p must be a real number, got str"):
        fl.lp_pool2d_backward(g, x, "2", 2)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 3, 3\), got \(1, 2, 2, 2\)"):
        fl.max_pool2d_backward(device.put(np.ones((1, 2, 2, 2), np.float32)), x, 2)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 5, 5\)"):
        fl.avg_pool2d_backward(g, x, 2, 1)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2\)"):
        fl.global_avg_pool2d_backward(g, x)
    with pytest.raises(TypeError, match="x"):
        fl.max_pool2d(device.put(np.ones((1, 1, 2, 2), np.complex64)), 2)


def test_mixed_devices_rejected():
    cupy = pytest.importorskip("cupy", reason="CuPy not installed: cannot mix NumPy and CuPy arrays")
    if not fl.cuda.is_available():
        pytest.skip("no usable CUDA GPU: cannot make a CuPy array")
    x = np.ones((1, 1, 4, 4), np.float32)
    with pytest.raises(TypeError, match="different devices"):
        fl.max_pool2d_backward(cupy.ones((1, 1, 2, 2), cupy.float32), x, 2)
