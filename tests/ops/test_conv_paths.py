"""conv2d's direct path (csrc/cpu/conv_smallc*, AVX-512 machines; C/groups <= 4, and other shapes
where smallc_applies takes them) and
its edges, against the float64 NumPy reference, with the path on and off (FASTLAYERS_CONV_SMALLC=0
sends the same shapes through im2col + GEMM).

What the path does, and the edges hit here:
- forward: x split into stride phase planes (permutes for stride 2 and 4, scalar otherwise),
  tiles of 14 or 8 pixels of an output row x 32 (or 16) output channels; Q not a multiple of 14,
  Q < 14, K/groups not a multiple of 16 or 32, padding wider than the taps, dilation.
- backward-weight: a zero-padded copy of x (or x itself unpadded), grad_out transposed in blocks of
  output rows, tiles of up to 14 taps of one kernel row x 32 channels; S > 14 (two tap tiles),
  several row blocks with a partial last one, unit column dilation only (row dilation allowed).
- backward-data with S >= 9: the column matrix pixel-major, added back as runs
  (PIXEL_MAJOR_BD_CASES).
- backward-data (stride 1, output the size of the input): the forward tile on grad_out with the
  filters transposed and flipped; narrow unpadded layers (grad_x rows of <= 14 pixels, 3 or 5
  columns of taps): whole grad_x rows per tile (DIRECT_BD_CASES).
- backward-weight's grad_b: summed while grad_out is transposed, a partial sum per thread added
  in chunk order (BW_CASES: 1-3 threads; a wrong 3-thread sum failed only there).
- threads: images split over 2 threads (partial grad_w per thread), or N = 1 with the work split
  inside the image.
Tolerances as tests/ops/test_conv.py: reduction_tol of the summed length.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, num_threads, reduction_tol


@pytest.fixture(autouse=True)
def _newer_paths_off(monkeypatch):
    # conv_winograd_c16 and conv_pixels (tests/ops/test_conv_winograd_c16.py, test_conv_pixels.py)
    # would take some of these shapes first: off here, so that they reach the path this file tests.
    monkeypatch.setenv("FASTLAYERS_CONV_WINO16", "0")
    monkeypatch.setenv("FASTLAYERS_CONV_PIXELS", "0")


# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CASES = [
    (3, 1, 28, 28, 32, 5, 5, 1, 0, 1, 1),               # LeNet conv1: 2 tiles per row (14 + 10)
    (2, 3, 45, 47, 64, 11, 11, 4, 2, 1, 1),             # AlexNet conv1 shape, smaller image
    (2, 3, 23, 19, 10, 3, 5, (2, 3), (1, 2), 1, 1),     # stride 2 / 3 (permute / scalar split), K = 10
    (1, 2, 17, 15, 13, 3, 3, 3, 1, (2, 1), 1),          # row dilation, stride 3
    (2, 2, 17, 15, 13, 3, 3, 2, 2, 2, 1),               # dilation 2 both ways (forward only on the path)
    (2, 4, 13, 14, 12, 3, 3, 1, 1, 1, 2),               # groups, C/groups = 2
    (2, 8, 11, 12, 8, 3, 3, 1, 1, 1, 4),                # groups 4, K/groups = 2
    (1, 3, 9, 30, 17, 2, 7, (1, 4), (0, 3), 1, 1),      # stride 4 across, padding 3, odd K
    (2, 1, 8, 8, 40, 8, 8, 1, 0, 1, 1),                 # 1x1 output, K = 40 (32 + 8)
    (2, 2, 6, 7, 5, 1, 1, 2, 0, 1, 1),                  # 1x1 kernel, stride 2
    (2, 1, 20, 40, 33, 3, 16, 1, (1, 2), 1, 1),         # S = 16: two tap tiles (14 + 2), K = 33
    (2, 3, 31, 33, 16, 5, 5, 2, 4, 1, 1),               # padding 4 > stride, odd sizes
    (1, 1, 5, 5, 3, 5, 5, 1, 0, 1, 1),                  # kernel = input
    (2, 4, 40, 38, 64, 3, 3, 1, 1, 1, 1),               # C = 4, several grad_out row blocks
    (3, 1, 31, 29, 24, 4, 4, 4, 0, 1, 1),               # stride 4 unpadded, W not a multiple of 4
    (1, 3, 64, 70, 7, 3, 3, 2, 1, 1, 1),                # Q = 35: 14 + 14 + 7; K < 8: not on the path
    # More input channels: the forward where tiles are well filled, backward-weight for S >= 5.
    (2, 32, 12, 12, 64, 5, 5, 1, 0, 1, 1),              # LeNet conv2: backward-weight only (Q = 8)
    (2, 16, 15, 17, 24, 5, 5, 1, 2, 1, 1),              # C = 16, both passes
    (1, 12, 30, 29, 16, 3, 3, 2, 1, 1, 1),              # C = 12 3x3 stride 2: forward only (S < 5)
    (2, 16, 10, 25, 32, 3, 6, 1, (0, 2), (2, 1), 2),    # groups 2, row dilation, S = 6
    (1, 460, 5, 16, 8, 3, 3, 1, 1, 1, 1),               # C*R*S = 4140 > 4096 taps: forward off the path
    # Backward-data as the forward of grad_out with flipped, transposed filters (stride 1, "same"
    # padding, C/groups >= 8).
    (2, 16, 13, 14, 24, 5, 5, 1, 2, 1, 1),              # 5x5 pad 2
    (2, 16, 12, 13, 32, 3, 3, 1, 1, 1, 2),              # groups 2: C/groups = 8, K/groups = 16
    (1, 8, 14, 14, 8, 3, 3, 1, 2, 2, 1),                # dilation 2, pad 2
    (2, 9, 11, 28, 12, 3, 5, 1, (1, 2), 1, 1),          # asymmetric kernel and padding
    # Strides whose taps read only some phase planes (the others are left unfilled):
    (2, 16, 15, 15, 24, 1, 1, 2, 0, 1, 1),              # 1x1 stride 2: one phase of four
    (2, 8, 25, 25, 16, 3, 3, 2, 2, 2, 1),               # 3x3 dilation 2 stride 2: taps 0, 2, 4, phase 0
    # 8 channels per group, forward and backward-data (the flipped filters): pixel-pair tiles
    (2, 16, 18, 18, 16, 3, 3, 1, 1, 1, 2),              # groups 2, 24-pixel pair tiles on 18-pixel rows
    (1, 3, 30, 30, 8, 5, 5, 1, 2, 1, 1),                # 30-pixel rows: one 32-pixel pair tile, 2 masked
]


def _data(rng, case):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = case
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C // groups, R, S)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def _check(x, w, b, params, rng, what):
    f64 = [a.astype(np.float64) for a in (x, w, b)]
    _, Cg, R, S = w.shape
    y = fl.conv2d(x, w, b, **params)
    expect = ref.conv2d(*f64, **params)
    assert_close(y, expect, reduction_tol(Cg * R * S), f"{what} forward")
    N, K, P, Q = expect.shape
    g = rng.standard_normal(expect.shape).astype(np.float32)
    gx, gw, gb = fl.conv2d_backward(g, x, w, **params)
    rx, rw, rb = ref.conv2d_backward(g.astype(np.float64), f64[0], f64[1], **params)
    assert_close(gx, rx, reduction_tol(max(Cg, K // params["groups"]) * R * S), f"{what} grad_x")
    assert_close(gw, rw, reduction_tol(N * P * Q), f"{what} grad_w")
    assert_close(gb, rb, reduction_tol(N * P * Q), f"{what} grad_b")


def _check_grad_x(rng, case, nthreads, what, batches=(None,)):
    """conv2d_backward's grad_x for `case` at `nthreads` threads against the float64 reference, on the
    whole batch (None) and on the first n images for each n in `batches`."""
    with num_threads(nthreads):
        x, w, _, params = _data(rng, case)
        K, R, S = w.shape[0], w.shape[2], w.shape[3]
        y = ref.conv2d(x.astype(np.float64), w.astype(np.float64), None, **params)
        g = rng.standard_normal(y.shape).astype(np.float32)
        for n in batches:
            gx, _, _ = fl.conv2d_backward(g[:n], x[:n], w, **params)
            rx, _, _ = ref.conv2d_backward(g[:n].astype(np.float64), x[:n].astype(np.float64),
                                          w.astype(np.float64), **params)
            assert_close(gx, rx, reduction_tol(K // params["groups"] * R * S),
                         f"{what} threads={nthreads} N={n or x.shape[0]} grad_x")


@pytest.fixture(params=["on", "off"])
def smallc(request, monkeypatch):
    """The direct path enabled (where the machine and shape allow it) or forced off."""
    monkeypatch.setenv("FASTLAYERS_CONV_SMALLC", "1" if request.param == "on" else "0")
    return request.param


@pytest.fixture(params=[1, 2])
def threads(request):
    old = fl.get_num_threads()
    fl.set_num_threads(request.param)
    yield request.param
    fl.set_num_threads(old)


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_small_channel_paths(rng, case, smallc, threads):
    x, w, b, params = _data(rng, case)
    _check(x, w, b, params, rng, f"{case} smallc={smallc} threads={threads}")


def test_small_channel_batch_one_two_threads(rng, threads):
    # N = 1 with 2 threads: the forward splits output rows and backward-weight splits kernel rows
    # over the team inside one image.
    for case in [(1, 3, 50, 52, 40, 7, 7, 2, 3, 1, 1), (1, 1, 30, 30, 32, 5, 5, 1, 0, 1, 1),
                 (1, 2, 20, 20, 24, 5, 5, 1, 0, 1, 1), (1, 16, 12, 16, 16, 3, 3, 1, 1, 1, 1)]:
        x, w, b, params = _data(rng, case)
        _check(x, w, b, params, rng, f"{case} threads={threads}")


# Backward-weight edges: grad_b summed in the transposing pass (per-thread partials added in chunk
# order), grad_out^T in equal blocks of whole output rows (up to 128 KiB), the next image's
# grad_out prefetched when a block is a whole image; 1, 2 and 3 threads, N below, equal to and not a
# multiple of the thread count.
BW_CASES = [
    (5, 1, 28, 28, 32, 5, 5, 1, 0, 1, 1),               # LeNet conv1: whole-image blocks (prefetch)
    (4, 3, 39, 37, 64, 11, 11, 4, 2, 1, 1),             # AlexNet conv1 shape, P x Q = 9 x 8
    (3, 1, 66, 64, 64, 5, 5, 1, 0, 1, 1),               # Q = 60, Kv = 64: blocks of 8 rows, last one 6
    (2, 1, 40, 70, 40, 5, 5, 1, 0, 1, 1),               # K = 40 (32 + 8), 4 blocks of 9 rows
    (7, 4, 20, 21, 48, 5, 5, 1, 0, 1, 2),               # groups 2: each group's grad_b and prefetch range
    (2, 2, 30, 29, 40, 3, 7, 2, 3, 1, 1),               # stride 2, padding 3, K = 40
    (1, 1, 60, 62, 17, 6, 16, (3, 1), 2, 1, 1),         # N = 1, S = 16 (14 + 2 taps), K = 17
    (3, 2, 50, 47, 24, 5, 5, 1, (2, 1), (2, 1), 1),     # row dilation, asymmetric padding, 2 blocks
]


@pytest.mark.parametrize("nthreads", [1, 2, 3])
@pytest.mark.parametrize("case", BW_CASES, ids=[str(c) for c in BW_CASES])
def test_small_channel_backward_weight_blocks_and_threads(rng, case, nthreads):
    with num_threads(nthreads):
        x, w, b, params = _data(rng, case)
        _check(x, w, b, params, rng, f"{case} threads={nthreads}")


def test_small_channel_ignores_unused_nonfinite_input(rng):
    # Columns 7..9 of x are never under a tap (stride 4, Q = 2: columns 0..6), rows 7..8 neither:
    # Inf / NaN there must not reach y or grad_w (0 * Inf in a dropped lane would).
    x, w, b, params = _data(rng, (2, 3, 9, 10, 8, 3, 3, 4, 0, 1, 1))
    x[:, :, :, 7:] = np.inf
    x[:, :, 7:, :] = np.nan
    _check(x, w, b, params, rng, "unused non-finite")


def test_small_channel_propagates_nan(rng):
    x, w, b, params = _data(rng, (2, 3, 12, 13, 16, 3, 3, 2, 1, 1, 1))
    x[1, 2, 5, 6] = np.nan
    y = fl.conv2d(x, w, b, **params)
    assert np.isnan(y[1]).any() and not np.isnan(y[0]).any()
    g = np.ones(y.shape, np.float32)
    _, gw, _ = fl.conv2d_backward(g, x, w, **params)
    assert np.isnan(gw[:, 2]).any() and not np.isnan(gw[:, :2]).any()


def test_small_channel_inputs_not_modified(rng):
    x, w, b, params = _data(rng, (2, 3, 20, 21, 16, 5, 5, 2, 2, 1, 1))
    copies = [a.copy() for a in (x, w, b)]
    y = fl.conv2d(x, w, b, **params)
    g = rng.standard_normal(y.shape).astype(np.float32)
    g_copy = g.copy()
    fl.conv2d_backward(g, x, w, **params)
    for a, c in zip((x, w, b, g), (*copies, g_copy)):
        assert np.array_equal(a, c)


@settings(max_examples=40, deadline=None)
@given(
    st.tuples(
        st.integers(1, 3),  # N
        st.integers(1, 4),  # C/groups
        st.integers(1, 2),  # groups
        st.integers(1, 40),  # K/groups
        st.integers(1, 6),  # R
        st.integers(1, 6),  # S
        st.integers(1, 4),  # stride_h
        st.integers(1, 4),  # stride_w
        st.integers(0, 3),  # pad_h
        st.integers(0, 3),  # pad_w
        st.integers(1, 2),  # dil_h
        st.integers(1, 2),  # dil_w
    ),
    st.integers(0, 2**31 - 1),
)
def test_small_channel_hypothesis(dims, seed):
    N, Cg, G, Kg, R, S, sh, sw, ph, pw, dh, dw = dims
    rng = np.random.default_rng(seed)
    H = int(rng.integers(dh * (R - 1) + 1, 24))
    W = int(rng.integers(dw * (S - 1) + 1, 24))
    case = (N, Cg * G, H, W, Kg * G, R, S, (sh, sw), (ph, pw), (dh, dw), G)
    x, w, b, params = _data(rng, case)
    _check(x, w, b, params, rng, str(case))


# Backward-data on the GEMM path with several images per block (small P*Q) and a plain geometry
# (stride 1, no padding, no dilation): W^T packed once per call (sgemm_pack_a), per image blocks of
# column-matrix rows from one product each (sgemm_prepacked_a, grad_out in place) and their col2im
# while in L1; the first block of a channel overwrites grad_x, later ones add. Edges: batch not a
# multiple of the block's image count (9 here for LeNet conv2), a row block count with a partial
# last block, C*R*S below and not a multiple of the kernel's row panel (14 on AVX-512, 6 on AVX2),
# channels split across row blocks, groups, Q = 24 / 8 / other, non-square, and every ISA (the
# AVX2 and generic kernels take the packed-B fallback of sgemm_prepacked_a). Not-plain shapes next
# to them take the staged path.
BD_CASES = [
    (20, 32, 12, 12, 64, 5, 5, 1, 0, 1, 1),             # LeNet conv2 shape, N = 20: blocks 9 + 9 + 2
    (11, 1, 28, 28, 32, 5, 5, 1, 0, 1, 1),              # LeNet conv1 shape: Q = 24, C*R*S = 25
    (5, 1, 7, 9, 3, 3, 3, 1, 0, 1, 1),                  # C*R*S = 9 < 14, K = 3, non-square
    (4, 3, 10, 13, 7, 4, 3, 1, 0, 1, 1),                # C*R*S = 36, Q = 11, odd sizes
    (6, 8, 11, 10, 12, 3, 4, 1, 0, 1, 2),               # groups 2, R != S
    (3, 40, 9, 9, 16, 5, 5, 1, 0, 1, 1),                # C*R*S = 1000: many row blocks, partial last
    (5, 6, 12, 12, 10, 5, 5, 2, 1, 1, 1),               # stride 2, padding: the staged path
    (4, 5, 11, 12, 9, 3, 3, 1, 0, 2, 1),                # dilation 2: the staged path
]


@pytest.mark.parametrize("case", BD_CASES, ids=[str(c) for c in BD_CASES])
@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_backward_data_prepacked_blocks(rng, isa, case, nthreads, monkeypatch):
    # 3 threads and N = 2 below: fewer images than threads, the staged path parallel inside.
    monkeypatch.setenv("FASTLAYERS_CONV_SMALLC", "0")
    _check_grad_x(rng, case, nthreads, f"{case} isa={isa}", batches=(None, 2))


# Backward-data by the direct kernel for narrow unpadded stride-1 layers (smallc_backward_data_*:
# AVX-512, S = 3 or 5, grad_x rows of W <= 14 pixels, C/groups >= 8): a tile is a whole grad_x row
# x 32 (or 16) input channels, the kernel rows whose grad_out row exists summed per row. Edges:
# W = S (Q = 1) and W = 14, a 32-channel pair plus a single vector (40: 8 of its 16 lanes padding,
# 48), R != S (R = 1, 2, 4), H != W, groups, K/groups = 1, N = 1 with the rows split over the team,
# 3 threads. Each is checked against the reference with the path on and forced off.
DIRECT_BD_CASES = [
    (7, 32, 12, 12, 64, 5, 5, 1, 0, 1, 1),              # LeNet conv2
    (3, 16, 5, 5, 6, 5, 5, 1, 0, 1, 1),                 # W = S: Q = 1, P = 1; one 16-channel vector
    (2, 40, 9, 14, 3, 3, 3, 1, 0, 1, 1),                # W = 14, H != W, channels 32 + 8 (of 16)
    (2, 48, 6, 11, 5, 2, 5, 1, 0, 1, 1),                # R = 2, channels 32 + 16
    (3, 32, 13, 7, 10, 4, 3, 1, 0, 1, 2),               # groups 2: C/groups = 16, K/groups = 5, R = 4
    (2, 16, 10, 10, 1, 1, 5, 1, 0, 1, 1),               # K = 1, R = 1
    (1, 32, 12, 12, 64, 5, 5, 1, 0, 1, 1),              # N = 1: rows split inside the image
]


@pytest.mark.parametrize("case", DIRECT_BD_CASES, ids=[str(c) for c in DIRECT_BD_CASES])
@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_backward_data_direct_rows(rng, case, smallc, nthreads):
    _check_grad_x(rng, case, nthreads, f"{case} smallc={smallc}")


# Backward-data with the column matrix pixel-major (conv.cpp's bd_pixel_major: S >= 9, unit column
# dilation, one image per product): colsT = grad_out^T W in tiles of ~256 KiB of pixels (168 of
# 363 taps, 28 of 1936: tiles end mid-row), each pixel's taps added back as runs of S floats
# (conv_col2im.h), clipped at both image edges. Edges: stride 2 / 3 / 4, padding on both sides
# and wider than a stride, row dilation, groups, N = 1 (with 2 and 3 threads the rows of one image
# are split and the column path takes over), on every ISA (AVX-512 masked runs, portable loop).
PIXEL_MAJOR_BD_CASES = [
    (2, 3, 60, 64, 20, 11, 11, 2, 5, 1, 1),             # 960 pixels in tiles of 168
    (2, 16, 100, 100, 16, 11, 11, 4, 2, 1, 1),          # C*R*S = 1936: tiles of 28 pixels
    (2, 8, 120, 120, 12, 9, 9, 3, 4, (2, 1), 2),        # row dilation 2, groups 2
    (1, 3, 64, 64, 8, 9, 9, 4, 0, 1, 1),                # N = 1, no padding
    (1, 2, 30, 70, 10, 13, 13, 4, 6, 1, 1),             # padding 6 > stride, S = 13
]


@pytest.mark.parametrize("case", PIXEL_MAJOR_BD_CASES, ids=[str(c) for c in PIXEL_MAJOR_BD_CASES])
@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_backward_data_pixel_major(rng, isa, case, nthreads):
    _check_grad_x(rng, case, nthreads, f"{case} isa={isa}")
