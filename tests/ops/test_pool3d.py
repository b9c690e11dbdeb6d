"""max_pool3d / avg_pool3d kernels against the float64 reference (and torch), on every backend.

Max pooling and its indices are exact (a selection); the average pools sum at most k^3 values
(reduction_tol(kd*kh*kw)), their backward passes add at most that many window shares per cell.
"""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, num_threads, reduction_tol

# (x shape, kwargs). Values are rounded to quarters below, so windows hold ties (first maximum wins).
MAX_CASES = [
    ((2, 3, 4, 4, 4), dict(kernel_size=2)),
    ((1, 2, 7, 6, 9), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 1, 5, 6, 7), dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=(1, 1, 0), dilation=(1, 2, 1))),
    ((1, 2, 7, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 3, 7, 5, 8), dict(kernel_size=2, stride=3, ceil_mode=True)),       # gaps between windows
    ((1, 1, 5, 5, 5), dict(kernel_size=3, stride=1, padding=1)),            # overlapping windows
    ((3, 2, 1, 1, 1), dict(kernel_size=1)),
    ((1, 1, 2, 2, 2), dict(kernel_size=2, stride=1, padding=1, dilation=3)),  # all-padding window
    ((2, 2, 9, 10, 11), dict(kernel_size=(2, 3, 2), stride=(1, 2, 3), padding=(1, 1, 1), dilation=2,
                             ceil_mode=True)),
]
AVG_CASES = [
    ((2, 3, 4, 4, 4), dict(kernel_size=2)),
    ((1, 2, 7, 6, 9), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 7, 6, 9), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ((2, 1, 7, 7, 6), dict(kernel_size=(3, 2, 3), stride=(2, 3, 1), padding=(1, 1, 0), ceil_mode=True)),
    ((2, 1, 7, 7, 6), dict(kernel_size=(3, 2, 3), stride=(2, 3, 1), padding=(1, 1, 0), ceil_mode=True,
                           count_include_pad=False)),
    ((1, 3, 7, 5, 8), dict(kernel_size=2, stride=3, ceil_mode=True, divisor_override=3)),
    ((1, 1, 5, 5, 5), dict(kernel_size=3, stride=1, padding=1, divisor_override=-2)),
]


def _x(rng, shape):
    return np.round(rng.standard_normal(shape) * 4).astype(np.float32) / 4


@pytest.mark.parametrize("shape,kw", MAX_CASES, ids=[str(k) for _, k in MAX_CASES])
def test_max_pool3d_matches_reference(device, rng, shape, kw):
    x = _x(rng, shape)
    y, idx = fl.max_pool3d(device.put(x), **kw, return_indices=True)
    ry, ridx = ref.max_pool3d(x.astype(np.float64), **kw, return_indices=True)
    assert np.array_equal(device.get(y), ry.astype(np.float32)) and device.get(idx).dtype == np.int64
    assert np.array_equal(device.get(idx), ridx)
    g = rng.standard_normal(ry.shape).astype(np.float32)
    assert_close(fl.max_pool3d_backward(device.put(g), device.put(x), **kw),
                 ref.max_pool3d_backward(g.astype(np.float64), x, **kw), reduction_tol(27), "grad")
    # From the forward's indices (no argmax): the same gradient, also from the reference.
    assert_close(fl.max_pool3d_backward(device.put(g), device.put(x), **kw, indices=idx),
                 ref.max_pool3d_backward(g.astype(np.float64), x, **kw), reduction_tol(27), "grad from indices")
    assert_close(ref.max_pool3d_backward(g.astype(np.float64), x, **kw, indices=ridx),
                 ref.max_pool3d_backward(g.astype(np.float64), x, **kw), 0.0, "reference from indices")


def test_max_pool3d_backward_indices_routes_and_checks(device, rng):
    """indices decide alone (x gives only the shape); a wrong shape, a float dtype or an index past the
    volume is a clear error (on the CPU: CUDA skips out-of-range indices without a host sync). An index
    to a cell outside its own window is scattered there on the CPU; CUDA gathers over the covering
    windows (deterministic, no atomics), so there it adds nothing."""
    x = _x(rng, (2, 3, 4, 4, 4))
    y, idx = fl.max_pool3d(x, 2, return_indices=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    window = [(t * 4 + r) * 4 + s for t in (0, 1) for r in (0, 1) for s in (0, 1)]  # window (0, 0, 0)'s cells
    inside = next(c for c in window if c != idx[0, 0, 0, 0, 0])
    for target, what in [(inside, "index moved within its window"), (63, "index moved outside its window")]:
        moved = idx.copy()
        moved[0, 0, 0, 0, 0] = target  # route that window's gradient to another cell
        gi = device.get(fl.max_pool3d_backward(device.put(g), device.put(np.zeros_like(x)), 2,
                                               indices=device.put(moved)))
        want = fl.max_pool3d_backward(g, x, 2)
        flat = want.reshape(2, 3, -1)
        flat[0, 0, idx[0, 0, 0, 0, 0]] -= g[0, 0, 0, 0, 0]
        if target == inside or device.name == "cpu":
            flat[0, 0, target] += g[0, 0, 0, 0, 0]
        assert_close(gi, want, 1e-6, what)
    gu = device.get(fl.max_pool3d_backward(device.put(g[0]), device.put(x[0]), 2, indices=device.put(idx[0])))
    assert_close(gu, fl.max_pool3d_backward(g, x, 2)[0], 0.0, "unbatched")
    with pytest.raises(ValueError, match="indices must have shape"):
        fl.max_pool3d_backward(device.put(g), device.put(x), 2, indices=device.put(idx[:1]))
    with pytest.raises(TypeError, match="indices"):
        fl.max_pool3d_backward(device.put(g), device.put(x), 2, indices=device.put(idx.astype(np.float32)))
    if device.name == "cpu":
        bad = idx.copy()
        bad[1, 2, 1, 1, 1] = 64
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 64\)"):
            fl.max_pool3d_backward(g, x, 2, indices=bad)


@pytest.mark.parametrize("shape,kw", AVG_CASES, ids=[str(k) for _, k in AVG_CASES])
def test_avg_pool3d_matches_reference(device, rng, shape, kw):
    x = rng.standard_normal(shape).astype(np.float32)
    k = np.prod(kw["kernel_size"])
    assert_close(fl.avg_pool3d(device.put(x), **kw), ref.avg_pool3d(x.astype(np.float64), **kw), reduction_tol(k),
                 "forward")
    g = rng.standard_normal(ref.avg_pool3d(x, **kw).shape).astype(np.float32)
    assert_close(fl.avg_pool3d_backward(device.put(g), device.put(x), **kw),
                 ref.avg_pool3d_backward(g.astype(np.float64), x, **kw), reduction_tol(k), "backward")


@pytest.mark.parametrize("threads", [1, 2])
def test_pool3d_threads_and_large_planes(device, rng, threads):
    with num_threads(threads):
        x = _x(rng, (2, 3, 12, 20, 24))  # enough cells to go parallel
        for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)):
            assert np.array_equal(device.get(fl.max_pool3d(device.put(x), **kw)), ref.max_pool3d(x, **kw))
            g = rng.standard_normal(ref.max_pool3d(x, **kw).shape).astype(np.float32)
            assert_close(fl.max_pool3d_backward(device.put(g), device.put(x), **kw),
                         ref.max_pool3d_backward(g.astype(np.float64), x, **kw), reduction_tol(27), "max grad")
            assert_close(fl.avg_pool3d(device.put(x), **kw), ref.avg_pool3d(x.astype(np.float64), **kw),
                         reduction_tol(27), "avg")


def test_pool3d_nan_unbatched_and_empty(device, rng):
    x = np.zeros((1, 1, 2, 2, 2), np.float32)
    x[0, 0, 0, 0, 1] = x[0, 0, 1, 1, 0] = np.nan
    y, idx = fl.max_pool3d(device.put(x), 2, return_indices=True)
    assert np.isnan(device.get(y)).all() and int(device.get(idx).ravel()[0]) == 6  # the last NaN, as torch
    gi = device.get(fl.max_pool3d_backward(device.put(np.ones((1, 1, 1, 1, 1), np.float32)), device.put(x), 2))
    assert gi.ravel()[6] == 1 and gi.sum() == 1
    u = _x(rng, (3, 4, 6, 5))  # (C, D, H, W)
    assert np.array_equal(device.get(fl.max_pool3d(device.put(u), 2)), ref.max_pool3d(u, 2))
    assert device.get(fl.avg_pool3d_backward(device.put(np.ones((3, 2, 3, 2), np.float32)), device.put(u), 2)).shape \
        == u.shape
    assert fl.max_pool3d(device.put(np.zeros((0, 2, 4, 4, 4), np.float32)), 2).shape == (0, 2, 2, 2, 2)


@pytest.mark.parametrize("call,err,match", [
    (lambda x: fl.max_pool3d(x, 3, padding=2), ValueError, r"padding must be at most half the kernel size"),
    (lambda x: fl.max_pool3d(x, (2, 2)), ValueError, r"kernel_size must be an int or a sequence of 3 ints"),
    (lambda x: fl.max_pool3d(x, 0), ValueError, r"kernel_size must be positive"),
    (lambda x: fl.max_pool3d(x, 2, stride=0), ValueError, r"stride must be positive"),
    (lambda x: fl.max_pool3d(x, 9), ValueError, r"kernel_size: the window's depth extent 9"),
    (lambda x: fl.max_pool3d(x, 2, dilation=2**63 - 1), ValueError, r"dilation: the window's depth extent"),
    (lambda x: fl.max_pool3d(x, 2**42, padding=2**41), ValueError, r"padding / kernel_size: the padded depth"),
    (lambda x: fl.max_pool3d(x, 2, ceil_mode=1), TypeError, r"ceil_mode must be a bool"),
    (lambda x: fl.max_pool3d(x, 2, return_indices="yes"), TypeError, r"return_indices must be a bool"),
    (lambda x: fl.avg_pool3d(x, 2, divisor_override=0), ValueError, r"divisor_override must be a non-zero int"),
    (lambda x: fl.avg_pool3d(x, 2, count_include_pad=None), TypeError, r"count_include_pad must be a bool"),
    (lambda x: fl.max_pool3d(x[0, 0], 2), ValueError, r"x must be 5-D \(N, C, D, H, W\) or 4-D unbatched"),
    (lambda x: fl.max_pool3d_backward(np.zeros((1, 2, 2, 2, 3), np.float32), x, 2), ValueError,
     r"grad_out must have shape \(1, 2, 2, 2, 2\), got \(1, 2, 2, 2, 3\)"),
])
def test_pool3d_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call(np.zeros((1, 2, 4, 4, 4), np.float32))


def test_pool3d_huge_stride_is_exact(rng):
    # One window along an axis: the stride never multiplies, so any value gives the right answer.
    x = _x(rng, (1, 2, 3, 4, 5))
    y = fl.max_pool3d(x, (3, 2, 2), stride=(2**63 - 1, 2, 2**70))
    assert np.array_equal(y, ref.max_pool3d(x, (3, 2, 2), stride=(5, 2, 9)))
    assert_close(fl.avg_pool3d(x, (3, 2, 5), stride=2**64), ref.avg_pool3d(x.astype(np.float64), (3, 2, 5),
                                                                            stride=(5, 5, 5)), reduction_tol(30), "avg")


def test_pool3d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for shape, kw in MAX_CASES[:5]:
        x = _x(rng, shape)
        tx = torch.from_numpy(x).requires_grad_()
        ty, ti = F.max_pool3d(tx, **kw, return_indices=True)
        y, idx = fl.max_pool3d(x, **kw, return_indices=True)
        assert np.array_equal(y, ty.detach().numpy()) and np.array_equal(idx, ti.numpy())
        g = rng.standard_normal(y.shape).astype(np.float32)
        (tg,) = torch.autograd.grad(ty, tx, torch.from_numpy(g))
        assert_close(fl.max_pool3d_backward(g, x, **kw), tg.numpy(), reduction_tol(27), f"max grad {kw}")
    for shape, kw in AVG_CASES:
        x = rng.standard_normal(shape).astype(np.float32)
        tx = torch.from_numpy(x).requires_grad_()
        ty = F.avg_pool3d(tx, **kw)
        assert_close(fl.avg_pool3d(x, **kw), ty.detach().numpy(), 2 * reduction_tol(27), f"avg {kw}")
        g = rng.standard_normal(ty.shape).astype(np.float32)
        (tg,) = torch.autograd.grad(ty, tx, torch.from_numpy(g))
        assert_close(fl.avg_pool3d_backward(g, x, **kw), tg.numpy(), 2 * reduction_tol(27), f"avg grad {kw}")
