"""Checked geometry of conv2d / conv1d (issue #17): every size, stride, padding and dilation is an
int64, every derived size is at most ops.conv.MAX_ELEMENTS, and a stride or dilation that cannot
change the result is clamped before it reaches the kernels. Huge values give the reference's
answer or a ValueError naming the argument; the bindings refuse bad tuples on their own."""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import _cpu
from fastlayers import reference as ref
from fastlayers.ops import conv as conv_ops

from ..helpers import assert_close, reduction_tol

BIG = 2**63 - 1


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_limit_is_the_same_in_python_and_cpp():
    assert conv_ops.MAX_ELEMENTS == _cpu.CONV_MAX_ELEMENTS == 2**48


# (x shape, w shape, stride, padding, dilation): strides/dilations far past the padded input.
HUGE = [
    ((2, 1, 9, 11), (8, 1, 5, 5), (BIG, 1), (1, 0), 1),     # the SIGSEGV
    ((1, 1, 50, 60), (1, 1, 3, 3), BIG, 2, 1),              # the double free (backward)
    ((1, 1, 5, 5), (1, 1, 3, 3), BIG, 2, 1),                # the read before the array
    ((2, 3, 7, 8), (4, 3, 3, 2), (2**62, 2**40), (1, 3), 1),
    ((2, 3, 7, 8), (4, 3, 1, 1), 1, 0, (BIG, 2**62)),       # 1x1 kernel: dilation unused
    ((2, 3, 7, 8), (4, 3, 1, 3), (3, BIG), (0, 1), (BIG, 3)),
    ((3, 2, 4, 4), (8, 2, 4, 4), BIG, 0, 1),                # kernel = input, one output
    ((2, 16, 6, 6), (32, 16, 3, 3), BIG, 1, 1),             # channels enough for the Winograd/direct paths
    ((2, 1, 28, 28), (32, 1, 5, 5), (BIG, 3), 0, 1),
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation", HUGE, ids=[str(c) for c in HUGE])
def test_huge_stride_and_dilation_match_reference(rng, xs, ws, stride, padding, dilation):
    x, w, b = _rand(rng, *xs), _rand(rng, *ws), _rand(rng, ws[0])
    params = dict(stride=stride, padding=padding, dilation=dilation)
    f64 = [a.astype(np.float64) for a in (x, w, b)]
    y = fl.conv2d(x, w, b, **params)
    expect = ref.conv2d(*f64, **params)
    K, Cg, R, S = ws
    assert_close(y, expect, reduction_tol(Cg * R * S), "forward")
    g = _rand(rng, *expect.shape)
    got = fl.conv2d_backward(g, x, w, **params)
    want = ref.conv2d_backward(g.astype(np.float64), f64[0], f64[1], **params)
    N, _, P, Q = expect.shape
    for a, e, tol, what in zip(got, want, (reduction_tol(max(Cg, K) * R * S), reduction_tol(N * P * Q),
                                          reduction_tol(N * P * Q)), ("grad_x", "grad_w", "grad_b")):
        assert_close(a, e, tol, what)


def test_nan_before_the_array_is_never_read():
    # The reproducer: a view two floats into a NaN buffer; a stride of 2**63-1 used to read
    # buf[0:2] (im2col_segment). The 1x1 output is the one real cell under the window.
    buf = np.full(27, np.nan, np.float32)
    buf[2:] = 1
    x = buf[2:].reshape(1, 1, 5, 5)
    y = fl.conv2d(x, np.ones((1, 1, 3, 3), np.float32), stride=BIG, padding=2)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 1.0
    gx, gw, gb = fl.conv2d_backward(np.ones((1, 1, 1, 1), np.float32), x, np.ones((1, 1, 3, 3), np.float32),
                                    stride=BIG, padding=2)
    assert np.isfinite(gx).all() and np.isfinite(gw).all()
    y1 = fl.conv1d(buf[2:].reshape(1, 1, 25), np.ones((1, 1, 3), np.float32), stride=BIG, padding=2)
    assert y1.shape == (1, 1, 1) and y1[0, 0, 0] == 1.0


def test_conv1d_huge_geometry_matches_reference(rng):
    x, w = _rand(rng, 2, 3, 17), _rand(rng, 4, 3, 3)
    for params in (dict(stride=BIG, padding=5), dict(stride=2**40, dilation=7), dict(stride=(BIG,), padding=(1,))):
        y = fl.conv1d(x, w, **params)
        assert_close(y, ref.conv1d(x.astype(np.float64), w.astype(np.float64), **params), reduction_tol(9), str(params))
        g = _rand(rng, *y.shape)
        got = fl.conv1d_backward(g, x, w, **params)
        want = ref.conv1d_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), **params)
        for a, e in zip(got, want):
            assert_close(a, e, reduction_tol(64), str(params))


@pytest.mark.parametrize("kwargs, match", [
    (dict(stride=2**64), r"stride must fit in a 64-bit signed integer.*18446744073709551616"),
    (dict(stride=(1, 2**63)), r"stride must fit in a 64-bit signed integer"),
    (dict(stride=-2**64), r"stride must fit in a 64-bit"),
    (dict(padding=2**62), r"padding=\(4611686018427387904, 4611686018427387904\) is too large"),
    (dict(padding=2**63), r"padding must fit in a 64-bit"),
    (dict(padding=(0, 2**48)), r"padding=\(0, 281474976710656\) is too large: the padded input is 6x562949953421318"),
    (dict(dilation=2**64), r"dilation must fit in a 64-bit"),
    (dict(dilation=2**62), r"w: the kernel 3x3 \(dilation 4611686018427387904x4611686018427387904"),
    (dict(groups=2**64), r"groups must fit in a 64-bit"),
    (dict(groups=2**62), r"x has C=4 channels, which groups=4611686018427387904 does not divide"),
    # derived sizes: padded planes, im2col matrix, output
    (dict(padding=2**23), r"padding \(8388608, 8388608\): the padded input planes .* more than the 281474976710656"),
    (dict(padding=3 * 2**19), r"padding \(1572864, 1572864\): one image's im2col matrix .* elements"),
])
def test_geometry_errors_name_the_argument(kwargs, match):
    x, w = np.ones((2, 4, 6, 6), np.float32), np.ones((6, 4, 3, 3), np.float32)
    args = dict(stride=1, padding=0, dilation=1, groups=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fl.conv2d(x, w, **args)
    with pytest.raises(ValueError, match=match):
        fl.conv2d_backward(np.ones((2, 6, 4, 4), np.float32), x, w, **args)


def test_conv1d_geometry_errors_name_the_argument():
    x, w = np.ones((2, 4, 10), np.float32), np.ones((6, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"stride must fit in a 64-bit"):
        fl.conv1d(x, w, stride=2**64)
    with pytest.raises(ValueError, match=r"padding=\(0, 4611686018427387904\) is too large"):
        fl.conv1d(x, w, padding=2**62)
    with pytest.raises(ValueError, match=r"dilation must fit"):
        fl.conv1d_backward(np.ones((2, 6, 8), np.float32), x, w, dilation=(2**70,))


def test_empty_spatial_or_channel_sizes_are_refused():
    w = np.ones((2, 1, 1, 1), np.float32)
    for xs in ((1, 1, 0, 5), (1, 1, 5, 0), (1, 0, 5, 5)):
        with pytest.raises(ValueError, match=r"x must have positive sizes C, H and W|w.shape\[1\]"):
            fl.conv2d(np.ones(xs, np.float32), w, padding=1)


def _tuple(**kw):
    base = dict(N=1, C=1, H=5, W=5, K=1, R=3, S=3, P=3, Q=3, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1, g=1)
    base.update(kw)
    return tuple(base.values())


@pytest.mark.parametrize("bad", [
    dict(sh=6, P=1),                      # stride past the (unclamped) padded input
    dict(P=4),                            # P disagrees with the formula
    dict(ph=2**62, P=2**63 - 3),          # padded extent overflows
    dict(dh=2**62, P=1),                  # dilated kernel overflows
    dict(H=0),
    dict(N=-1),
    dict(g=2),
    dict(C=2**40, H=2**20, W=2**20, P=2**20 - 2, Q=2**20 - 2, K=1),  # planes past 2**48
])
def test_bindings_refuse_bad_tuples(bad):
    shape = _tuple(**bad)
    with pytest.raises(ValueError, match=r"conv2d: invalid geometry"):
        _cpu.conv2d_workspace_floats(shape, 0, 1)
    buf = np.zeros(64, np.float32)
    for call in (lambda: _cpu.conv2d_forward(buf, buf, 0, buf, buf, 64, shape),
                 lambda: _cpu.conv2d_backward_data(buf, buf, buf, buf, 64, shape),
                 lambda: _cpu.conv2d_backward_weight(buf, buf, buf, buf, buf, 64, shape)):
        with pytest.raises(ValueError, match=r"conv2d: invalid geometry"):
            call()


def test_bindings_accept_the_good_tuple():
    assert _cpu.conv2d_workspace_floats(_tuple(), 0, 1) >= 0
