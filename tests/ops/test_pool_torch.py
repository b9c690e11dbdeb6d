"""The pooling ops against torch.nn.functional (PyTorch CPU) on many random shapes and options, on
every backend: values, int64 indices and gradients (torch autograd) must agree.

Max pool and its indices are exact; avg/lp/adaptive within reduction_tol of the window. Known,
documented differences are kept out of the draws: lp_pool2d runs on positive input (PyTorch computes
x**p, we |x|**p), and max-pool windows that hold no input cell (dilation stepping over the whole
input: we give index -1, PyTorch an index outside the window) are skipped."""

import numpy as np
import pytest

import fastlayers as fl

from ..helpers import assert_close, reduction_tol

torch = pytest.importorskip("torch", reason="PyTorch not installed: no cross-check against torch.nn.functional")
F = torch.nn.functional

N_CASES = 40


def _draw(rng):
    """A random pooling geometry PyTorch accepts (kernel <= input + padding ...)."""
    while True:
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
        dh, dw = (int(v) for v in rng.integers(1, 3, 2))
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        ceil = bool(rng.integers(0, 2))
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), h, w)
        if rng.random() < 0.2:
            shape = shape[1:]  # unbatched
        try:
            F.max_pool2d(torch.zeros(shape), (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil)
        except RuntimeError:
            continue
        return shape, (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil


def _values(rng, shape, nan=False):
    x = rng.integers(-3, 4, size=shape).astype(np.float32)  # ties
    if nan:
        x[rng.random(shape) < 0.1] = np.nan
    return x


def _grad(fn, x, g):
    tx = torch.tensor(x, requires_grad=True)
    out = fn(tx)
    y = out[0] if isinstance(out, tuple) else out
    y.backward(torch.tensor(g))
    return out, tx.grad.numpy()


@pytest.mark.parametrize("seed", range(N_CASES))
def test_max_pool_matches_torch(device, seed):
    rng = np.random.default_rng(seed)
    shape, k, s, p, d, ceil = _draw(rng)
    x = _values(rng, shape, nan=seed % 3 == 0)
    ty, ti = F.max_pool2d(torch.tensor(x), k, s, p, d, ceil, True)
    y, idx = fl.max_pool2d(device.put(x), k, s, p, d, ceil, True)
    if (device.get(idx) < 0).any():
        pytest.skip("a window with no input cell: a documented difference")
    np.testing.assert_array_equal(device.get(y), ty.numpy())
    np.testing.assert_array_equal(device.get(idx), ti.numpy())
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    _, tg = _grad(lambda t: F.max_pool2d(t, k, s, p, d, ceil), x, g)
    np.testing.assert_array_equal(device.get(fl.max_pool2d_backward(device.put(g), device.put(x), k, s, p, d, ceil)), tg)
    np.testing.assert_array_equal(
        device.get(fl.max_pool2d_backward(device.put(g), device.put(x), k, s, p, d, ceil, indices=idx)), tg)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_avg_and_lp_pool_match_torch(device, seed):
    rng = np.random.default_rng(1000 + seed)
    shape, k, s, p, _, ceil = _draw(rng)
    try:
        F.avg_pool2d(torch.zeros(shape), k, s, p, ceil)
    except RuntimeError:
        pytest.skip("no output without dilation")
    x = rng.standard_normal(shape).astype(np.float32)
    tol = reduction_tol(k[0] * k[1])
    include = bool(rng.integers(0, 2))
    div = [None, None, int(rng.integers(1, 7)), -int(rng.integers(1, 7))][seed % 4]
    (ty), tg = _grad(lambda t: F.avg_pool2d(t, k, s, p, ceil, include, div), x,
                     g := rng.standard_normal(tuple(F.avg_pool2d(torch.zeros(shape), k, s, p, ceil).shape)))
    opts = (k, s, p, ceil, include, div)
    assert_close(fl.avg_pool2d(device.put(x), *opts), ty.detach().numpy(), tol, f"avg {opts}")
    assert_close(fl.avg_pool2d_backward(device.put(g), device.put(x), *opts), tg, tol, f"avg backward {opts}")
    xp = np.abs(x) + np.float32(0.1)
    try:
        F.lp_pool2d(torch.zeros(shape), 2.0, k, s, ceil)
    except RuntimeError:
        return
    for norm in (1.0, 2.0, 3.0):
        gl = rng.standard_normal(tuple(F.lp_pool2d(torch.zeros(shape), norm, k, s, ceil).shape))
        ty, tg = _grad(lambda t: F.lp_pool2d(t, norm, k, s, ceil), xp.astype(np.float64), gl)
        assert_close(fl.lp_pool2d(device.put(xp), norm, k, s, ceil), ty.detach().numpy(), tol, f"lp {norm} {k} {s}")
        assert_close(fl.lp_pool2d_backward(device.put(gl), device.put(xp), norm, k, s, ceil), tg, tol,
                     f"lp backward {norm} {k} {s}")


@pytest.mark.parametrize("seed", range(N_CASES // 2))
def test_adaptive_pools_match_torch(device, seed):
    rng = np.random.default_rng(2000 + seed)
    shape = tuple(int(v) for v in (rng.integers(1, 3), rng.integers(1, 4), rng.integers(1, 15), rng.integers(1, 15)))
    if seed % 5 == 0:
        shape = shape[1:]
    size = [(int(rng.integers(1, 9)), int(rng.integers(1, 9))), int(rng.integers(1, 9)), (None, int(rng.integers(1, 5))),
            1, (shape[-2] // 2 or 1, None)][seed % 5]
    x = _values(rng, shape, nan=seed % 4 == 0)
    (ty, ti), tg = _grad(lambda t: F.adaptive_max_pool2d(t, size, True), x,
                         g := rng.standard_normal(tuple(F.adaptive_avg_pool2d(torch.zeros(shape), size).shape)))
    y, idx = fl.adaptive_max_pool2d(device.put(x), size, True)
    np.testing.assert_array_equal(device.get(y), ty.detach().numpy())
    np.testing.assert_array_equal(device.get(idx), ti.numpy())
    np.testing.assert_array_equal(device.get(fl.adaptive_max_pool2d_backward(device.put(g), device.put(x), size)), tg)
    xf = rng.standard_normal(shape)
    ta, tga = _grad(lambda t: F.adaptive_avg_pool2d(t, size), xf, g)
    tol = reduction_tol(shape[-1] * shape[-2])
    assert_close(fl.adaptive_avg_pool2d(device.put(xf), size), ta.detach().numpy(), tol, f"adaptive avg {size}")
    assert_close(fl.adaptive_avg_pool2d_backward(device.put(g), device.put(xf), size), tga, tol, "adaptive avg bwd")


@pytest.mark.parametrize("seed", range(N_CASES // 2))
def test_max_unpool_matches_torch(device, seed):
    rng = np.random.default_rng(3000 + seed)
    # stride >= kernel: windows do not overlap, so every index is distinct (PyTorch's unpool leaves the
    # winner among duplicates unspecified)
    k = tuple(int(v) for v in rng.integers(1, 5, 2))
    s = tuple(int(kk + rng.integers(0, 2)) for kk in k)
    p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
    ceil = bool(rng.integers(0, 2))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + tuple(int(v) for v in rng.integers(4, 12, 2))
    try:
        _, ti = F.max_pool2d(torch.tensor(rng.standard_normal(shape)), k, s, p, 1, ceil, True)
    except RuntimeError:
        pytest.skip("no output without dilation")
    y = rng.standard_normal(tuple(ti.shape)).astype(np.float32)
    # every index distinct (PyTorch's unpool leaves the winner among duplicates unspecified)
    planes = ti.numpy().reshape(-1, ti[0, 0].numel())
    if any(len(np.unique(plane)) != plane.size for plane in planes):
        pytest.skip("duplicate indices (overlapping windows)")
    out = F.max_unpool2d(torch.tensor(y), ti, k, s, p, shape)
    g = rng.standard_normal(tuple(out.shape)).astype(np.float32)
    _, tg = _grad(lambda t: F.max_unpool2d(t, ti, k, s, p, shape), y, g)
    u = fl.max_unpool2d(device.put(y), device.put(ti.numpy()), k, s, p, shape)
    np.testing.assert_array_equal(device.get(u), out.numpy())
    np.testing.assert_array_equal(
        device.get(fl.max_unpool2d_backward(device.put(g), device.put(y), device.put(ti.numpy()), k, s, p, shape)), tg)


def test_layers_match_torch_modules(rng):
    x = rng.standard_normal((2, 3, 13, 11)).astype(np.float32)
    pairs = [(fl.nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
             (fl.nn.MaxPool2d(2, dilation=2), torch.nn.MaxPool2d(2, dilation=2)),
             (fl.nn.AvgPool2d(3, 2, 1, True, False, 5), torch.nn.AvgPool2d(3, 2, 1, True, False, 5)),
             (fl.nn.LPPool2d(2, 3, 2, True), torch.nn.LPPool2d(2, 3, 2, True)),
             (fl.nn.AdaptiveAvgPool2d((5, None)), torch.nn.AdaptiveAvgPool2d((5, None))),
             (fl.nn.AdaptiveMaxPool2d(4), torch.nn.AdaptiveMaxPool2d(4))]
    for ours, theirs in pairs:
        xin = np.abs(x) + 0.1 if isinstance(ours, fl.nn.LpPool2d) else x
        tx = torch.tensor(xin, requires_grad=True)
        ty = theirs(tx)
        g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
        ty.backward(torch.tensor(g))
        assert_close(ours(xin), ty.detach().numpy(), reduction_tol(9), repr(ours))
        assert_close(ours.backward(g), tx.grad.numpy(), reduction_tol(9), repr(ours) + " backward")
    pool, unpool = fl.nn.MaxPool2d(2, return_indices=True), fl.nn.MaxUnpool2d(2)
    y, idx = pool(x)
    ty, ti = torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(idx, ti.numpy())
    np.testing.assert_array_equal(unpool(y, idx, output_size=x.shape),
                                  torch.nn.MaxUnpool2d(2)(ty, ti, output_size=x.shape).numpy())


def test_bench_option_cases_agree_with_their_torch_anchors():
    """The `fastlayers bench` cases of the pooling options time the same computation as PyTorch."""
    from fastlayers.bench import cases as C

    for case in C.pool_option_cases():
        if case.torch_anchor is None:
            continue
        state = case.setup(np)
        tstate = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}
        ours, want = case.ours(fl, state)(), case.torch_anchor(torch, tstate)()
        if isinstance(ours, tuple):
            ours, want = ours[0], want[0]
        np.testing.assert_allclose(ours, want.numpy(), rtol=1e-5, atol=1e-6, err_msg=f"{case.op} {case.case}")
