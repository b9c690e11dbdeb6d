"""conv1d / conv2d options: padding="same"/"valid" (uneven "same" split as PyTorch, dilation),
padding_mode zeros/reflect/replicate/circular, unbatched input; forward and backward, against the
reference on every backend, the reference against finite differences (float64) and against PyTorch
(torch.nn.Conv1d/Conv2d with padding_mode; F.conv1d/F.conv2d for the padding strings).

Tolerances as tests/ops/test_conv.py: reduction_tol of the longest sum (C/groups*R*S forward,
K/groups*R*S for grad_x, N*P*Q for grad_w and grad_b); pad/pad_backward add no rounding of their own
beyond sums of a few terms (reflect folds at most 3 cells into one)."""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, assert_grad_matches, reduction_tol

MODES = ["zeros", "reflect", "replicate", "circular"]

# (x shape, w shape, stride, padding, dilation, groups, padding_mode)
CASES2 = [
    ((2, 3, 7, 9), (4, 3, 3, 3), 1, "same", 1, 1, "zeros"),
    ((2, 3, 7, 9), (4, 3, 4, 2), 1, "same", 1, 1, "zeros"),       # even kernels: uneven split
    ((1, 2, 8, 8), (3, 2, 2, 3), 1, "same", (3, 2), 1, "zeros"),  # dilation: 3 and 4 total
    ((2, 4, 6, 7), (4, 2, 3, 3), 2, "valid", 1, 2, "zeros"),
    ((2, 3, 7, 9), (4, 3, 3, 3), 1, 1, 1, 1, "reflect"),
    ((2, 3, 7, 9), (4, 3, 3, 5), (2, 1), (2, 3), 1, 1, "reflect"),  # reflect up to size - 1 ... and stride
    ((1, 2, 4, 5), (2, 2, 3, 3), 1, (3, 4), 1, 1, "reflect"),     # reflect at its maximum pad
    ((2, 3, 7, 9), (4, 3, 4, 4), 1, "same", 1, 1, "reflect"),     # uneven same, reflect
    ((2, 3, 6, 6), (6, 1, 3, 3), 1, "same", 2, 3, "replicate"),   # groups, dilation
    ((1, 2, 5, 5), (2, 2, 3, 3), 1, 4, 1, 1, "replicate"),        # replicate beyond the size
    ((2, 3, 7, 9), (4, 3, 3, 3), 1, (1, 2), 1, 1, "circular"),
    ((1, 2, 4, 5), (2, 2, 3, 3), 1, (4, 5), 1, 1, "circular"),    # circular wraps a whole period
    ((2, 3, 7, 9), (4, 3, 2, 4), 1, "same", 1, 1, "circular"),
    ((2, 3, 7, 9), (4, 3, 3, 3), 1, 0, 1, 1, "reflect"),          # padding 0: no pad at all
    ((3, 7, 9), (4, 3, 3, 3), 1, 1, 1, 1, "zeros"),              # unbatched
    ((3, 7, 9), (4, 3, 2, 3), 1, "same", 1, 1, "circular"),      # unbatched, options
    ((3, 7, 9), (4, 3, 3, 3), 2, "valid", 1, 1, "reflect"),
]
# (x shape, w shape, stride, padding, dilation, groups, padding_mode)
CASES1 = [
    ((2, 3, 11), (4, 3, 3), 1, "same", 1, 1, "zeros"),
    ((2, 3, 11), (4, 3, 4), 1, "same", 3, 1, "zeros"),
    ((2, 3, 11), (4, 3, 4), 2, "valid", 1, 1, "zeros"),
    ((2, 3, 11), (4, 3, 5), 1, 10, 1, 1, "reflect"),
    ((2, 4, 9), (4, 2, 2), 1, "same", 1, 2, "replicate"),
    ((2, 3, 9), (4, 3, 3), 3, 9, 1, 1, "circular"),
    ((3, 11), (4, 3, 3), 1, 2, 1, 1, "zeros"),                   # unbatched
    ((3, 11), (4, 3, 4), 1, "same", 1, 1, "reflect"),
]


def _data(rng, xs, ws, groups, dtype=np.float32):
    return (rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype),
            rng.standard_normal(ws[0]).astype(dtype))


def _ops(nd, o):
    return (o.conv1d, o.conv1d_backward) if nd == 1 else (o.conv2d, o.conv2d_backward)


def _tols(x, w, y, groups):
    taps = int(np.prod(w.shape[2:]))
    positions = int(np.prod(y.shape)) // w.shape[0]
    return (reduction_tol(w.shape[1] * taps), reduction_tol(max(w.shape[0] // groups, w.shape[1]) * taps * 3),
            reduction_tol(positions))


@pytest.mark.parametrize("nd,case", [(2, c) for c in CASES2] + [(1, c) for c in CASES1])
def test_conv_options_match_reference(device, rng, nd, case):
    xs, ws, stride, padding, dilation, groups, mode = case
    x, w, b = _data(rng, xs, ws, groups)
    fwd, bwd = _ops(nd, fl)
    rfwd, rbwd = _ops(nd, ref)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    want = rfwd(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kw)
    y = fwd(device.put(x), device.put(w), device.put(b), **kw)
    t_y, t_x, t_w = _tols(x, w, want, groups)
    assert_close(y, want, t_y, f"conv{nd}d {case}")
    g = rng.standard_normal(want.shape).astype(np.float32)
    gx, gw, gb = bwd(device.put(g), device.put(x), device.put(w), **kw)
    rgx, rgw, rgb = rbwd(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), **kw)
    assert_close(gx, rgx, t_x, f"grad_x {case}")
    assert_close(gw, rgw, t_w, f"grad_w {case}")
    assert_close(gb, rgb, t_w, f"grad_b {case}")
    nx, nw, nb = bwd(device.put(g), device.put(x), device.put(w), need_grad_x=False, **kw)
    assert nx is None
    assert_close(nw, rgw, t_w, "grad_w without grad_x")


@pytest.mark.parametrize("nd,case", [(2, CASES2[i]) for i in (1, 5, 8, 11, 15)] + [(1, CASES1[i]) for i in (3, 5, 7)])
def test_conv_options_reference_finite_differences(rng, nd, case):
    xs, ws, stride, padding, dilation, groups, mode = case
    x, w, b = _data(rng, xs, ws, groups, np.float64)
    rfwd, rbwd = _ops(nd, ref)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    g = rng.standard_normal(rfwd(x, w, b, **kw).shape)
    gx, gw, gb = rbwd(g, x, w, **kw)
    assert_grad_matches(gx, lambda t: np.sum(g * rfwd(t, w, b, **kw)), x, f"grad_x {case}")
    assert_grad_matches(gw, lambda t: np.sum(g * rfwd(x, t, b, **kw)), w, f"grad_w {case}")


def _torch_module(torch, nd, x, w, b, stride, padding, dilation, groups, mode):
    cls = torch.nn.Conv1d if nd == 1 else torch.nn.Conv2d
    m = cls(w.shape[1] * groups, w.shape[0], w.shape[2:], stride=stride, padding=padding, dilation=dilation,
            groups=groups, padding_mode=mode).double()
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w))
        m.bias.copy_(torch.from_numpy(b))
    return m


def test_conv_options_match_torch_on_random_cases(rng):
    torch = pytest.importorskip("torch")
    import warnings

    checked = 0
    for trial in range(120):
        nd = 1 + int(rng.integers(2))
        groups = int(rng.choice([1, 1, 2]))
        c, k = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        spatial = tuple(int(v) for v in rng.integers(3, 9, nd))
        ksz = tuple(int(v) for v in rng.integers(1, 5, nd))
        dil = tuple(int(v) for v in rng.integers(1, 3, nd))
        mode = MODES[trial % 4]
        padding = ["same", "valid", int(rng.integers(0, 3)), tuple(int(v) for v in rng.integers(0, 3, nd))][trial // 4 % 4]
        stride = 1 if padding == "same" else tuple(int(v) for v in rng.integers(1, 3, nd))
        unbatched = rng.random() < 0.25
        xs = ((c,) if unbatched else (int(rng.integers(1, 3)), c)) + spatial
        x, w, b = _data(rng, xs, (k, c // groups) + ksz, groups, np.float64)
        kw = dict(stride=stride, padding=padding, dilation=dil, groups=groups, padding_mode=mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                m = _torch_module(torch, nd, x, w, b, stride, padding, dil, groups, mode)
                xt = torch.from_numpy(x).requires_grad_()
                yt = m(xt)
            except RuntimeError:  # the kernel does not fit, or reflect pad >= size
                with pytest.raises(ValueError):
                    _ops(nd, fl)[0](x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), **kw)
                continue
        g = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.from_numpy(g))
        fwd, bwd = _ops(nd, fl)
        y = fwd(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), **kw)
        t_y, t_x, t_w = _tols(x, w, yt.detach().numpy(), groups)
        assert_close(y, yt.detach().numpy(), t_y, f"conv{nd}d forward vs torch {kw} x{xs}")
        gx, gw, gb = bwd(g.astype(np.float32), x.astype(np.float32), w.astype(np.float32), **kw)
        assert_close(gx, xt.grad.numpy(), t_x, f"grad_x vs torch {kw} x{xs}")
        assert_close(gw, m.weight.grad.numpy(), t_w, f"grad_w vs torch {kw}")
        assert_close(gb, m.bias.grad.numpy(), t_w, f"grad_b vs torch {kw}")
        checked += 1
    assert checked > 60


def test_functional_padding_strings_match_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b = _data(rng, (2, 3, 9, 8), (4, 3, 4, 3), 1, np.float64)
    for padding in ("same", "valid"):
        want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=padding,
                        dilation=(2, 1)).numpy()
        assert_close(fl.conv2d(x, w, b, padding=padding, dilation=(2, 1)), want, reduction_tol(36), padding)
        want1 = F.conv1d(torch.from_numpy(x[0, :, 0]), torch.from_numpy(w[:, :, 0]), padding=padding).numpy()
        assert_close(fl.conv1d(x[0, :, 0], w[:, :, 0], padding=padding), want1, reduction_tol(12), "conv1d unbatched")


@pytest.mark.parametrize("call,exc,match", [
    (lambda x, w: fl.conv2d(x, w, padding="full"), ValueError, "padding must be an int, a tuple of ints, 'valid' or 'same'"),
    (lambda x, w: fl.conv2d(x, w, padding="same", stride=2), ValueError, "padding='same' is not supported for strided"),
    (lambda x, w: fl.conv2d(x, w, padding=1, padding_mode="mirror"), ValueError, "padding_mode must be one of"),
    (lambda x, w: fl.conv2d(x, w, padding=1, padding_mode=None), ValueError, "padding_mode"),
    (lambda x, w: fl.conv2d(x, w, padding=5, padding_mode="reflect"), ValueError, "reflect padding must be smaller"),
    (lambda x, w: fl.conv2d(x, w, padding=-1, padding_mode="reflect"), ValueError, "padding must be non-negative"),
    (lambda x, w: fl.conv2d(x[0, 0], w), ValueError, "x must be 3-D or 4-D"),
    (lambda x, w: fl.conv1d(x[0, 0, 0], w[:, :, 0]), ValueError, "x must be 2-D or 3-D"),
    (lambda x, w: fl.conv2d_backward(np.zeros((4, 5, 5), np.float32), x, w, padding="same"), ValueError, "grad_out"),
    (lambda x, w: fl.conv2d_backward(np.zeros((4, 5), np.float32), x[0], w, padding="same"), ValueError, "grad_out"),
])
def test_conv_option_errors(rng, call, exc, match):
    x, w, _ = _data(rng, (1, 3, 5, 5), (4, 3, 3, 3), 1)
    with pytest.raises(exc, match=match):
        call(x, w)


def test_options_keep_inputs_and_numeric_padding_matches_default_path(rng):
    x, w, b = _data(rng, (2, 3, 7, 9), (4, 3, 3, 3), 1)
    xc, wc = x.copy(), w.copy()
    # "same" with an odd kernel is padding 1: the kernels' own zero padding, bit for bit.
    np.testing.assert_array_equal(fl.conv2d(x, w, b, padding="same"), fl.conv2d(x, w, b, padding=1))
    np.testing.assert_array_equal(fl.conv2d(x[0], w, b, padding=1), fl.conv2d(x[:1], w, b, padding=1)[0])
    fl.conv2d_backward(np.ones((2, 4, 7, 9), np.float32), x, w, padding=1, padding_mode="reflect")
    np.testing.assert_array_equal(x, xc)
    np.testing.assert_array_equal(w, wc)
