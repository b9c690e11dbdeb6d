"""conv2d's channels-in-lanes Winograd (csrc/cpu/conv_winograd_c16*: AVX-512 and AVX2 kernels, each
test run on every one this CPU has, set with set_max_isa): F(4x4, 3x3)
and F(4x4, 5x5), stride 1, one group, channels multiples of 16; the forward, backward-data as the
forward of grad_out with the filters transposed and flipped or - for valid layers, grad_x larger
than grad_out - as the forward's adjoint in x (patches added where they overlap), and
backward-weight (its adjoint in the filters, tiles summed in blocks that run across images; inputs
holding a NaN or inf take the other paths). Against the float64 reference with
test_conv.py's tolerances (not widened).

FASTLAYERS_CONV_WINO16=1 (read per call) sends every shape it can run there, so small shapes reach
it; by default it takes up to 128 x 128 channels from 1024 output pixels per call
(test_wino16_is_taken). The inference plan's use of the same kernel is tested in
tests/nn/test_plan.py.
"""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import Device, assert_close, assert_nonfinite_in_place, env_modes, num_threads, reduction_tol
from .test_conv import _case_data, _check_all, _workspace_floats

# Every test once per vector ISA the kernels have (conftest.simd_isa; the generic ISA keeps
# conv2d's other paths, tested in test_conv*.py).
pytestmark = pytest.mark.usefixtures("simd_isa")


@pytest.fixture
def wino16(monkeypatch):
    monkeypatch.setenv("FASTLAYERS_CONV_WINO16", "1")


# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CASES = [
    (2, 16, 7, 9, 16, 3, 3, 1, 1, 1, 1),        # odd sizes: partial tiles at both edges
    (1, 32, 8, 8, 16, 3, 3, 1, 0, 1, 1),        # no padding (backward-data: the adjoint, 8x8 from 6x6)
    (1, 16, 48, 48, 16, 3, 3, 1, 0, 1, 1),      # no padding, 48x48 from 46x46: backward-data padding 2
    (2, 16, 11, 13, 48, 3, 3, 1, 2, 1, 1),      # padding 2 (backward-data: padding 0), 3 vectors of K
    (1, 16, 9, 20, 32, 3, 3, 1, (1, 0), 1, 1),  # asymmetric padding, rows of two 16-pixel transposes
    (3, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1),        # the small ResNet's last stage
    (2, 32, 12, 12, 64, 5, 5, 1, 0, 1, 1),      # the course CNN's conv2: F(4x4, 5x5) (backward-data: the adjoint)
    (1, 16, 40, 37, 16, 5, 5, 1, 2, 1, 1),      # 5x5 over several tile blocks per image (100 tiles, 48 per block)
    (13, 16, 12, 12, 16, 5, 5, 1, 0, 1, 1),     # backward-weight's blocks across images: 52 tiles, 48 per block
    (1, 16, 10, 11, 16, 5, 5, 1, 2, 1, 1),      # 5x5 "same"
    (1, 80, 30, 30, 48, 3, 3, 1, 1, 1, 1),      # several tile blocks per image, C not a power of 2
    (1, 48, 27, 25, 32, 3, 3, 1, 0, 1, 1),      # backward-data's adjoint over several tile blocks, partial tiles
    (2, 16, 13, 10, 48, 5, 5, 1, 1, 1, 1),      # the adjoint with padding 1 (cropped), partial tiles
]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_wino16_matches_reference(rng, wino16, case):
    x, w, b, params = _case_data(rng, case)
    _check_all(Device("cpu"), x, w, b, params, rng, str(case))


@pytest.mark.parametrize("threads", [2, 3])
def test_wino16_threads(rng, wino16, threads):
    # Images over the threads (N >= threads), and one image's tiles split over the team (N = 1).
    with num_threads(threads):
        # The last two: backward-data's adjoint, whole images per thread (5 over 2 or 3 threads; 1 image).
        for case in [(1, 16, 21, 19, 32, 3, 3, 1, 1, 1, 1), (5, 32, 9, 14, 16, 5, 5, 1, 2, 1, 1),
                     (5, 32, 12, 12, 16, 5, 5, 1, 0, 1, 1), (1, 16, 14, 14, 32, 3, 3, 1, 0, 1, 1)]:
            x, w, b, params = _case_data(rng, case)
            _check_all(Device("cpu"), x, w, b, params, rng, f"{case} threads={threads}")


def test_wino16_keeps_nan_and_inf_in_place(wino16):
    # The kernel's per-image check sends an image holding a NaN or inf to the direct sum: NaN only
    # where the reference has it (a 4x4 tile would otherwise spread it).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    x[1, 2, 4, 7] = np.nan
    x[0, 5, 11, 0] = np.inf
    for threads in (1, 2):
        with num_threads(threads):
            y = fl.conv2d(x, w, None, padding=1)
            gx, _, _ = fl.conv2d_backward(x, x[:, :16], w, padding=1)  # grad_out = x: NaN and inf again
        expect = ref.conv2d(x.astype(np.float64), w.astype(np.float64), None, padding=1)
        assert_nonfinite_in_place(y, expect, reduction_tol(16 * 9), "outputs")
        rgx, _, _ = ref.conv2d_backward(x.astype(np.float64), x.astype(np.float64), w.astype(np.float64), padding=1)
        np.testing.assert_array_equal(np.isnan(gx), np.isnan(rgx))


def test_wino16_adjoint_leaves_nan_and_inf_to_other_paths(wino16):
    # Backward-data's adjoint mixes a whole 2x2 tile of grad_out into a 6x6 patch of grad_x, so a
    # NaN or inf in grad_out (or w) sends the call to the other paths: NaN only where the reference has it.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 32, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 32, 5, 5)).astype(np.float32)
    go = rng.standard_normal((2, 16, 8, 8)).astype(np.float32)
    go[1, 3, 2, 5] = np.nan
    go[0, 7, 7, 0] = np.inf
    for threads in (1, 2):
        with num_threads(threads):
            gx, _, _ = fl.conv2d_backward(go, x, w)
        rgx, _, _ = ref.conv2d_backward(go.astype(np.float64), x.astype(np.float64), w.astype(np.float64))
        assert np.isfinite(rgx).any() and not np.isfinite(rgx).all()
        assert_nonfinite_in_place(gx, rgx, reduction_tol(16 * 25), "grad_x", inf=False)


# Strided layers on the Winograd through a space-to-depth copy (conv.cpp, s2d_shape): stride st,
# R and S up to 3 st, C st^2 and K multiples of 16. (N, C, H, W, K, R, S, stride, padding, ...)
S2D_CASES = [
    (2, 3, 37, 41, 16, 11, 11, 4, 2, 1, 1),     # conv e's kind (AlexNet's stem), odd sizes
    (2, 4, 20, 18, 32, 5, 5, 2, 1, 1, 1),       # 5x5 stride 2: one zero tap row and column per block
    (1, 16, 23, 19, 16, 6, 5, 2, (2, 1), 1, 1),  # non-square filters and padding
    (3, 16, 25, 25, 16, 9, 9, 3, 0, 1, 1),      # stride 3
    (18, 4, 12, 13, 16, 5, 5, 2, 1, 1, 1),      # 18 images: the copy in chunks of 16 and 2
]


@pytest.mark.parametrize("case", S2D_CASES, ids=[str(c) for c in S2D_CASES])
def test_wino16_space_to_depth_matches_reference(rng, wino16, case):
    x, w, b, params = _case_data(rng, case)
    _check_all(Device("cpu"), x, w, b, params, rng, str(case))


def test_wino16_space_to_depth_leaves_nan_to_other_paths(wino16):
    # 11x11 stride 4 on 20 columns reads columns 0..18; the space-to-depth copy also holds column
    # 19, under zero taps. A NaN there must reach no output, and one that is read only its windows.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)
    w = rng.standard_normal((16, 3, 11, 11)).astype(np.float32)
    x[0, 1, 5, 19] = np.nan
    x[1, 0, 2, 2] = np.nan
    expect = ref.conv2d(x.astype(np.float64), w.astype(np.float64), None, stride=4)
    assert not np.isnan(expect[0]).any() and np.isnan(expect[1]).any()
    for threads in (1, 2):
        with num_threads(threads):
            y = fl.conv2d(x, w, None, stride=4)
        assert_nonfinite_in_place(y, expect, reduction_tol(3 * 121), "outputs", inf=False)


def test_wino16_space_to_depth_is_taken_by_default(monkeypatch, rng):
    """conv e's kind (11x11 stride 4) by default: the bits of the forced run, and not those of the
    other paths (the workspace cannot tell: the GEMM path's room may be larger)."""
    x = rng.standard_normal((4, 3, 67, 67)).astype(np.float32)  # 4 x 16 x 16 outputs: the 1024 wino16_per_call asks
    w = rng.standard_normal((16, 3, 11, 11)).astype(np.float32)
    y = {}
    for mode in env_modes(monkeypatch, "FASTLAYERS_CONV_WINO16"):
        y[mode] = fl.conv2d(x, w, None, stride=4, padding=2)
    np.testing.assert_array_equal(y[None], y["1"])
    assert not np.array_equal(y[None], y["0"])


def test_wino16_is_taken(monkeypatch):
    """The predicate, told by the workspace size (its transformed filters, 36 C K floats, exceed the
    other paths' room for these shapes): forced on, by default from 1024 output pixels up to 128 x
    128 channels, never for other shapes or with FASTLAYERS_CONV_WINO16=0."""
    shapes = {
        "small_resnet": (64, 16, 28, 28, 16, 3, 3, 1, 1, 1, 1),  # 50176 output pixels
        # 5x5 (conv_winograd.h's per-call Winograd, whose room is as large, is 3x3 only):
        "valid": (16, 32, 12, 12, 64, 5, 5, 1, 0, 1, 1),         # backward-data: the adjoint, 1024 output pixels
        "few_pixels": (1, 128, 6, 6, 128, 5, 5, 1, 2, 1, 1),     # 36 output pixels
        "wide": (8, 256, 14, 14, 256, 5, 5, 1, 2, 1, 1),         # 256 x 256 channels
        "strided": (8, 32, 28, 28, 32, 3, 3, 2, 1, 1, 1),
        "odd_channels": (8, 24, 28, 28, 32, 3, 3, 1, 1, 1, 1),
    }
    sizes = {}
    for mode in env_modes(monkeypatch, "FASTLAYERS_CONV_WINO16"):
        sizes[mode] = {name: [_workspace_floats(c, p) for p in (0, 1, 2)] for name, c in shapes.items()}
    assert sizes["1"]["small_resnet"] != sizes["0"]["small_resnet"]
    assert sizes[None]["small_resnet"] == sizes["1"]["small_resnet"]
    assert sizes[None]["valid"] == sizes["1"]["valid"]
    for name in ("few_pixels", "wide"):  # forced on only
        assert sizes[None][name] == sizes["0"][name] != sizes["1"][name], name
    for name in ("strided", "odd_channels"):  # never
        assert sizes[None][name] == sizes["0"][name] == sizes["1"][name], name


def test_wino16_adjoint_is_taken_by_default(monkeypatch, rng):
    """Backward-data of a valid layer (the course CNN's conv2, 1024 output pixels) runs on the adjoint
    by default: its grad_x has the bits of the forced run, and rounding that differs from the other
    paths' (the workspace cannot tell here: the GEMM path's room is larger on some ISAs)."""
    x = rng.standard_normal((16, 32, 12, 12)).astype(np.float32)
    w = rng.standard_normal((64, 32, 5, 5)).astype(np.float32)
    go = rng.standard_normal((16, 64, 8, 8)).astype(np.float32)
    gx = {}
    for mode in env_modes(monkeypatch, "FASTLAYERS_CONV_WINO16"):
        gx[mode] = fl.conv2d_backward(go, x, w)[0]
    np.testing.assert_array_equal(gx[None], gx["1"])
    assert not np.array_equal(gx[None], gx["0"])
    rgx = ref.conv2d_backward(go.astype(np.float64), x.astype(np.float64), w.astype(np.float64))[0]
    for mode in (None, "0"):
        assert_close(gx[mode], rgx, reduction_tol(64 * 25), f"FASTLAYERS_CONV_WINO16={mode}")
