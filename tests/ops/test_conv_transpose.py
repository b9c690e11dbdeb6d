"""conv_transpose2d against the float64 reference (and torch), on every backend.

It runs the conv2d kernels (forward = conv2d backward-data, backward-data = conv2d forward, weight
gradient = conv2d backward-weight with the roles swapped), so the cases also reach conv2d's paths
from this side: Winograd (3x3 stride 1, forced with FASTLAYERS_CONV_WINOGRAD=1), the direct kernels
and GEMM. Tolerances as conv2d's: y sums C_in/groups*R*S products per output, grad_x
C_out/groups*R*S, grad_w and grad_b N*H_out*W_out.
"""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, num_threads, reduction_tol


@pytest.fixture(autouse=True)
def _newer_paths_off(monkeypatch):
    # conv_winograd_c16 and conv_pixels (tests/ops/test_conv_winograd_c16.py, test_conv_pixels.py)
    # would take some of these shapes first: off here, so that they reach the path this file tests.
    monkeypatch.setenv("FASTLAYERS_CONV_WINO16", "0")
    monkeypatch.setenv("FASTLAYERS_CONV_PIXELS", "0")


# (N, C_in, H, W, C_out/groups, R, S, stride, padding, output_padding, groups, dilation)
CASES = [
    (2, 4, 5, 6, 3, 3, 3, 1, 0, 0, 1, 1),                   # odd sizes
    (1, 4, 5, 5, 3, 3, 3, 2, 1, 1, 1, 1),                   # batch 1, the 2x upsampling shape
    (2, 6, 4, 5, 2, 3, 2, 2, 1, 1, 3, 1),                   # groups 3, non-square kernel
    (2, 3, 4, 4, 4, 4, 4, 2, 1, 0, 1, 1),                   # k4 s2 p1: U-Net's upsampling
    (1, 2, 3, 4, 2, 3, 3, (2, 3), (1, 2), (1, 2), 1, (1, 2)),  # asymmetric pairs
    (2, 2, 3, 3, 3, 3, 3, 1, 2, 1, 1, 2),                   # output_padding >= stride (< dilation)
    (2, 3, 4, 4, 5, 1, 1, 1, 0, 0, 1, 1),                   # 1x1
    (1, 2, 1, 1, 3, 2, 2, 5, 0, 3, 1, 1),                   # 1x1 input, large stride
    (3, 16, 6, 7, 16, 3, 3, 1, 1, 0, 1, 1),                 # Winograd shape (3x3 stride 1, 16 channels)
    (2, 1, 7, 7, 32, 5, 5, 1, 2, 0, 1, 1),                  # C_in = 1: conv2d's direct kernels
]
IDS = [str(c) for c in CASES]


def _data(rng, case):
    N, Cin, H, W, Cog, R, S, stride, padding, opad, groups, dilation = case
    x = rng.standard_normal((N, Cin, H, W)).astype(np.float32)
    w = rng.standard_normal((Cin, Cog, R, S)).astype(np.float32)
    b = rng.standard_normal(Cog * groups).astype(np.float32)
    return x, w, b, dict(stride=stride, padding=padding, output_padding=opad, groups=groups, dilation=dilation)


def check_all(device, x, w, b, p, rng, what):
    f64 = [a.astype(np.float64) for a in (x, w, b)]
    Cin, Cog, R, S = w.shape
    G = p["groups"]
    y = fl.conv_transpose2d(device.put(x), device.put(w), device.put(b), **p)
    want = ref.conv_transpose2d(*f64, **p)
    assert_close(y, want, reduction_tol(Cin // G * R * S), f"{what} forward")
    g = rng.standard_normal(want.shape).astype(np.float32)
    gx, gw, gb = fl.conv_transpose2d_backward(device.put(g), device.put(x), device.put(w), **p)
    rx, rw, rb = ref.conv_transpose2d_backward(g.astype(np.float64), f64[0], f64[1], **p)
    red = want.shape[0] * want.shape[2] * want.shape[3]
    assert_close(gx, rx, reduction_tol(max(Cog, Cin // G) * R * S), f"{what} grad_x")
    assert_close(gw, rw, reduction_tol(red), f"{what} grad_w")
    assert_close(gb, rb, reduction_tol(red), f"{what} grad_b")
    for a in (y, gx, gw, gb):
        assert a.dtype == np.float32 and a.flags.c_contiguous


@pytest.mark.parametrize("winograd", ["auto", "1"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv_transpose2d_matches_reference(device, rng, monkeypatch, case, winograd):
    if winograd != "auto":
        if device.name != "cpu":
            pytest.skip("FASTLAYERS_CONV_WINOGRAD is the CPU's knob")
        monkeypatch.setenv("FASTLAYERS_CONV_WINOGRAD", winograd)
    x, w, b, p = _data(rng, case)
    check_all(device, x, w, b, p, rng, f"{case} winograd={winograd}")


@pytest.mark.parametrize("threads", [1, 2])
def test_conv_transpose2d_threads(device, rng, threads):
    with num_threads(threads):
        for case in (CASES[1], CASES[8]):
            x, w, b, p = _data(rng, (1,) + case[1:])  # batch 1: parallel inside one image
            check_all(device, x, w, b, p, rng, f"{case} threads={threads}")


def test_conv_transpose2d_output_padding_limits(rng):
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    for stride, dilation, op in [(2, 1, 1), (1, 2, 1), (2, 3, 2), (3, 1, 2)]:  # largest allowed
        y = fl.conv_transpose2d(x, w, stride=stride, dilation=dilation, output_padding=op)
        assert_close(y, ref.conv_transpose2d(x, w, stride=stride, dilation=dilation, output_padding=op),
                     reduction_tol(18), f"s{stride} d{dilation} op{op}")
    for stride, dilation, op in [(1, 1, 1), (2, 1, 2), (2, 2, 2), (1, 3, 3)]:
        with pytest.raises(ValueError, match=r"output_padding must be smaller than either stride or dilation"):
            fl.conv_transpose2d(x, w, stride=stride, dilation=dilation, output_padding=op)
    with pytest.raises(ValueError, match=r"output_padding must be non-negative"):
        fl.conv_transpose2d(x, w, stride=2, output_padding=-1)


def test_conv_transpose2d_unbatched_and_empty(device, rng):
    x, w, b, p = _data(rng, CASES[1])
    y = fl.conv_transpose2d(device.put(x[0]), device.put(w), device.put(b), **p)
    assert_close(y, ref.conv_transpose2d(x[:1], w, b, **p)[0], reduction_tol(36), "unbatched")
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, gb = fl.conv_transpose2d_backward(device.put(g), device.put(x[0]), device.put(w), **p)
    rx, rw, rb = ref.conv_transpose2d_backward(g[None], x[:1], w, **p)
    assert gx.shape == x[0].shape
    assert_close(gx, rx[0], reduction_tol(36), "unbatched grad_x")
    assert_close(gw, rw, reduction_tol(y.size), "unbatched grad_w")
    assert fl.conv_transpose2d(device.put(x[:0]), device.put(w), **p).shape == (0,) + y.shape
    _, gw0, gb0 = fl.conv_transpose2d_backward(device.put(g[None][:0]), device.put(x[:0]), device.put(w), **p)
    assert not np.any(device.get(gw0)) and not np.any(device.get(gb0))


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(x=np.zeros((4, 5), np.float32)), ValueError, r"x must be 4-D \(N, C_in, H, W\) or 3-D unbatched"),
    (dict(w=np.zeros((4, 3, 3), np.float32)), ValueError, r"w must be 4-D \(C_in, C_out/groups, R, S\)"),
    (dict(w=np.zeros((3, 3, 3, 3), np.float32)), ValueError, r"w.shape\[0\] must be x's C_in = 4, got 3"),
    (dict(groups=3), ValueError, r"x has C_in=4 channels, which groups=3 does not divide"),
    (dict(stride=0), ValueError, r"stride must be positive"),
    (dict(padding=(1, 2, 3)), ValueError, r"padding must be an int or a sequence of 2 ints"),
    (dict(padding=3), ValueError, r"padding: the output height .* would be empty"),
    (dict(padding=2**40, stride=2**41), ValueError, r"stride / padding: .* padded height extent"),
    (dict(b=np.zeros(4, np.float32)), ValueError, r"b must have shape \(3,\), got \(4,\)"),
])
def test_conv_transpose2d_bad_input(kwargs, err, match):
    args = dict(x=np.zeros((2, 4, 3, 3), np.float32), w=np.zeros((4, 3, 3, 3), np.float32), b=None)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        fl.conv_transpose2d(**args)


def test_conv_transpose2d_extreme_stride(rng):
    # One input row: the stride never multiplies, any stride (below output_padding's bound) is exact.
    x = rng.standard_normal((2, 3, 1, 4)).astype(np.float32)
    w = rng.standard_normal((3, 2, 2, 3)).astype(np.float32)
    for stride in ((2**63 - 1, 1), (2**70, 2)):
        y = fl.conv_transpose2d(x, w, stride=stride, output_padding=(5, 0))
        assert_close(y, ref.conv_transpose2d(x, w, stride=(6, stride[1]), output_padding=(5, 0)),
                     reduction_tol(18), f"stride {stride}")


def test_conv_transpose2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for case in (CASES[2], CASES[4], CASES[5], CASES[8]):
        x, w, b, p = _data(rng, case)
        tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        ty = F.conv_transpose2d(tx, tw, tb, **p)
        assert_close(fl.conv_transpose2d(x, w, b, **p), ty.detach().numpy(), 2 * reduction_tol(w[:, 0].size),
                     f"{case}")
        g = rng.standard_normal(ty.shape).astype(np.float32)
        grads = torch.autograd.grad(ty, (tx, tw, tb), torch.from_numpy(g))
        for ours, theirs, n in zip(fl.conv_transpose2d_backward(g, x, w, **p), grads, "xwb"):
            assert_close(ours, theirs.numpy(), 2 * reduction_tol(ty.numel()), f"{case} grad_{n}")
