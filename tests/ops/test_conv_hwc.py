"""conv2d's HWC direct kernel (csrc/cpu/conv_hwc*: channels in the lanes on an HWC copy of each
image; AVX-512 and AVX2 kernels, each test run on every one this CPU has), forward,
backward-weight and (stride 2, C a multiple of 16) backward-data: output channels multiples of 16,
any input channels, one group, dilation 1, stride 1 to 4, up to 7x7 filters (any size with C not
16, 32 or 64, whose runs are whole kernel rows). Against the float64 reference with
test_conv.py's tolerances (not widened).

FASTLAYERS_CONV_HWC=1 (read per call) sends every shape it can run there; by default it takes the
forward of the layers Winograd does not (not 1x1, more than one input channel) on AVX2 machines
only (test_hwc_is_taken). The inference plan's use of the same kernel is tested in tests/nn/test_plan.py.
"""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import Device, assert_nonfinite_in_place, env_modes, num_threads, reduction_tol
from .test_conv import _case_data, _check_all, _workspace_floats

# Every test once per vector ISA the kernels have (conftest.simd_isa).
pytestmark = pytest.mark.usefixtures("simd_isa")


@pytest.fixture
def hwc(monkeypatch):
    monkeypatch.setenv("FASTLAYERS_CONV_HWC", "1")
    monkeypatch.setenv("FASTLAYERS_CONV_WINO16", "0")


# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CASES = [
    (2, 16, 28, 28, 32, 3, 3, 2, 1, 1, 1),      # the small ResNet's 16 -> 32 stride 2 (14-pixel rows)
    (2, 32, 14, 14, 64, 3, 3, 2, 1, 1, 1),      # its 32 -> 64 stride 2 (7-pixel rows: blocks across rows)
    (1, 16, 12, 12, 16, 3, 3, 1, 1, 1, 1),      # stride 1, 12-pixel rows (whole row blocks with 6 or 12)
    (2, 48, 9, 11, 48, 5, 5, 1, 2, 1, 1),       # C not a power of 2 (run-time C), 5x5
    (1, 16, 15, 17, 16, 7, 7, 2, 3, 1, 1),      # 7x7 stride 2 (49 taps), odd sizes
    (2, 32, 10, 9, 16, 1, 1, 2, 0, 1, 1),       # 1x1 stride 2, no padding, odd width
    (1, 64, 6, 6, 128, 3, 3, 1, 0, 1, 1),       # no padding, wide K (4 vectors of 16 / 8 of 8)
    (1, 16, 5, 8, 32, 3, 3, 2, (2, 0), 1, 1),   # asymmetric padding, wider than the rows' tails
    # Input channels not a multiple of the lanes: runs of a whole kernel row (S x C floats), the
    # last C % L channels transposed one float at a time.
    (3, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),       # LeNet-5's conv2
    (1, 3, 23, 21, 32, 7, 7, 2, 3, 1, 1),       # an RGB stem, 7x7 stride 2, odd sizes
    (2, 12, 9, 10, 16, 3, 3, 1, 1, 1, 1),       # 12 channels: 8 + 4 on AVX2, 12 on AVX-512
    (1, 20, 8, 7, 32, 3, 3, 2, 1, 1, 1),        # 20 channels: 16 + 4 on AVX2 and AVX-512
    (2, 1, 11, 12, 16, 5, 5, 1, 2, 1, 1),       # one channel (forced here; not taken by default)
    (2, 16, 12, 11, 16, 4, 4, 2, 1, 1, 1),      # an even filter at stride 2: backward-data's phases
    # Strides 3 and 4, and past 49 taps where a run is a whole kernel row (C not 16, 32 or 64).
    (2, 3, 39, 37, 32, 11, 11, 4, 2, 1, 1),     # AlexNet's conv1 (11x11 stride 4), odd sizes
    (1, 5, 17, 16, 16, 5, 5, 3, 1, 1, 1),       # stride 3
    (1, 8, 12, 12, 16, 9, 9, 1, 4, 1, 1),       # 81 taps at stride 1
]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_hwc_matches_reference(rng, hwc, case):
    x, w, b, params = _case_data(rng, case)
    _check_all(Device("cpu"), x, w, b, params, rng, str(case))


@pytest.mark.parametrize("threads", [2, 3])
def test_hwc_threads(rng, hwc, threads):
    # Images over the threads (N >= threads), and one image's rows split over the team (N = 1).
    with num_threads(threads):
        for case in [(1, 16, 21, 19, 32, 3, 3, 2, 1, 1, 1), (5, 32, 9, 14, 16, 3, 3, 1, 1, 1, 1)]:
            x, w, b, params = _case_data(rng, case)
            _check_all(Device("cpu"), x, w, b, params, rng, f"{case} threads={threads}")


def test_hwc_keeps_nan_and_inf_in_place(hwc):
    # A direct sum: a NaN or inf reaches exactly the outputs that read it, as the reference.
    rng = np.random.default_rng(0)
    # 22 = 16 + 6 channels, with 8 or 16 lanes: the last 6 go through the one-float-at-a-time transpose;
    # 3 (an RGB image) through AVX2's three-plane interleave, in a row's whole vector and its tail.
    for C, at_nan, at_inf in [(16, (1, 2, 4, 7), (0, 5, 11, 0)), (22, (1, 21, 4, 7), (0, 19, 11, 0)),
                              (3, (1, 2, 4, 10), (0, 1, 11, 3))]:
        x = rng.standard_normal((2, C, 12, 12)).astype(np.float32)
        w = rng.standard_normal((32, C, 3, 3)).astype(np.float32)
        x[at_nan] = np.nan
        x[at_inf] = np.inf
        for threads in (1, 2):
            with num_threads(threads):
                y = fl.conv2d(x, w, None, stride=2, padding=1)
            expect = ref.conv2d(x.astype(np.float64), w.astype(np.float64), None, stride=2, padding=1)
            assert_nonfinite_in_place(y, expect, reduction_tol(C * 9), f"outputs, C={C}")


def test_hwc_backward_weight_keeps_nan_in_place(hwc):
    # grad_w is a direct sum too: a NaN in x reaches exactly the filter taps that read it.
    rng = np.random.default_rng(1)
    for C in (16, 6):
        x = rng.standard_normal((3, C, 9, 9)).astype(np.float32)
        w = rng.standard_normal((16, C, 3, 3)).astype(np.float32)
        x[1, C - 1, 0, 4] = np.nan  # an edge row: only some kernel rows read it at stride 2
        g = rng.standard_normal((3, 16, 5, 5)).astype(np.float32)
        for threads in (1, 2):
            with num_threads(threads):
                _, gw, _ = fl.conv2d_backward(g, x, w, stride=2, padding=1)
            _, expect, _ = ref.conv2d_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                                               stride=2, padding=1)
            assert np.isnan(expect).any() and not np.isnan(expect).all()
            assert_nonfinite_in_place(gw, expect, reduction_tol(3 * 25), f"taps, C={C}", inf=False)


def test_hwc_backward_data_keeps_nan_in_place(hwc):
    # Stride 2: grad_x's four phase sums are direct sums too; a NaN in grad_out reaches exactly the
    # grad_x pixels whose taps read it.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 16, 9, 10)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 32, 5, 5)).astype(np.float32)
    g[1, 7, 4, 0] = np.nan
    g[0, 3, 2, 2] = np.inf
    for threads in (1, 2):
        with num_threads(threads):
            gx, _, _ = fl.conv2d_backward(g, x, w, stride=2, padding=1)
        expect, _, _ = ref.conv2d_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                                           stride=2, padding=1)
        assert_nonfinite_in_place(gx, expect, reduction_tol(32 * 9), "grad_x")


def test_hwc_is_taken(monkeypatch, simd_isa):
    """The predicate, told by the forward's workspace size (the kernel's packed filters, R S C K
    floats, exceed the other paths' room on these small images): forced on wherever it can run; by
    default on AVX2, for layers Winograd does not take that are not 1x1, have more than one
    input channel and at most 2^17 filter floats, and on AVX-512 for those of them that are 3x3
    stride 2 with 16 or more input channels; never for other shapes or with FASTLAYERS_CONV_HWC=0."""
    shapes = {
        "stride2": (1, 64, 8, 8, 128, 3, 3, 2, 1, 1, 1),
        "large_filters": (1, 128, 4, 4, 256, 3, 3, 2, 1, 1, 1),
        "few_channels": (1, 6, 14, 14, 512, 5, 5, 1, 0, 1, 1),
        "one_by_one": (1, 512, 4, 4, 512, 1, 1, 2, 0, 1, 1),
        "one_channel": (1, 1, 14, 14, 512, 7, 7, 1, 0, 1, 1),
        "odd_output_channels": (8, 24, 28, 28, 24, 3, 3, 2, 1, 1, 1),
        "dilated": (8, 16, 28, 28, 32, 3, 3, 1, 2, 2, 1),
        "stride2_few_channels": (1, 8, 8, 8, 128, 3, 3, 2, 1, 1, 1),
    }
    def sizes_by_mode(pass_, cases):
        """{FASTLAYERS_CONV_HWC mode ("0", "1", unset): {name: that pass's workspace floats}}."""
        return {mode: {name: _workspace_floats(c, pass_) for name, c in cases.items()}
                for mode in env_modes(monkeypatch, "FASTLAYERS_CONV_HWC")}

    sizes = sizes_by_mode(0, shapes)
    for name in ("stride2", "large_filters", "few_channels", "one_by_one", "one_channel"):  # where it can run
        assert sizes["1"][name] > sizes["0"][name], name
    for name in ("stride2_few_channels", "few_channels"):  # by default on AVX2 only
        assert sizes["1"][name] > sizes["0"][name], name
        assert sizes[None][name] == sizes["1" if simd_isa == "avx2" else "0"][name], name
    # 3x3 stride 2 from 16 channels: by default on AVX2 and AVX-512
    assert sizes[None]["stride2"] == sizes["1" if simd_isa in ("avx2", "avx512") else "0"]["stride2"]
    for name in ("large_filters", "one_by_one", "one_channel"):  # not by default
        assert sizes[None][name] == sizes["0"][name], name
    # Backward-weight (pass 2): by default also from 6 input channels only (3 -> 512 7x7: not taken),
    # and 1x1 stride-2 projections of at most 2048 filter floats.
    bw = sizes_by_mode(2, {"six": (1, 6, 14, 14, 512, 5, 5, 1, 0, 1, 1), "three": (1, 3, 14, 14, 512, 7, 7, 2, 3, 1, 1),
                           "projection": (1, 32, 6, 6, 64, 1, 1, 2, 0, 1, 1),
                           "wide_projection": (1, 64, 6, 6, 128, 1, 1, 2, 0, 1, 1)})
    for name in bw["1"]:
        assert bw["1"][name] > bw["0"][name], name
    # "six" by default on AVX2 (AVX-512 keeps its other 5x5 paths); projections on both
    assert bw[None]["six"] == bw["1" if simd_isa == "avx2" else "0"]["six"]
    assert bw[None]["projection"] == bw["1" if simd_isa in ("avx2", "avx512") else "0"]["projection"]
    for name in ("three", "wide_projection"):  # not by default
        assert bw[None][name] == bw["0"][name], name
    # Backward-data (pass 1): stride 2 only, by default up to 2^15 filter floats (64 -> 128: not).
    bd = sizes_by_mode(1, {"small": (1, 32, 8, 8, 64, 3, 3, 2, 1, 1, 1), "large": (1, 64, 8, 8, 128, 3, 3, 2, 1, 1, 1),
                           "stride1": (1, 32, 8, 8, 64, 3, 3, 1, 1, 1, 1)})
    assert bd["1"]["small"] > bd["0"]["small"] and bd["1"]["large"] > bd["0"]["large"]
    assert bd[None]["small"] == bd["1" if simd_isa in ("avx2", "avx512") else "0"]["small"]
    assert bd[None]["large"] == bd["0"]["large"]
    assert bd["1"]["stride1"] == bd["0"]["stride1"]  # stride 1: never
    for name in ("odd_output_channels", "dilated"):  # never
        assert sizes[None][name] == sizes["0"][name] == sizes["1"][name], name
