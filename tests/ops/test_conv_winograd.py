"""The Winograd path of conv2d (csrc/cpu/conv_winograd.*): 3x3, stride 1, dilation 1, forward,
backward-data and backward-weight, against the float64 reference with test_conv.py's tolerances (reduction_tol of the
reduction length; not widened).

By default the kernels take Winograd only for sizes where it measured faster (the pass reduces over
>= 16 channels per group: C forward, K backward-data); FASTLAYERS_CONV_WINOGRAD=1 (read by the kernel on every call) sends every eligible shape
there, so these small shapes reach it. F(4x4, 3x3) runs when the pass reduces over >= 16 channels
per group, F(2x2, 3x3) below that (F(4x4)'s rounding error exceeded the tolerance for 1-2
channels): the cases cover both. Backward-weight always runs F(4x4, 3x3) (its reduction is over
tiles, not channels); the shared cases below check it with the same tolerance as the GEMM path,
reduction_tol(N*P*Q).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import Device, assert_close, env_modes, num_threads, reduction_tol
from .test_conv import _case_data, _check_all


@pytest.fixture(autouse=True)
def _newer_paths_off(monkeypatch):
    # conv_winograd_c16 and conv_pixels (tests/ops/test_conv_winograd_c16.py, test_conv_pixels.py)
    # would take some of these shapes first: off here, so that they reach the path this file tests.
    monkeypatch.setenv("FASTLAYERS_CONV_WINO16", "0")
    monkeypatch.setenv("FASTLAYERS_CONV_PIXELS", "0")


@pytest.fixture
def winograd(monkeypatch):
    monkeypatch.setenv("FASTLAYERS_CONV_WINOGRAD", "1")


def _ws_floats(case, pass_, threads=1):
    from fastlayers import _cpu
    from fastlayers.ops import conv as conv_ops

    N, C, H, W, K, R, S, stride, padding, dilation, groups = case
    x = np.empty((N, C, H, W), np.float32)
    w = np.empty((K, C // groups, R, S), np.float32)
    shape = conv_ops._geometry(x, w, stride, padding, dilation, groups)
    return int(_cpu.conv2d_workspace_floats(shape, pass_, threads))


# (N, C, H, W, K, R, S, stride, padding, dilation, groups); comments: tile size forward / backward-data
CASES = [
    (2, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1),          # odd H/W, partial tiles; F2 / F2
    (1, 5, 8, 8, 7, 3, 3, 1, 0, 1, 1),          # batch 1, no padding (backward-data padding 2)
    (2, 17, 11, 13, 19, 3, 3, 1, 2, 1, 1),      # padding 2, C/K not multiples of 16; F4 / F4
    (1, 20, 9, 10, 6, 3, 3, 1, (1, 2), 1, 1),   # asymmetric padding; F4 / F2
    (2, 6, 10, 9, 24, 3, 3, 1, (2, 0), 1, 1),   # F2 / F4
    (2, 32, 10, 9, 36, 3, 3, 1, 1, 1, 2),       # groups 2 (16 and 18 per group); F4 / F4
    (2, 5, 7, 8, 5, 3, 3, 1, 1, 1, 5),          # depthwise
    (3, 24, 30, 29, 20, 3, 3, 1, 1, 1, 1),      # 3 x 8 x 8 tiles: several blocks, across images
    (1, 3, 1, 1, 2, 3, 3, 1, 1, 1, 1),          # 1x1 image, 1x1 output
    (2, 16, 3, 3, 16, 3, 3, 1, 0, 1, 1),        # 1x1 output, no padding
    (1, 4, 6, 6, 3, 3, 3, 1, 3, 1, 1),          # padding 3: forward and backward-weight (backward-data: GEMM path)
    (5, 9, 21, 19, 11, 3, 3, 1, 1, 1, 1),       # backward-weight: 5 x 6 x 5 tiles, several blocks of 64
]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_winograd_matches_reference(device, rng, winograd, case):
    x, w, b, params = _case_data(rng, case)
    _check_all(device, x, w, b, params, rng, str(case))
    y = fl.conv2d(device.put(x), device.put(w), None, **params)  # no bias
    f64 = [a.astype(np.float64) for a in (x, w)]
    assert_close(y, ref.conv2d(*f64, None, **params), reduction_tol(w.shape[1] * 9), f"{case} no bias")


@pytest.mark.parametrize("threads", [1, 2])
def test_winograd_threads(device, rng, winograd, threads):
    # Blocks of tiles split over the threads (one workspace slice each); N = 1 still splits.
    with num_threads(threads):
        for case in [(1, 24, 33, 31, 20, 3, 3, 1, 1, 1, 1), (5, 18, 9, 14, 17, 3, 3, 1, 0, 1, 1)]:
            x, w, b, params = _case_data(rng, case)
            _check_all(device, x, w, b, params, rng, f"{case} threads={threads}")


def test_winograd_is_taken(monkeypatch):
    """The predicate: eligible shapes get Winograd's workspace (forced, and by default at >= 16
    reduced channels per group); others, and FASTLAYERS_CONV_WINOGRAD=0, keep the GEMM path's."""
    big = (2, 64, 12, 12, 64, 3, 3, 1, 1, 1, 1)
    small = (2, 8, 12, 12, 8, 3, 3, 1, 1, 1, 1)
    strided = (2, 64, 12, 12, 64, 3, 3, 2, 1, 1, 1)
    # (Shapes whose Winograd workspace exceeds the GEMM path's, so the size tells the path.)
    bw = (2, 128, 32, 32, 128, 3, 3, 1, 1, 1, 1)      # 2 x 8 x 8 = 128 4x4 tiles
    bw_few = (2, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1)  # 98 tiles
    bw_thin = (2, 32, 32, 32, 128, 3, 3, 1, 1, 1, 1)  # 32 input channels
    sizes = {}
    for mode in env_modes(monkeypatch, "FASTLAYERS_CONV_WINOGRAD"):
        sizes[mode] = {name: [_ws_floats(c, p) for p in (0, 1, 2)]
                       for name, c in (("big", big), ("small", small), ("strided", strided), ("bw", bw),
                                       ("bw_few", bw_few), ("bw_thin", bw_thin))}
    assert sizes["1"]["big"][:2] != sizes["0"]["big"][:2]
    assert sizes[None]["big"][:2] == sizes["1"]["big"][:2]  # by default for 64 channels
    # Backward-weight by default with >= 48 channels on both sides and >= 128 tiles only.
    assert sizes[None]["big"][2] == sizes["0"]["big"][2] != sizes["1"]["big"][2]
    assert sizes[None]["bw"][2] == sizes["1"]["bw"][2] != sizes["0"]["bw"][2]
    for name in ("bw_few", "bw_thin"):
        assert sizes[None][name][2] == sizes["0"][name][2] != sizes["1"][name][2]
    assert sizes[None]["small"] == sizes["0"]["small"]    # not for 8
    assert sizes["1"]["small"][:2] != sizes["0"]["small"][:2]
    assert sizes["1"]["strided"] == sizes["0"]["strided"]  # stride 2: never
    assert sizes["1"]["big"][2] != sizes["0"]["big"][2]    # backward-weight too
    assert sizes["1"]["strided"][2] == sizes["0"]["strided"][2]


@pytest.mark.parametrize("pad", [0, 1, 2])
def test_winograd_propagates_nan(device, winograd, pad):
    """A NaN or inf in x makes exactly the outputs that depend on it non-finite (forward), and a NaN
    in grad_out exactly the grad_x elements that depend on it. Winograd would spread it to the rest
    of the output tile whose input patch holds it, so such inputs take the GEMM path."""
    rng = np.random.default_rng(0)
    for C in (3, 20):  # F(2x2) and F(4x4)
        x = rng.standard_normal((1, C, 14, 13)).astype(np.float32)
        w = rng.standard_normal((C, C, 3, 3)).astype(np.float32)
        for bad in (np.nan, np.inf):
            xb = x.copy()
            xb[0, 1, 6, 7] = bad
            y = device.get(fl.conv2d(device.put(xb), device.put(w), padding=pad))
            hit = ref.conv2d(np.isfinite(xb) == 0, np.ones_like(w, dtype=np.float64), padding=pad) > 0
            np.testing.assert_array_equal(~np.isfinite(y), hit)
        wb = w.copy()
        wb[2, 1, 0, 0] = np.nan  # a NaN weight: exactly output channel 2
        y = device.get(fl.conv2d(device.put(x), device.put(wb), padding=pad))
        assert np.isnan(y[:, 2]).all() and np.isfinite(np.delete(y, 2, axis=1)).all()
        x[0, 1, 6, 7] = np.nan
        g = rng.standard_normal(y.shape).astype(np.float32)
        g[0, 2, 3, 4] = np.nan
        gx, _, _ = fl.conv2d_backward(device.put(g), device.put(np.nan_to_num(x)), device.put(w), padding=pad)
        gx = device.get(gx)
        hit_x = ref.conv2d_backward(np.isnan(g).astype(np.float64), np.zeros(x.shape), np.ones_like(w, dtype=np.float64),
                                    padding=pad)[0] > 0
        np.testing.assert_array_equal(np.isnan(gx), hit_x)


def test_winograd_backward_weight_same_bits_any_threads(winograd, rng):
    """Backward-weight's threads share one accumulator per Winograd position, each GEMM a fixed call
    on one thread, so grad_w has the same bits for 1, 2 and 3 threads."""
    for case in [(3, 24, 30, 29, 20, 3, 3, 1, 1, 1, 1), (2, 32, 10, 9, 36, 3, 3, 1, 1, 1, 2)]:
        x, w, b, params = _case_data(rng, case)
        g = rng.standard_normal(ref.conv2d(x, w, None, **params).shape).astype(np.float32)
        out = []
        for threads in (1, 2, 3):
            with num_threads(threads):
                out.append(fl.conv2d_backward(g, x, w, **params)[1])
        np.testing.assert_array_equal(out[0], out[1])
        np.testing.assert_array_equal(out[0], out[2])
        rw = ref.conv2d_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), **params)[1]
        N, _, P, Q = g.shape
        assert_close(out[0], rw, reduction_tol(N * P * Q), f"{case} grad_w")


@pytest.mark.parametrize("pad", [0, 1, 2])
@pytest.mark.parametrize("where", ["x", "grad_out"])
def test_winograd_backward_weight_non_finite(device, winograd, pad, where):
    """A NaN or inf in x or grad_out gives grad_w exactly the reference's non-finite pattern (the
    guard sends such inputs to the GEMM path; Winograd would spread it over whole positions)."""
    rng = np.random.default_rng(1)
    for C in (3, 20):
        x = rng.standard_normal((2, C, 14, 13)).astype(np.float32)
        w = rng.standard_normal((C + 1, C, 3, 3)).astype(np.float32)
        g = rng.standard_normal(ref.conv2d(x, w, None, padding=pad).shape).astype(np.float32)
        for bad in (np.nan, np.inf, -np.inf):
            xb, gb_ = x.copy(), g.copy()
            if where == "x":
                xb[1, 1, 0, 7] = bad  # on the top edge: only some taps see it
            else:
                gb_[0, 2, 3, 4] = bad
            _, gw, _ = fl.conv2d_backward(device.put(gb_), device.put(xb), device.put(w), padding=pad)
            gw = device.get(gw)
            with np.errstate(invalid="ignore"):
                rw = ref.conv2d_backward(gb_.astype(np.float64), xb.astype(np.float64), w.astype(np.float64),
                                         padding=pad)[1]
            np.testing.assert_array_equal(np.isfinite(gw), np.isfinite(rw), f"{where}={bad} C={C} pad={pad}")
            np.testing.assert_array_equal(np.isnan(gw), np.isnan(rw), f"{where}={bad} C={C} pad={pad}")
            assert 0 < (~np.isfinite(rw)).sum() < rw.size


@st.composite
def winograd_cases(draw):
    groups = draw(st.integers(1, 2))
    C = groups * draw(st.sampled_from([1, 2, 5, 16, 17]))
    K = groups * draw(st.sampled_from([1, 3, 16, 18]))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = max(1, 3 - 2 * ph) + draw(st.integers(0, 9))
    W = max(1, 3 - 2 * pw) + draw(st.integers(0, 9))
    N = draw(st.integers(1, 3))
    return (N, C, H, W, K, 3, 3, 1, (ph, pw), 1, groups)


@settings(max_examples=30, deadline=None)
@given(case=winograd_cases(), seed=st.integers(0, 2**31 - 1))
def test_winograd_hypothesis(case, seed):
    import os

    rng = np.random.default_rng(seed)
    x, w, b, params = _case_data(rng, case)
    old = os.environ.get("FASTLAYERS_CONV_WINOGRAD")
    os.environ["FASTLAYERS_CONV_WINOGRAD"] = "1"
    try:
        _check_all(Device("cpu"), x, w, b, params, rng, str(case))
    finally:
        if old is None:
            del os.environ["FASTLAYERS_CONV_WINOGRAD"]
        else:
            os.environ["FASTLAYERS_CONV_WINOGRAD"] = old
