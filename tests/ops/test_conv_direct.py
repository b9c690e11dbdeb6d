"""The direct pixel-vectorised conv path (csrc/cpu/conv_direct.*): forward (any stride, dilation,
groups, padding), stride-1 backward-data and 3x3 backward-weight (groups 1), against the float64 reference with test_conv.py's
tolerances (reduction_tol of the reduction length; not widened), under every ISA this CPU has
(AVX-512 and AVX2 kernels; generic: the path is off and the others run).

By default conv.cpp takes this path only where it measured faster (3x3 on small images);
FASTLAYERS_CONV_DIRECT=1 (read by the kernel on every call) sends every eligible shape there, so
these shapes reach it, and =0 keeps it off (the comparison below checks both give the same answer).
"""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, env_modes, num_threads, reduction_tol
from .test_conv import _case_data, _check_all


@pytest.fixture(autouse=True)
def _newer_paths_off(monkeypatch):
    # conv_winograd_c16 and conv_pixels (tests/ops/test_conv_winograd_c16.py, test_conv_pixels.py)
    # would take some of these shapes first: off here, so that they reach the path this file tests.
    monkeypatch.setenv("FASTLAYERS_CONV_WINO16", "0")
    monkeypatch.setenv("FASTLAYERS_CONV_PIXELS", "0")


@pytest.fixture
def direct(monkeypatch):
    monkeypatch.setenv("FASTLAYERS_CONV_DIRECT", "1")


# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CASES = [
    (1, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1),         # the small ResNet's last stage at batch 1
    (2, 5, 9, 7, 11, 3, 3, 1, 1, 1, 1),          # odd sizes, K not a multiple of the 8/4-row tile
    (3, 16, 13, 17, 24, 3, 3, 2, 1, 1, 1),       # stride 2: phase planes, non-square
    (1, 3, 20, 19, 8, 5, 5, 2, 2, 1, 1),         # 5x5 stride 2
    (2, 8, 11, 10, 16, 3, 3, 1, 0, 1, 1),        # no padding
    (1, 8, 12, 12, 8, 3, 3, 1, 2, 2, 1),         # dilation 2
    (2, 8, 9, 9, 8, 3, 3, 1, 1, 1, 2),           # groups 2
    (1, 3, 33, 31, 10, 11, 11, 4, 2, 1, 1),      # 11x11 stride 4 (layer e's geometry, small)
    (4, 32, 14, 14, 64, 1, 1, 2, 0, 1, 1),       # 1x1 stride 2 (the ResNet projection)
    (1, 17, 7, 9, 33, 3, 3, 1, (1, 2), 1, 1),    # asymmetric padding
    (2, 4, 6, 5, 9, 2, 3, 3, 1, 1, 1),           # stride 3, 2x3 kernel
    (1, 2, 3, 3, 3, 3, 3, 1, 0, 1, 1),           # 1x1 output
    (2, 16, 40, 37, 20, 3, 3, 1, 1, 1, 1),       # many blocks per image (grid 40 x 39)
    (3, 32, 14, 14, 32, 3, 3, 1, 1, 1, 1),       # a 14x14 stage, several images
]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_direct_matches_reference(device, rng, isa, direct, case):
    x, w, b, params = _case_data(rng, case)
    _check_all(device, x, w, b, params, rng, f"{case} {isa}")
    y = fl.conv2d(device.put(x), device.put(w), None, **params)  # no bias
    f64 = [a.astype(np.float64) for a in (x, w)]
    assert_close(y, ref.conv2d(*f64, None, **params), reduction_tol(w.shape[1] * w.shape[2] * w.shape[3]),
                 f"{case} no bias")


@pytest.mark.parametrize("threads", [1, 2])
def test_direct_threads(device, rng, direct, threads):
    # Over images (N >= threads) and inside one image (N = 1, enough work to split).
    with num_threads(threads):
        for case in [(1, 32, 30, 29, 40, 3, 3, 1, 1, 1, 1), (5, 18, 9, 14, 17, 3, 3, 2, 1, 1, 1),
                     (3, 24, 21, 22, 16, 3, 3, 1, 1, 1, 1)]:
            x, w, b, params = _case_data(rng, case)
            _check_all(device, x, w, b, params, rng, f"{case} threads={threads}")


def test_direct_matches_other_paths(rng, monkeypatch):
    # The default rule, the direct path forced on and forced off agree within the tolerance.
    case = (2, 32, 14, 14, 32, 3, 3, 1, 1, 1, 1)
    x, w, b, params = _case_data(rng, case)
    out = {}
    for mode in env_modes(monkeypatch, "FASTLAYERS_CONV_DIRECT"):
        g = np.ones((2, 32, 14, 14), np.float32)
        out[mode] = (fl.conv2d(x, w, b, **params), fl.conv2d_backward(g, x, w, **params)[0])
    tol = reduction_tol(32 * 9)
    for mode in ("1", None):
        assert_close(out[mode][0], out["0"][0], tol, f"forward {mode}")
        assert_close(out[mode][1], out["0"][1], tol, f"grad_x {mode}")


def test_direct_nonfinite(rng, direct):
    # A NaN or inf reaches exactly the outputs whose window holds it (no Winograd-style spreading).
    x = rng.standard_normal((1, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    x[0, 3, 4, 4] = np.nan
    x[0, 5, 0, 8] = np.inf
    y = fl.conv2d(x, w, None, padding=1)
    expect = ref.conv2d(x.astype(np.float64), w.astype(np.float64), None, padding=1)
    assert np.array_equal(np.isnan(y), np.isnan(expect))
    finite = np.isfinite(expect)
    assert_close(np.where(finite, y, 0), np.where(finite, expect, 0), reduction_tol(72), "finite part")
