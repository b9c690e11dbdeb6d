"""conv2d / conv1d kernels against the float64 NumPy reference.

Tolerances (tests/helpers.py policy): the forward output sums C/groups*R*S products, so
reduction_tol(C/groups*R*S); an input gradient sums K/groups*R*S products at most, so
reduction_tol(max(C, K)/groups*R*S); grad_w and grad_b sum over N*P*Q positions, so reduction_tol(N*P*Q).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import reference as ref
from fastlayers.ops import conv as conv_ops

from ..helpers import assert_close, num_threads, reduction_tol

# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CASES = [
    (2, 3, 7, 9, 4, 3, 3, 1, 0, 1, 1),                 # odd sizes
    (1, 3, 8, 8, 5, 3, 3, 1, 1, 1, 1),                 # batch 1, padding
    (3, 8, 6, 5, 6, 1, 1, 1, 0, 1, 1),                 # 1x1 direct GEMM path, non-square
    (2, 4, 9, 9, 3, 1, 1, 2, 0, 1, 1),                 # 1x1 stride 2 (im2col path)
    (2, 4, 7, 7, 4, 1, 1, 1, 1, 1, 2),                 # 1x1 with padding, groups 2
    (2, 3, 11, 10, 4, 3, 3, 2, 1, 1, 1),               # stride 2
    (2, 2, 13, 11, 3, 3, 2, 3, 2, 1, 1),               # stride 3, non-square kernel
    (2, 3, 9, 10, 2, 3, 3, 1, 2, 2, 1),                # dilation 2
    (3, 4, 8, 7, 6, 3, 3, 1, 1, 1, 2),                 # groups 2
    (2, 5, 7, 8, 5, 3, 3, 1, 1, 1, 5),                 # depthwise
    (2, 6, 9, 8, 12, 3, 2, (2, 1), (1, 0), (1, 2), 3),  # asymmetric pairs, depthwise-multiplier 4
    (2, 3, 10, 12, 4, 2, 4, (1, 3), (0, 2), 1, 1),     # asymmetric stride/padding
    (4, 3, 6, 6, 1, 3, 3, 1, 1, 1, 1),                 # K = 1
    (3, 1, 9, 9, 4, 5, 5, 1, 2, 1, 1),                 # C = 1, 5x5
    (1, 2, 3, 3, 2, 3, 3, 1, 0, 1, 1),                 # kernel = input: 1x1 output
    (2, 2, 2, 2, 3, 3, 3, 2, 3, 1, 1),                 # padding larger than the input
    (5, 3, 17, 15, 4, 3, 3, 1, 1, 1, 1),               # N > threads, several images per thread
    (2, 8, 64, 64, 4, 3, 3, 1, 1, 1, 1),               # one image per GEMM, one column tile
    (5, 8, 32, 32, 4, 5, 5, 1, 0, 1, 1),               # 3 images per GEMM: blocks of 3 and 2
    (3, 1, 14, 13, 32, 5, 5, 1, 0, 1, 1),              # C/groups*R*S < K: grad_w computed transposed
    (3, 2, 6, 5, 8, 1, 1, 1, 0, 1, 1),                 # ... on the 1x1 direct path
    (1, 1, 100, 100, 16, 3, 3, 1, 1, 1, 1),            # ... one image, one large tile
    (2, 4, 9, 9, 16, 3, 3, 1, 1, 1, 2),                # ... with groups
]


def _case_data(rng, case, dtype=np.float32):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def _workspace_floats(case, pass_, threads=1):
    """conv2d_workspace_floats of a case (pass_: 0 forward, 1 backward-data, 2 backward-weight): the
    per-path tests tell which algorithm conv.cpp picks by the room it asks for."""
    from fastlayers import _cpu

    N, C, H, W, K, R, S, stride, padding, dilation, groups = case
    shape = conv_ops._geometry(np.empty((N, C, H, W), np.float32), np.empty((K, C // groups, R, S), np.float32),
                               stride, padding, dilation, groups)
    return int(_cpu.conv2d_workspace_floats(shape, pass_, threads))


def _check_all(device, x, w, b, params, rng, what):
    """Forward and the three gradients on `device` against the float64 reference."""
    f64 = [a.astype(np.float64) for a in (x, w, b)]
    K, Cg, R, S = w.shape
    G = params["groups"]
    y = fl.conv2d(device.put(x), device.put(w), device.put(b), **params)
    expect = ref.conv2d(*f64, **params)
    assert_close(y, expect, reduction_tol(Cg * R * S), f"{what} forward")
    N, _, P, Q = expect.shape
    g = rng.standard_normal(expect.shape).astype(np.float32)
    gx, gw, gb = fl.conv2d_backward(device.put(g), device.put(x), device.put(w), **params)
    rx, rw, rb = ref.conv2d_backward(g.astype(np.float64), f64[0], f64[1], **params)
    assert_close(gx, rx, reduction_tol(max(Cg, K // G) * R * S), f"{what} grad_x")
    assert_close(gw, rw, reduction_tol(N * P * Q), f"{what} grad_w")
    assert_close(gb, rb, reduction_tol(N * P * Q), f"{what} grad_b")
    for a in (y, gx, gw, gb):
        assert a.dtype == np.float32 and a.flags.c_contiguous


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_conv2d_matches_reference(device, rng, case):
    x, w, b, params = _case_data(rng, case)
    _check_all(device, x, w, b, params, rng, str(case))


@pytest.mark.parametrize("threads", [1, 2])
def test_conv2d_both_parallel_strategies(device, rng, threads):
    # threads=1: one block of images at a time; threads=2 with N >= 2: images split over threads,
    # per-thread partial grad_w reduced at the end; N=1 with 2 threads: parallel inside sgemm and
    # im2col. Small P*Q puts several images in one GEMM (blocks of unequal size in the last case).
    with num_threads(threads):
        for case in [(4, 6, 10, 9, 8, 3, 3, 1, 1, 1, 2), (1, 6, 10, 9, 8, 3, 3, 2, 1, 1, 1),
                     (3, 8, 7, 7, 4, 1, 1, 1, 0, 1, 1), (5, 8, 32, 32, 4, 5, 5, 1, 0, 1, 2),
                     (4, 1, 12, 12, 16, 3, 3, 1, 1, 1, 1)]:
            x, w, b, params = _case_data(rng, case)
            _check_all(device, x, w, b, params, rng, f"{case} threads={threads}")


# Edges of the forward pass's implicit GEMM packer (im2col panels packed straight from the image):
# panels of NR columns that cross output rows and images (N*P*Q not a multiple of NR), sgemm
# K-blocks that start inside a row of filter taps, padding on every side, dilation, stride, groups,
# and one image wide enough for several sgemm column blocks. (That path runs for unit column stride
# and C/groups*R*S >= 64: every case here qualifies.)
IMPLICIT_CASES = [
    (3, 9, 11, 13, 20, 7, 7, 1, 3, 1, 1),               # C*R*S = 441: K-blocks of 221, pad 3 all sides
    (2, 34, 9, 10, 8, 5, 5, (2, 1), 2, 2, 2),           # groups, dilation 2, stride (2, 1); 425 = 2 x 213
    (3, 17, 12, 11, 10, 5, 5, 1, 0, 1, 1),              # unpadded (plain copy path), Q = 7, 425 rows
    (1, 20, 40, 37, 6, 5, 5, 1, 0, 1, 1),               # one image per GEMM, 1188 columns
    (1, 8, 70, 66, 6, 3, 3, 1, 0, 1, 1),                # 4352 columns: two sgemm column blocks
    (2, 3, 23, 21, 5, 4, 6, (3, 1), (2, 4), (2, 1), 1), # stride 3 down, asymmetric padding wider than taps
]


# Whole-batch GEMMs (conv.cpp use_whole_batch): maps of <= 8x8 with >= 2^19 filter floats per
# group put about 1024 columns of several images in one product, threads inside sgemm; the
# direct and Winograd paths leave these shapes to it (ResNet-18's 512-channel layers). Blocks
# of unequal size (N=23 at 7x7: 21 + 2), stride 2, groups, and N=2 (direct forward still).
WHOLE_BATCH_CASES = [
    (3, 256, 7, 7, 256, 3, 3, 1, 1, 1, 1),
    (23, 256, 7, 7, 232, 3, 3, 1, 1, 1, 1),
    (4, 256, 9, 9, 512, 3, 3, 2, 1, 1, 1),
    (3, 512, 6, 5, 512, 3, 3, 1, 1, 1, 2),
    (2, 512, 4, 4, 128, 3, 3, 1, 1, 1, 1),
]


# One image on a small map with large filters: y^T = cols^T W^T with cols^T built pixel-major
# (conv.cpp use_pixel_major_fwd). Stride 2 takes it by default; with the direct kernel off the
# stride-1 shapes do too (padding, dilation 2, groups, a bias).
PIXEL_MAJOR_CASES = [
    (1, 256, 9, 9, 512, 3, 3, 2, 1, 1, 1),
    (1, 256, 7, 7, 256, 3, 3, 1, 1, 1, 1),
    (1, 512, 6, 5, 512, 3, 3, 1, 1, 1, 2),
    (1, 256, 8, 8, 300, 3, 3, 1, 2, 2, 1),
]


# The three GEMM-path lists above, each case on 1 and 2 threads; the pixel-major cases with the
# direct kernel off, so that the stride-1 ones reach that path.
GEMM_PATH_CASES = ([("implicit", c) for c in IMPLICIT_CASES] + [("whole_batch", c) for c in WHOLE_BATCH_CASES]
                   + [("pixel_major", c) for c in PIXEL_MAJOR_CASES])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path, case", GEMM_PATH_CASES, ids=[f"{p}-{c}" for p, c in GEMM_PATH_CASES])
def test_conv2d_gemm_path_edges(device, rng, path, case, threads, monkeypatch):
    if path == "pixel_major":
        monkeypatch.setenv("FASTLAYERS_CONV_DIRECT", "0")
    with num_threads(threads):
        x, w, b, params = _case_data(rng, case)
        _check_all(device, x, w, b, params, rng, f"{path} {case} threads={threads}")


def test_conv2d_many_column_tiles(device, rng):
    # C/groups*R*S*P*Q well above the per-thread im2col tile (2^19 floats): several tiles, one
    # starting in the middle of an output row.
    case = (2, 8, 97, 95, 5, 3, 3, 1, 1, 1, 1)
    x, w, b, params = _case_data(rng, case)
    _check_all(device, x, w, b, params, rng, "tiled")


def test_conv2d_backward_is_deterministic(device, rng):
    x, w, b, params = _case_data(rng, (6, 4, 12, 12, 8, 3, 3, 1, 1, 1, 1))
    g = rng.standard_normal((6, 8, 12, 12)).astype(np.float32)
    first = [device.get(a) for a in fl.conv2d_backward(device.put(g), device.put(x), device.put(w), **params)]
    again = [device.get(a) for a in fl.conv2d_backward(device.put(g), device.put(x), device.put(w), **params)]
    for a, b_ in zip(first, again):
        np.testing.assert_array_equal(a, b_)


def test_conv2d_without_bias_and_float64_noncontiguous(device, rng):
    x = rng.standard_normal((2, 3, 10, 14))[:, :, :, ::2]  # float64, non-contiguous
    w = rng.standard_normal((4, 3, 3, 3))
    y = fl.conv2d(device.put(x), device.put(w), padding=1)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert_close(y, ref.conv2d(x, w, padding=1), reduction_tol(27), "no bias")


def test_conv2d_empty_batch(device):
    x = np.zeros((0, 3, 5, 5), np.float32)
    w = np.ones((2, 3, 3, 3), np.float32)
    assert fl.conv2d(device.put(x), device.put(w)).shape == (0, 2, 3, 3)
    gx, gw, gb = fl.conv2d_backward(device.put(np.zeros((0, 2, 3, 3), np.float32)), device.put(x), device.put(w))
    assert gx.shape == (0, 3, 5, 5)
    np.testing.assert_array_equal(device.get(gw), 0)
    np.testing.assert_array_equal(device.get(gb), 0)


def test_conv2d_propagates_nan(device):
    x = np.ones((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = np.nan
    w = np.ones((1, 1, 2, 2), np.float32)
    y = device.get(fl.conv2d(device.put(x), device.put(w)))
    assert np.isnan(y[0, 0, 0, 0]) and np.isfinite(y[0, 0, 2, 2])


def test_conv_inputs_not_modified(device, rng):
    x, w, b, params = _case_data(rng, (2, 4, 7, 7, 4, 3, 3, 2, 1, 1, 2))
    y = fl.conv2d(device.put(x), device.put(w), device.put(b), **params)
    g = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    copies = [a.copy() for a in (x, w, b, g)]
    dx, dw, db, dg = (device.put(a) for a in (x, w, b, g))
    fl.conv2d(dx, dw, db, **params)
    fl.conv2d_backward(dg, dx, dw, **params)
    for before, after in zip(copies, (dx, dw, db, dg)):
        np.testing.assert_array_equal(before, device.get(after))


def test_workspace_is_reused(device, rng):
    if device.name != "cpu":
        pytest.skip("GPU workspaces come from CuPy's stream-ordered pool per call (Backend.workspace); "
                    "the per-thread cache is the CPU's")
    x, w, b, params = _case_data(rng, (2, 3, 9, 9, 4, 3, 3, 1, 1, 1, 1))
    fl.conv2d(device.put(x), device.put(w), device.put(b), **params)
    ws = conv_ops._workspaces.by_backend[device.name]
    fl.conv2d(device.put(x[:1]), device.put(w), device.put(b), **params)  # needs no more
    assert conv_ops._workspaces.by_backend[device.name] is ws


def test_conv2d_from_concurrent_python_threads(rng):
    # The kernels release the GIL; each Python thread must get its own cached workspace.
    from concurrent.futures import ThreadPoolExecutor

    cases = [(4, 32, 48, 48, 32, 3, 3, 1, 1, 1, 1), (4, 32, 49, 45, 16, 3, 3, 1, 1, 1, 2)]
    data = [_case_data(rng, c) for c in cases]
    expect = [ref.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **p) for x, w, b, p in data]

    def run(i):
        x, w, b, p = data[i % 2]
        return i % 2, fl.conv2d(x, w, b, **p)

    with ThreadPoolExecutor(4) as pool:
        for i, y in pool.map(run, range(12)):
            K, Cg, R, S = data[i][1].shape
            assert_close(y, expect[i], reduction_tol(Cg * R * S), f"thread case {i}")


@pytest.mark.parametrize("case", [
    (2, 3, 11, 4, 3, 1, 0, 1, 1),
    (1, 4, 9, 6, 3, 2, 1, 2, 2),
    (3, 4, 8, 4, 1, 1, 0, 1, 4),
    (2, 2, 20, 3, 5, 3, 2, 1, 1),
])
def test_conv1d_matches_reference(device, rng, case):
    N, C, L, K, S, stride, padding, dilation, groups = case
    x = rng.standard_normal((N, C, L)).astype(np.float32)
    w = rng.standard_normal((K, C // groups, S)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    f64 = [a.astype(np.float64) for a in (x, w, b)]
    y = fl.conv1d(device.put(x), device.put(w), device.put(b), **params)
    expect = ref.conv1d(*f64, **params)
    assert_close(y, expect, reduction_tol(C // groups * S), "conv1d")
    g = rng.standard_normal(expect.shape).astype(np.float32)
    got = fl.conv1d_backward(device.put(g), device.put(x), device.put(w), **params)
    want = ref.conv1d_backward(g.astype(np.float64), f64[0], f64[1], **params)
    tols = (reduction_tol(max(C, K) // groups * S), reduction_tol(N * expect.shape[2]), reduction_tol(N * expect.shape[2]))
    for a, e, t, what in zip(got, want, tols, ("grad_x", "grad_w", "grad_b")):
        assert_close(a, e, t, f"conv1d {what}")


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    C = groups * draw(st.integers(1, 3))
    K = groups * draw(st.integers(1, 3))
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    # the smallest input that gives a non-empty output, plus up to 6
    H = max(1, dh * (R - 1) + 1 - 2 * ph) + draw(st.integers(0, 6))
    W = max(1, dw * (S - 1) + 1 - 2 * pw) + draw(st.integers(0, 6))
    N = draw(st.integers(1, 3))
    return (N, C, H, W, K, R, S, (sh, sw), (ph, pw), (dh, dw), groups)


@settings(max_examples=40, deadline=None)
@given(case=conv_cases(), seed=st.integers(0, 2**31 - 1))
def test_conv2d_hypothesis(case, seed):
    from ..helpers import Device

    rng = np.random.default_rng(seed)
    x, w, b, params = _case_data(rng, case)
    _check_all(Device("cpu"), x, w, b, params, rng, str(case))


# ---- bad input: each raises before any kernel runs, naming the argument ----

def _ok():
    return np.ones((2, 4, 6, 6), np.float32), np.ones((6, 2, 3, 3), np.float32)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(x=np.ones((6, 6), np.float32)), ValueError, r"x must be 3-D or 4-D"),  # (C, H, W) is unbatched
    (dict(w=np.ones((6, 2, 3), np.float32)), ValueError, r"w must be 4-D"),
    (dict(w=np.ones((6, 3, 3, 3), np.float32)), ValueError, r"w.shape\[1\] must be C/groups = 4/2 = 2, got 3"),
    (dict(w=np.ones((5, 2, 3, 3), np.float32)), ValueError, r"K=5.*groups=2"),
    (dict(x=np.ones((2, 5, 6, 6), np.float32)), ValueError, r"C=5.*groups=2"),
    (dict(b=np.ones(5, np.float32)), ValueError, r"b must have shape \(6,\), got \(5,\)"),
    (dict(stride=0), ValueError, r"stride must be positive, got \(0, 0\)"),
    (dict(stride=(1, -2)), ValueError, r"stride must be positive"),
    (dict(dilation=0), ValueError, r"dilation must be positive"),
    (dict(groups=0), ValueError, r"groups must be positive"),
    (dict(padding=-1), ValueError, r"padding must be non-negative"),
    (dict(padding=(1, 2, 3)), ValueError, r"padding must be an int or a pair"),
    (dict(w=np.ones((6, 2, 7, 3), np.float32)), ValueError, r"w: the kernel 7x3.*larger than the padded input 6x6"),
    (dict(dilation=3), ValueError, r"w: the kernel 3x3 \(dilation 3x3, extent 7x7\)"),
    (dict(stride=1.5), TypeError, r"stride must be an int, got float"),
    (dict(padding="1"), ValueError, r"padding must be an int, a tuple of ints, 'valid' or 'same'"),
    (dict(groups=2.0), TypeError, r"groups must be an int"),
    (dict(dilation=True), TypeError, r"dilation must be an int"),
    (dict(x=np.ones((2, 4, 6, 6), np.complex64)), TypeError, r"x must have a real numeric dtype"),
    (dict(w=None), TypeError, r"w must be an array"),
])
def test_conv2d_bad_input(kwargs, err, match):
    x, w = _ok()
    args = dict(x=x, w=w, b=None, stride=1, padding=0, dilation=1, groups=2)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        fl.conv2d(**args)


def test_conv2d_backward_bad_grad_out():
    x, w = _ok()
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 6, 4, 4\), got \(2, 6, 5, 4\)"):
        fl.conv2d_backward(np.ones((2, 6, 5, 4), np.float32), x, w, groups=2)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 6, 4, 4\), got \(6, 4, 4\)"):
        fl.conv2d_backward(np.ones((6, 4, 4), np.float32), x, w, groups=2)
    with pytest.raises(ValueError, match=r"grad_out must be 3-D like the unbatched x"):
        fl.conv2d_backward(np.ones((2, 6, 4, 4), np.float32), x[0], w, groups=2)


def test_conv1d_bad_input():
    x, w = np.ones((2, 4, 10), np.float32), np.ones((6, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"x must be 2-D or 3-D"):
        fl.conv1d(np.ones((2, 4, 10, 1), np.float32), w, groups=2)
    with pytest.raises(ValueError, match=r"w must be 3-D"):
        fl.conv1d(x, np.ones((6, 2, 3, 1), np.float32), groups=2)
    with pytest.raises(ValueError, match=r"stride must be an int or a 1-tuple"):
        fl.conv1d(x, w, stride=(1, 1), groups=2)
    with pytest.raises(TypeError, match=r"padding must be an int"):
        fl.conv1d(x, w, padding=0.5, groups=2)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 6, 8\), got \(2, 6, 9\)"):
        fl.conv1d_backward(np.ones((2, 6, 9), np.float32), x, w, groups=2)
    with pytest.raises(ValueError, match=r"w: the kernel 1x11"):
        fl.conv1d(x, np.ones((6, 2, 11), np.float32), groups=2)


class _FakeCupyArray:
    """Looks like a CuPy array to the dispatcher (module name and CUDA interface), without CuPy."""

    __module__ = "cupy._core.core"
    __cuda_array_interface__ = {}
    shape = (6, 2, 3, 3)


def test_conv2d_mixed_devices():
    x, _ = _ok()
    with pytest.raises(TypeError, match=r"w on the GPU \(CuPy\) but x on the CPU"):
        fl.conv2d(x, _FakeCupyArray(), groups=2)
    with pytest.raises(TypeError, match=r"different devices"):
        fl.conv1d_backward(np.ones((2, 6, 8), np.float32), np.ones((2, 4, 10), np.float32), _FakeCupyArray(), groups=2)


@pytest.mark.parametrize("case", [CASES[0], CASES[13], CASES[19], (5, 1, 28, 28, 32, 5, 5, 1, 0, 1, 1)],
                         ids=["odd", "C1-5x5", "gw-transposed", "mnist-conv1"])
def test_conv2d_backward_without_grad_x(device, rng, case):
    """need_grad_x=False: grad_x is None, grad_w / grad_b are those of the full backward (same bits)."""
    x, w, _, params = _case_data(rng, case)
    N, _, _, _ = x.shape
    y = ref.conv2d(x.astype(np.float64), w.astype(np.float64), None, **params)
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, gb = fl.conv2d_backward(device.put(g), device.put(x), device.put(w), **params, need_grad_x=False)
    assert gx is None
    _, gw_full, gb_full = fl.conv2d_backward(device.put(g), device.put(x), device.put(w), **params)
    np.testing.assert_array_equal(device.get(gw), device.get(gw_full))
    np.testing.assert_array_equal(device.get(gb), device.get(gb_full))
    rx, rw, rb = ref.conv2d_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), **params,
                                     need_grad_x=False)
    assert rx is None
    assert_close(gw, rw, reduction_tol(N * y.shape[2] * y.shape[3]), "grad_w")


def test_conv1d_backward_without_grad_x(device, rng):
    x = rng.standard_normal((3, 2, 11)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3)).astype(np.float32)
    g = rng.standard_normal((3, 4, 9)).astype(np.float32)
    gx, gw, gb = fl.conv1d_backward(device.put(g), device.put(x), device.put(w), need_grad_x=False)
    assert gx is None
    _, gw_full, gb_full = fl.conv1d_backward(device.put(g), device.put(x), device.put(w))
    np.testing.assert_array_equal(device.get(gw), device.get(gw_full))
    np.testing.assert_array_equal(device.get(gb), device.get(gb_full))
    rx, rw, _ = ref.conv1d_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), need_grad_x=False)
    assert rx is None
    assert_close(gw, rw, reduction_tol(3 * 9), "conv1d grad_w")


def test_conv2d_backward_bad_need_grad_x():
    x, w = _ok()
    with pytest.raises(TypeError, match=r"need_grad_x must be a bool, got int 0"):
        fl.conv2d_backward(np.ones((2, 6, 4, 4), np.float32), x, w, groups=2, need_grad_x=0)


def test_conv2d_layer_skips_input_grad(rng):
    from fastlayers import nn

    layer = nn.Conv2d(1, 4, 3, rng=np.random.default_rng(0))
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    y = layer(x)
    g = rng.standard_normal(y.shape).astype(np.float32)
    full = layer.backward(g)
    gw_full = layer.weight.grad.copy()
    layer.need_input_grad = False
    assert layer.backward(g) is None
    np.testing.assert_array_equal(layer.weight.grad, gw_full)
    assert full.shape == x.shape
