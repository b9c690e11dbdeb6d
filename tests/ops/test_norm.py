"""batch_norm / batch_norm_backward / fold_batch_norm kernels against the float64 reference, on every
backend, over the CPU kernels' paths (per-run pieces for S >= 64, the column path for S < 64, whole
channels per thread or slices of every channel when there are few channels, pieces cut inside long
runs), every ISA, and torch.nn.functional.batch_norm.

Tolerance: every output depends on per-channel sums over M = N * S values, so reduction_tol(M)
relative to max(1, max|expected|) (tests/helpers.py).
"""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import Device, assert_close, num_threads, reduction_tol

SHAPES = [
    (2, 3), (37, 5), (5000, 3), (40, 1000),  # (N, C): column path; 5000x3 splits the rows over threads
    (1, 3, 2), (3, 2, 1), (2, 5, 70), (4, 8, 5000), (2, 1, 70000),  # (N, C, L): runs, pieces, C = 1
    (1, 6, 17, 13), (3, 16, 7, 7), (16, 64, 7, 7), (64, 3, 32, 32),  # (N, C, H, W)
    (2, 5, 3, 4, 5), (8, 4, 4, 8, 8),  # (N, C, D, H, W)
]
FEW = [(37, 5), (2, 5, 70), (16, 64, 7, 7), (64, 3, 32, 32), (2, 5, 3, 4, 5)]


def _count(shape):
    return shape[0] * int(np.prod(shape[2:], dtype=np.int64))


def _data(rng, shape, mean=0.5, scale=2.0):
    c = shape[1]
    x = (rng.standard_normal(shape) * scale + mean).astype(np.float32)
    w = (rng.standard_normal(c) + 1).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    rm = rng.standard_normal(c).astype(np.float32)
    rv = (rng.random(c) + 0.5).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    return x, w, b, rm, rv, g


def _check_forward(device, rng, shape, affine=True, training=True, mean=0.5, scale=2.0, momentum=0.1):
    x, w, b, rm, rv, _ = _data(rng, shape, mean, scale)
    if not affine:
        w = b = None
    x0 = x.copy()
    rm_d, rv_d = device.put(rm.copy()), device.put(rv.copy())
    y = fl.batch_norm(device.put(x), rm_d, rv_d, device.put(w), device.put(b), training=training,
                      momentum=momentum)
    rm64, rv64 = rm.astype(np.float64), rv.astype(np.float64)
    want = ref.batch_norm(x.astype(np.float64), rm64, rv64, w, b, training=training, momentum=momentum)
    tol = reduction_tol(_count(shape))
    assert_close(y, want, tol, f"y {shape} training={training}")
    assert_close(rm_d, rm64, tol, "running_mean")
    assert_close(rv_d, rv64, tol, "running_var")
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_forward_matches_reference(device, rng, shape, training):
    _check_forward(device, rng, shape, affine=True, training=training)


@pytest.mark.parametrize("shape", FEW, ids=str)
def test_forward_without_affine(device, rng, shape):
    _check_forward(device, rng, shape, affine=False)
    _check_forward(device, rng, shape, affine=False, training=False)


@pytest.mark.parametrize("shape", [(3, 4), (300, 4, 5), (6, 3, 100), (2, 2, 9000), (4, 3, 3, 50)], ids=str)
def test_large_mean_small_variance(device, rng, shape):
    # mean 1e4, variance 1e-4: E[x^2] - E[x]^2 in float32 would lose every digit of the variance.
    _check_forward(device, rng, shape, mean=1e4, scale=1e-2)
    x, w, _, _, _, g = _data(rng, shape, 1e4, 1e-2)
    gx, gw, gb = fl.batch_norm_backward(device.put(g), device.put(x), device.put(w))
    want = ref.batch_norm_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64))
    tol = reduction_tol(_count(shape))
    for ours, theirs, what in zip((gx, gw, gb), want, ("grad_x", "grad_weight", "grad_bias")):
        assert_close(ours, theirs, tol, f"{what} {shape}")


def _check_backward(device, rng, shape, stats, affine):
    x, w, _, rm, rv, g = _data(rng, shape)
    if not affine:
        w = None
    g0, x0 = g.copy(), x.copy()
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    kw, kw_ref = {}, {}
    if stats == "saved":
        axes = (0,) + tuple(range(2, x.ndim))
        sm = x64.mean(axes).astype(np.float32)
        si = (1 / np.sqrt(x64.var(axes) + 1e-5)).astype(np.float32)
        kw = dict(save_mean=device.put(sm), save_invstd=device.put(si))
        kw_ref = dict(save_mean=sm, save_invstd=si)
    elif stats == "running":
        kw = dict(training=False, running_mean=device.put(rm), running_var=device.put(rv))
        kw_ref = dict(training=False, running_mean=rm, running_var=rv)
    gx, gw, gb = fl.batch_norm_backward(device.put(g), device.put(x), device.put(w), **kw)
    want = ref.batch_norm_backward(g64, x64, None if w is None else w.astype(np.float64), **kw_ref)
    tol = reduction_tol(_count(shape))
    assert_close(gx, want[0], tol, f"grad_x {shape} {stats}")
    if affine:
        assert_close(gw, want[1], tol, f"grad_weight {shape} {stats}")
        assert_close(gb, want[2], tol, f"grad_bias {shape} {stats}")
    else:
        assert gw is None and gb is None
    np.testing.assert_array_equal(g, g0)
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("stats", ["batch", "saved", "running"])
def test_backward_matches_reference(device, rng, shape, stats):
    _check_backward(device, rng, shape, stats, affine=True)


@pytest.mark.parametrize("shape", FEW, ids=str)
@pytest.mark.parametrize("stats", ["batch", "running"])
def test_backward_without_affine(device, rng, shape, stats):
    _check_backward(device, rng, shape, stats, affine=False)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", [(5000, 3), (40, 1000), (2, 1, 70000), (64, 3, 32, 32), (16, 64, 7, 7),
                                   (4, 8, 5000), (70, 64, 8, 8), (9000, 600)], ids=str)
def test_thread_counts(rng, threads, shape):
    # (70, 64, 8, 8) and (9000, 600) have over 4096 pieces: their per-channel merge is shared out.
    with num_threads(threads):
        dev = Device("cpu")
        _check_forward(dev, rng, shape)
        _check_backward(dev, rng, shape, "batch", affine=True)


@pytest.mark.parametrize("shape", [(4, 8, 40, 40), (2, 1, 70000), (5000, 3), (40, 1000), (16, 64, 7, 7),
                                   (70, 64, 8, 8), (9000, 600)], ids=str)
def test_results_do_not_depend_on_threads(rng, shape):
    # The pieces and their merge order are a function of the shape only.
    x, w, b, _, _, g = _data(rng, shape)
    out = []
    for t in (1, 2, 3):
        with num_threads(t):
            out.append((fl.batch_norm(x, None, None, w, b, training=True), *fl.batch_norm_backward(g, x, w)))
    for other in out[1:]:
        for a, b_ in zip(out[0], other):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("shape", [(37, 5), (2, 5, 70), (3, 16, 7, 7), (2, 2, 9000)], ids=str)
def test_every_isa(isa, rng, shape):
    dev = Device("cpu")
    _check_forward(dev, rng, shape)
    _check_forward(dev, rng, shape, training=False)
    for stats in ("batch", "running"):
        _check_backward(dev, rng, shape, stats, affine=True)


def test_torch_cross_check(device, rng):
    torch = pytest.importorskip("torch")
    for shape in [(8, 3), (4, 3, 10), (2, 3, 9, 7), (2, 3, 4, 5, 6)]:
        x, w, b, rm, rv, g = _data(rng, shape)
        tol = reduction_tol(_count(shape))
        for training in (True, False):
            tx = torch.tensor(x, requires_grad=True)
            tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
            trm, trv = torch.tensor(rm), torch.tensor(rv)
            ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.2, eps=1e-4)
            ty.backward(torch.tensor(g))
            rm_d, rv_d = device.put(rm.copy()), device.put(rv.copy())
            y = fl.batch_norm(device.put(x), rm_d, rv_d, device.put(w), device.put(b), training=training,
                              momentum=0.2, eps=1e-4)
            assert_close(y, ty.detach().numpy(), tol, f"y vs torch {shape} {training}")
            assert_close(rm_d, trm.numpy(), tol, "running_mean vs torch")
            assert_close(rv_d, trv.numpy(), tol, "running_var vs torch")
            gx, gw, gb = fl.batch_norm_backward(device.put(g), device.put(x), device.put(w), eps=1e-4,
                                                training=training, running_mean=device.put(rm),
                                                running_var=device.put(rv))
            for ours, theirs, what in ((gx, tx.grad, "grad_x"), (gw, tw.grad, "grad_weight"),
                                       (gb, tb.grad, "grad_bias")):
                assert_close(ours, theirs.numpy(), tol, f"{what} vs torch {shape} {training}")


def test_batch_of_one_and_empty(device, rng):
    rm, rv = device.put(np.zeros(3, np.float32)), device.put(np.ones(3, np.float32))
    for shape in [(1, 3), (1, 3, 1), (1, 3, 1, 1), (1, 3, 1, 1, 1)]:
        with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, "
                                             r"got input size \(1, 3"):
            fl.batch_norm(device.put(np.ones(shape, np.float32)), rm, rv, training=True)
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            fl.batch_norm_backward(device.put(np.ones(shape, np.float32)), device.put(np.ones(shape, np.float32)),
                                   None)
        # eval mode is fine with one value
        y = fl.batch_norm(device.put(np.full(shape, 2.0, np.float32)), rm, rv, training=False)
        assert_close(y, np.full(shape, 2.0 / np.sqrt(1 + 1e-5)), reduction_tol(1), "eval batch 1")
    # one sample with several positions normalises over them (PyTorch allows it)
    _check_forward(device, rng, (1, 3, 5))
    # an empty batch: empty output, running statistics untouched, zero affine gradients
    for shape in [(0, 3), (2, 3, 0)]:
        y = fl.batch_norm(device.put(np.zeros(shape, np.float32)), rm, rv, training=True)
        assert y.shape == shape
        np.testing.assert_array_equal(Device.get(rm), 0)
        np.testing.assert_array_equal(Device.get(rv), 1)
        z = device.put(np.zeros(shape, np.float32))
        gx, gw, gb = fl.batch_norm_backward(z, z, device.put(np.ones(3, np.float32)))
        assert gx.shape == shape
        np.testing.assert_array_equal(Device.get(gw), 0)
        np.testing.assert_array_equal(Device.get(gb), 0)


def test_running_stats_optional_and_non_contiguous_input(rng):
    x = rng.standard_normal((6, 4, 5)).astype(np.float32)
    xt = np.ascontiguousarray(x.transpose(0, 2, 1)).transpose(0, 2, 1)  # same values, strided
    assert not xt.flags.c_contiguous
    y = fl.batch_norm(xt, None, None, training=True)
    assert_close(y, ref.batch_norm(x.astype(np.float64), None, None, training=True), reduction_tol(30), "strided")
    y64 = fl.batch_norm(x.astype(np.float64), None, None, training=True)  # converted to float32
    assert y64.dtype == np.float32
    np.testing.assert_array_equal(y64, fl.batch_norm(x, None, None, training=True))


def test_bad_arguments():
    x = np.ones((4, 3, 2), np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    cases = [
        (lambda: fl.batch_norm(np.ones(3, np.float32), rm, rv), ValueError, "x must be .N, C"),
        (lambda: fl.batch_norm(x, rm, rv, weight=np.ones(4, np.float32)), ValueError, r"weight must have shape \(3,\)"),
        (lambda: fl.batch_norm(x, rm, rv, bias=np.ones((3, 1), np.float32)), ValueError, "bias must have shape"),
        (lambda: fl.batch_norm(x, np.zeros(4, np.float32), rv, training=False), ValueError, "running_mean must have"),
        (lambda: fl.batch_norm(x, np.zeros(3), rv, training=True), TypeError, "running_mean is updated in place"),
        (lambda: fl.batch_norm(x, rm, np.ones(6, np.float32)[::2], training=True), ValueError,
         "running_var is updated in place and must be C-contiguous"),
        (lambda: fl.batch_norm(x, rm, None, training=True), ValueError, "both be None"),
        (lambda: fl.batch_norm(x, None, None, training=False), ValueError, "running_mean and running_var are required"),
        (lambda: fl.batch_norm(x, rm, rv, training=True, eps=0.0), ValueError, "eps must be > 0"),
        (lambda: fl.batch_norm(x, rm, rv, training=False, eps=-1.0), ValueError, "eps must be"),
        (lambda: fl.batch_norm(x, rm, rv, training=True, momentum=None), TypeError, "momentum"),
        (lambda: fl.batch_norm(x, rm, rv, training=True, momentum=float("nan")), ValueError, "momentum"),
        (lambda: fl.batch_norm(x, rm, rv, training="yes"), TypeError, "training must be a bool"),
        (lambda: fl.batch_norm(x.astype(bool), rm, rv), TypeError, "x must have a real numeric dtype"),
        (lambda: fl.batch_norm_backward(np.ones((4, 3, 3), np.float32), x, None), ValueError,
         "grad_out must have shape"),
        (lambda: fl.batch_norm_backward(x, x, None, save_mean=rm), ValueError, "save_mean and save_invstd"),
        (lambda: fl.batch_norm_backward(x, x, None, training=False), ValueError, "running_mean and running_var"),
        (lambda: fl.batch_norm_backward(x, x, None, training=False, running_mean=rm, running_var=rv,
                                        save_mean=rm, save_invstd=rv), ValueError, "save_mean"),
        (lambda: fl.batch_norm_backward(x, x, np.ones(2, np.float32)), ValueError, "weight must have shape"),
        (lambda: fl.fold_batch_norm(np.ones(3, np.float32), None, rm, rv), ValueError, "conv_w must be"),
        (lambda: fl.fold_batch_norm(np.ones((4, 2), np.float32), None, rm, rv), ValueError,
         r"running_mean must have shape \(4,\)"),
        (lambda: fl.fold_batch_norm(np.ones((3, 2), np.float32), np.ones(2, np.float32), rm, rv), ValueError, "conv_b"),
        (lambda: fl.fold_batch_norm(np.ones((3, 2), np.float32), None, None, rv), ValueError, "required"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()


def test_running_stats_must_not_alias_other_arguments():
    x = np.ones((3, 3), np.float32)
    rv = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="running_mean is updated in place and must not share memory with x"):
        fl.batch_norm(x, x[0], rv, training=True)
    both = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="must not share memory"):
        fl.batch_norm(x, both, both, training=True)
    w = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="with weight"):
        fl.batch_norm(np.arange(12, dtype=np.float32).reshape(4, 3), w, rv, w, training=True)


@pytest.mark.parametrize("with_opt", [True, False])
def test_fold_batch_norm(device, rng, with_opt):
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    cw = (rng.standard_normal((5, 3, 3, 3)) * 0.3).astype(np.float32)
    cb = rng.standard_normal(5).astype(np.float32) if with_opt else None
    rm, rv = rng.standard_normal(5).astype(np.float32), (rng.random(5) + 0.3).astype(np.float32)
    w = (rng.standard_normal(5) + 1).astype(np.float32) if with_opt else None
    b = rng.standard_normal(5).astype(np.float32) if with_opt else None
    args = [device.put(a) for a in (cw, cb, rm, rv, w, b)]
    fw, fb = fl.fold_batch_norm(*args, eps=1e-3)
    want_w, want_b = ref.fold_batch_norm(*(None if a is None else a.astype(np.float64) for a in (cw, cb, rm, rv, w, b)),
                                         eps=1e-3)
    assert_close(fw, want_w, reduction_tol(1), "folded weight")
    assert_close(fb, want_b, reduction_tol(1), "folded bias")
    # conv with the folded weights == conv then eval batch norm, on the kernels
    xd = device.put(x)
    unfolded = fl.batch_norm(fl.conv2d(xd, args[0], args[1], padding=1), args[2], args[3], args[4], args[5],
                             training=False, eps=1e-3)
    assert_close(fl.conv2d(xd, fw, fb, padding=1), Device.get(unfolded), reduction_tol(27), "conv(folded)")
    # a linear layer's weight (out, in), and a conv3d-shaped one
    lw = rng.standard_normal((5, 7)).astype(np.float32)
    fw, fb = fl.fold_batch_norm(device.put(lw), None, args[2], args[3])
    assert_close(fw, ref.fold_batch_norm(lw.astype(np.float64), None, rm, rv)[0], reduction_tol(1), "linear fold")
    w3 = rng.standard_normal((5, 2, 3, 3, 3)).astype(np.float32)
    fw, _ = fl.fold_batch_norm(device.put(w3), None, args[2], args[3])
    assert_close(fw, ref.fold_batch_norm(w3.astype(np.float64), None, rm, rv)[0], reduction_tol(1), "conv3d fold")
