"""conv3d kernels against the float64 NumPy reference, on every path and backend.

Paths (csrc/cpu/conv3d.cpp): Winograd over H/W (FASTLAYERS_CONV_WINOGRAD=1 reaches it with small
shapes), the slices path on the conv2d kernels (FASTLAYERS_CONV3D_SLICES=1), the implicit GEMM /
im2col path (both 0), and the plain GEMM of 1x1x1 layers. Tolerances (tests/helpers.py): the forward
sums C/groups*T*R*S products, the input gradient at most max(C, K)/groups*T*R*S, grad_w and grad_b
N*OD*P*Q.
"""

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, num_threads, reduction_tol

c3 = importlib.import_module("fastlayers.ops.conv3d")

# (N, C, D, H, W, K, T, R, S, stride, padding, dilation, groups)
CASES = [
    (2, 3, 5, 6, 7, 4, 3, 3, 3, 1, 1, 1, 1),                       # 3x3x3 pad 1, odd sizes
    (1, 2, 4, 5, 6, 3, 2, 3, 1, (1, 2, 3), (1, 0, 2), (2, 1, 1), 1),  # batch 1, asymmetric everything
    (2, 4, 6, 6, 6, 6, 3, 3, 3, 1, (2, 1, 0), 1, 2),               # groups 2, padding > kernel/2 in depth
    (3, 5, 3, 4, 5, 4, 1, 1, 1, 1, 0, 1, 1),                       # 1x1x1: plain GEMM on x
    (2, 4, 5, 5, 5, 4, 1, 1, 1, 2, 0, 1, 1),                       # 1x1x1 stride 2
    (2, 3, 5, 5, 5, 3, 3, 3, 3, 1, 1, 1, 3),                       # depthwise
    (1, 16, 6, 7, 9, 16, 3, 3, 3, 1, 1, 1, 1),                     # Winograd by size (16 channels)
    (2, 8, 6, 5, 7, 32, 2, 3, 3, 1, 1, (2, 1, 1), 1),              # depth dilation on the Winograd shape
    (1, 1, 9, 9, 9, 8, 5, 5, 5, 1, 0, 1, 1),                       # C = 1, 5x5x5 (the slices path's case)
    (2, 2, 7, 8, 6, 8, 3, 3, 3, 2, 1, 1, 1),                       # stride 2
    (1, 3, 2, 2, 2, 2, 3, 3, 3, 2, 3, 1, 1),                       # padding larger than the input
    (1, 2, 3, 3, 3, 1, 3, 3, 3, 1, 0, 1, 1),                       # kernel = input: one output, K = 1
    (5, 2, 3, 4, 4, 3, 2, 2, 2, 1, 0, 1, 1),                       # N > threads
    (2, 4, 5, 6, 7, 32, 3, 3, 3, (2, 1, 1), (1, 0, 1), 1, 2),      # groups on the direct slices kernel
    (2, 1, 7, 6, 9, 16, 3, 5, 3, 1, 0, (2, 1, 1), 1),             # C = 1, depth dilation: unfolded
    (2, 4, 5, 7, 6, 8, 3, 3, 2, (1, 2, 2), (1, 1, 0), (1, 1, 2), 4),  # depthwise x2 multiplier, strides 2
]
IDS = [str(c) for c in CASES]

PATHS = {  # environment for each CPU path
    "auto": {},
    "gemm": {"FASTLAYERS_CONV_WINOGRAD": "0", "FASTLAYERS_CONV3D_SLICES": "0"},
    "slices": {"FASTLAYERS_CONV_WINOGRAD": "0", "FASTLAYERS_CONV3D_SLICES": "1"},
    "winograd": {"FASTLAYERS_CONV_WINOGRAD": "1", "FASTLAYERS_CONV3D_SLICES": "0"},
}


def _data(rng, case, dtype=np.float32):
    N, C, D, H, W, K, T, R, S, stride, padding, dilation, groups = case
    x = rng.standard_normal((N, C, D, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, T, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def check_all(device, x, w, b, params, rng, what):
    f64 = [a.astype(np.float64) for a in (x, w, b)]
    K, Cg, T, R, S = w.shape
    G = params["groups"]
    y = fl.conv3d(device.put(x), device.put(w), device.put(b), **params)
    expect = ref.conv3d(*f64, **params)
    assert_close(y, expect, reduction_tol(Cg * T * R * S), f"{what} forward")
    g = rng.standard_normal(expect.shape).astype(np.float32)
    gx, gw, gb = fl.conv3d_backward(device.put(g), device.put(x), device.put(w), **params)
    rx, rw, rb = ref.conv3d_backward(g.astype(np.float64), f64[0], f64[1], **params)
    red = int(np.prod(expect.shape)) // K
    assert_close(gx, rx, reduction_tol(max(Cg, K // G) * T * R * S), f"{what} grad_x")
    assert_close(gw, rw, reduction_tol(red), f"{what} grad_w")
    assert_close(gb, rb, reduction_tol(red), f"{what} grad_b")
    for a in (y, gx, gw, gb):
        assert a.dtype == np.float32 and a.flags.c_contiguous


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv3d_matches_reference(device, rng, monkeypatch, case, path):
    if device.name != "cpu" and path != "auto":
        pytest.skip("the path knobs are the CPU's")
    for k, v in PATHS[path].items():
        monkeypatch.setenv(k, v)
    x, w, b, params = _data(rng, case)
    check_all(device, x, w, b, params, rng, f"{case} {path}")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", ["gemm", "slices", "winograd"])
def test_conv3d_parallel_strategies(device, rng, monkeypatch, threads, path):
    # N >= threads: images (or (image, slice chunk) items) over the threads with per-thread partial
    # sums; N = 1 with 2 threads: parallel inside one image (sgemm, im2col, conv2d).
    for k, v in PATHS[path].items():
        monkeypatch.setenv(k, v)
    with num_threads(threads):
        for case in [(3, 4, 5, 6, 5, 8, 3, 3, 3, 1, 1, 1, 2), (1, 3, 7, 6, 6, 8, 3, 3, 3, 1, 1, 1, 1)]:
            x, w, b, params = _data(rng, case)
            check_all(device, x, w, b, params, rng, f"{case} {path} threads={threads}")


@pytest.mark.parametrize("path", ["gemm", "slices", "winograd"])
def test_conv3d_every_isa(isa, rng, monkeypatch, path):
    # Packing layouts and micro-kernels differ per ISA (and the slices path's direct kernels exist
    # for AVX-512 only): every path on every ISA this CPU has.
    for k, v in PATHS[path].items():
        monkeypatch.setenv(k, v)
    from ..helpers import Device

    x, w, b, params = _data(rng, (2, 16, 4, 5, 6, 16, 3, 3, 3, 1, 1, 1, 1))
    check_all(Device("cpu"), x, w, b, params, rng, f"{isa} {path}")


def test_conv3d_nonfinite_inputs_take_the_gemm_path(rng, monkeypatch):
    # Winograd would spread one NaN over whole tiles: such inputs fall back to a path where every
    # output depends on its own window only, so the NaN pattern is the reference's.
    monkeypatch.setenv("FASTLAYERS_CONV_WINOGRAD", "1")
    x, w, b, params = _data(rng, (1, 16, 4, 8, 8, 16, 3, 3, 3, 1, 1, 1, 1))
    x[0, 3, 1, 2, 2] = np.nan
    assert_close(fl.conv3d(x, w, b, **params), ref.conv3d(x.astype(np.float64), w, b, **params),
                 reduction_tol(16 * 27), "forward with a NaN")
    x[0, 5, 3, 6, 7] = np.inf  # +-inf or NaN exactly where the reference has them, elsewhere close
    y, want = fl.conv3d(x, w, b, **params), ref.conv3d(x.astype(np.float64), w, b, **params)
    assert np.array_equal(np.isnan(y), np.isnan(want)) and np.array_equal(np.isinf(y), np.isinf(want))
    ok = np.isfinite(want)
    assert_close(y[ok], want[ok], reduction_tol(16 * 27), "forward with NaN and inf")
    g = rng.standard_normal(ref.conv3d(x, w, **params).shape).astype(np.float32)
    g[0, 2, 1, 3, 3] = np.nan
    gx, gw, _ = fl.conv3d_backward(g, x, w, **params)
    rx, rw, _ = ref.conv3d_backward(g.astype(np.float64), x.astype(np.float64), w, **params)
    assert np.array_equal(np.isnan(gx), np.isnan(rx)) and np.array_equal(np.isnan(gw), np.isnan(rw))


def test_conv3d_unbatched_empty_and_conversions(device, rng):
    x, w, b, params = _data(rng, CASES[0])
    y = fl.conv3d(device.put(x[0]), device.put(w), device.put(b), **params)  # (C, D, H, W)
    assert_close(y, ref.conv3d(x[:1], w, b, **params)[0], reduction_tol(81), "unbatched")
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, gb = fl.conv3d_backward(device.put(g), device.put(x[0]), device.put(w), **params)
    rx, rw, rb = ref.conv3d_backward(g[None], x[:1], w, **params)
    assert_close(gx, rx[0], reduction_tol(81), "unbatched grad_x")
    assert_close(gw, rw, reduction_tol(g.size), "unbatched grad_w")
    empty = fl.conv3d(device.put(x[:0]), device.put(w), **params)
    assert empty.shape == (0,) + y.shape
    gx0, gw0, gb0 = fl.conv3d_backward(device.put(np.zeros((0,) + y.shape, np.float32)), device.put(x[:0]),
                                       device.put(w), **params)
    assert gx0.shape == x[:0].shape and not np.any(device.get(gw0)) and not np.any(device.get(gb0))
    # float64, non-contiguous input: converted, never modified
    x64 = np.asfortranarray(x.astype(np.float64))
    before = x64.copy()
    assert_close(fl.conv3d(device.put(x64), device.put(w), device.put(b), **params),
                 ref.conv3d(x, w, b, **params), reduction_tol(81), "float64 Fortran-order x")
    assert np.array_equal(x64, before)


def test_conv3d_backward_is_deterministic_and_skips_grad_x(device, rng):
    x, w, b, params = _data(rng, (3, 16, 4, 6, 6, 16, 3, 3, 3, 1, 1, 1, 1))
    g = rng.standard_normal(ref.conv3d(x, w, **params).shape).astype(np.float32)
    first = [device.get(a) for a in fl.conv3d_backward(device.put(g), device.put(x), device.put(w), **params)]
    again = [device.get(a) for a in fl.conv3d_backward(device.put(g), device.put(x), device.put(w), **params)]
    assert all(np.array_equal(a, b_) for a, b_ in zip(first, again))
    gx, gw, gb = fl.conv3d_backward(device.put(g), device.put(x), device.put(w), **params, need_grad_x=False)
    assert gx is None and np.array_equal(device.get(gw), first[1])


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(x=np.zeros((3, 4, 4), np.float32)), ValueError, r"x must be 5-D \(N, C, D, H, W\) or 4-D unbatched"),
    (dict(w=np.zeros((4, 3, 3, 3), np.float32)), ValueError, r"w must be 5-D \(K, C/groups, T, R, S\)"),
    (dict(w=np.zeros((4, 2, 3, 3, 3), np.float32)), ValueError, r"w.shape\[1\] must be C/groups = 3/1 = 3, got 2"),
    (dict(groups=2), ValueError, r"x has C=3 channels, which groups=2 does not divide"),
    (dict(stride=0), ValueError, r"stride must be positive"),
    (dict(stride=(1, 1)), ValueError, r"stride must be an int or a sequence of 3 ints"),
    (dict(padding=-1), ValueError, r"padding must be non-negative"),
    (dict(dilation=1.5), TypeError, r"dilation must be an int"),
    (dict(padding=2**40), ValueError, r"padding: the padded depth extent"),
    (dict(dilation=2**63 - 1), ValueError, r"dilation: the kernel's depth extent"),
    (dict(w=np.zeros((4, 3, 9, 3, 3), np.float32)), ValueError, r"w: the kernel's depth extent 9"),
    (dict(b=np.zeros(5, np.float32)), ValueError, r"b must have shape \(4,\), got \(5,\)"),
    (dict(x=np.zeros((2, 3, 5, 5, 5), bool)), TypeError, r"x must have a real numeric dtype"),
])
def test_conv3d_bad_input(kwargs, err, match):
    args = dict(x=np.zeros((2, 3, 5, 5, 5), np.float32), w=np.zeros((4, 3, 3, 3, 3), np.float32), b=None)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        fl.conv3d(**args)


def test_conv3d_backward_bad_input():
    x, w = np.zeros((2, 3, 5, 5, 5), np.float32), np.zeros((4, 3, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 4, 3, 3, 3\), got \(2, 4, 3, 3, 4\)"):
        fl.conv3d_backward(np.zeros((2, 4, 3, 3, 4), np.float32), x, w)
    with pytest.raises(TypeError, match=r"need_grad_x must be a bool"):
        fl.conv3d_backward(np.zeros((2, 4, 3, 3, 3), np.float32), x, w, need_grad_x=1)


def test_conv3d_extreme_geometry_gives_the_right_answer(rng):
    # A stride that cannot matter (one output along the axis) and a dilation of a size-1 kernel
    # axis are exact integers in Python, passed on clamped: the answer is the ordinary one.
    x = rng.standard_normal((1, 2, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 4, 1, 2)).astype(np.float32)
    for stride in ((2**63 - 1, 1, 1), (2**64, 1, 1), (2**62, 1, 1)):
        params = dict(stride=stride, padding=0, dilation=(1, 2**63 - 1, 1))
        y = fl.conv3d(x, w, **params)
        want = ref.conv3d(x, w, stride=(5, 1, 1), padding=0)  # depth: one output either way
        assert_close(y, want, reduction_tol(16), f"stride {stride}")
        gx, gw, gb = fl.conv3d_backward(np.ones_like(y), x, w, **params)
        rx, rw, _ = ref.conv3d_backward(np.ones_like(want), x, w, stride=(5, 1, 1))
        assert_close(gx, rx, reduction_tol(16), "grad_x")
        assert_close(gw, rw, reduction_tol(30), "grad_w")


def test_conv3d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for case in (CASES[1], CASES[2], CASES[6], CASES[9]):
        x, w, b, params = _data(rng, case)
        tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        ty = F.conv3d(tx, tw, tb, **params)
        assert_close(fl.conv3d(x, w, b, **params), ty.detach().numpy(), reduction_tol(w[0].size) * 2, f"{case}")
        g = rng.standard_normal(ty.shape).astype(np.float32)
        grads = torch.autograd.grad(ty, (tx, tw, tb), torch.from_numpy(g))
        for ours, theirs, n in zip(fl.conv3d_backward(g, x, w, **params), grads, ("x", "w", "b")):
            assert_close(ours, theirs.numpy(), reduction_tol(ty.numel()) * 2, f"{case} grad_{n}")


@st.composite
def conv3d_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    C, K = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 4))
    T, R, S = (draw(st.integers(1, 3)) for _ in range(3))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(3))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(3))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(3))
    dims = [max(1, (k - 1) * d + 1 - 2 * p) + draw(st.integers(0, 3)) for k, d, p in zip((T, R, S), dil, pad)]
    return (draw(st.integers(1, 3)), C, *dims, K, T, R, S, stride, pad, dil, groups)


@settings(max_examples=25, deadline=None)
@given(case=conv3d_cases(), seed=st.integers(0, 2**31 - 1), path=st.sampled_from(["auto", "gemm", "slices"]))
def test_conv3d_hypothesis(case, seed, path):
    import os

    old = {k: os.environ.get(k) for k in PATHS["gemm"]}
    os.environ.update(PATHS[path])
    try:
        from ..helpers import Device

        rng = np.random.default_rng(seed)
        x, w, b, params = _data(rng, case)
        check_all(Device("cpu"), x, w, b, params, rng, f"{case} {path}")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_workspace_is_reused(rng):
    x, w, b, params = _data(rng, CASES[0])
    fl.conv3d(x, w, b, **params)
    ws = c3._workspaces.by_backend[("cpu", "conv3d_workspace_floats")]
    fl.conv3d(x, w, b, **params)
    assert c3._workspaces.by_backend[("cpu", "conv3d_workspace_floats")] is ws
