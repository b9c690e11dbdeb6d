"""The interpolate reference: backward against finite differences (float64), forward and backward
against PyTorch on random cases (nearest / linear / bilinear, size and scale_factor, factors below
and above 1, align_corners both ways, recompute_scale_factor), and the op's argument checks against
PyTorch's refusals."""

import warnings

import numpy as np
import pytest

from fastlayers import reference as ref
from fastlayers.ops.interpolate import plan  # the op's argument checks

from ..helpers import assert_close, assert_grad_matches, reduction_tol

# (x shape, keyword arguments)
CASES = [
    ((2, 3, 5, 7), dict(scale_factor=2)),
    ((1, 2, 5, 7), dict(size=(3, 11))),
    ((1, 2, 5, 7), dict(scale_factor=(0.5, 1.7))),
    ((2, 1, 4, 5), dict(scale_factor=2, mode="bilinear")),
    ((2, 1, 4, 5), dict(size=(7, 3), mode="bilinear", align_corners=True)),
    ((1, 2, 6, 5), dict(scale_factor=0.6, mode="bilinear", align_corners=False)),
    ((1, 2, 6, 5), dict(size=(1, 1), mode="bilinear", align_corners=True)),
    ((2, 3, 7), dict(scale_factor=1.5)),
    ((2, 3, 7), dict(size=12, mode="linear", align_corners=True)),
    ((2, 3, 7), dict(scale_factor=0.4, mode="linear")),
]


def _spec(shape, kw):
    return plan(shape, **kw)


@pytest.mark.parametrize("shape,kw", CASES)
def test_interpolate_backward_finite_differences(rng, shape, kw):
    _spec(shape, kw)  # a case the op accepts
    x = rng.standard_normal(shape)
    g = rng.standard_normal(ref.interpolate(x, **kw).shape)
    assert_grad_matches(ref.interpolate_backward(g, x, **kw), lambda t: np.sum(g * ref.interpolate(t, **kw)), x,
                        f"interpolate {kw}")


SCALES = [0.3, 1 / 3, 0.5, 0.75, 1.0, 1.2, 1.3, 1.5, 1.7, 2, 2.1, 7 / 3, 2.5, 3, 4]


def random_case(rng):
    """(shape, kwargs) of a random interpolate call, valid or not (sizes 1-11, factors around 1)."""
    nd = int(rng.integers(1, 3))
    mode = ["nearest", "linear" if nd == 1 else "bilinear"][int(rng.integers(2))]
    if rng.random() < 0.05:  # a mode that needs the other rank
        mode = "bilinear" if nd == 1 else "linear"
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + tuple(int(v) for v in rng.integers(1, 12, nd))
    kw = {"mode": mode}
    if rng.random() < 0.5:
        kw["size"] = (tuple(int(v) for v in rng.integers(0, 25, nd)) if rng.random() < 0.7
                      else int(rng.integers(1, 25)))
    else:
        kw["scale_factor"] = (float(rng.choice(SCALES)) if rng.random() < 0.7
                              else tuple(float(rng.choice(SCALES)) for _ in range(nd)))
        if rng.random() < 0.3:
            kw["recompute_scale_factor"] = bool(rng.integers(2))
    if mode != "nearest" or rng.random() < 0.05:
        kw["align_corners"] = [None, True, False][int(rng.integers(3))]
    return shape, kw


def torch_backward_is_not_the_adjoint(shape, kw):
    """PyTorch's 1-D nearest forward uses floor(o * scale) alone, but its backward takes the 2-D
    kernel's shortcuts (o when out == in, o/2 when out == 2*in), so where a scale factor gives those
    sizes without being 1 or 2, its gradient is not its forward's derivative (docs/ops.md,
    Differences from PyTorch). Ours is."""
    if len(shape) != 3 or kw["mode"] != "nearest" or "scale_factor" not in kw or kw.get("recompute_scale_factor"):
        return False
    out = plan(shape, **kw)[0][2]
    f = kw["scale_factor"][0] if isinstance(kw["scale_factor"], tuple) else kw["scale_factor"]
    return (out == shape[2] and f != 1) or (out == 2 * shape[2] and f != 2)


def test_interpolate_matches_torch_and_refuses_what_torch_refuses(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    seen = {"same": 0, "refused": 0}
    for _ in range(500):
        shape, kw = random_case(rng)
        x = rng.standard_normal(shape).astype(np.float32)  # PyTorch's float32 path: float32 weights, as ours
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = F.interpolate(torch.from_numpy(x), **kw).numpy()
            torch_err = None
        except (RuntimeError, ValueError, NotImplementedError, TypeError) as exc:
            torch_err = exc
        if torch_err is not None:
            with pytest.raises((ValueError, TypeError)):
                plan(shape, **kw)
            seen["refused"] += 1
            continue
        got = ref.interpolate(x.astype(np.float64), **kw)
        tol = 0.0 if kw["mode"] == "nearest" else reduction_tol(4)  # PyTorch sums 4 float32 products
        assert_close(got, want, tol, f"interpolate {shape} {kw}")
        if got.size and not torch_backward_is_not_the_adjoint(shape, kw):
            t = torch.from_numpy(x).requires_grad_()
            g = rng.standard_normal(want.shape).astype(np.float32)
            F.interpolate(t, **kw).backward(torch.from_numpy(g))
            # an input cell sums up to ~ (2 * out/in)^2 weighted gradients
            k = 4 * max(1, int(np.prod(want.shape[2:]) // np.prod(shape[2:])))
            assert_close(ref.interpolate_backward(g.astype(np.float64), x, **kw), t.grad.numpy(), reduction_tol(k),
                         f"backward {shape} {kw}")
        seen["same"] += 1
    assert seen["same"] > 200 and seen["refused"] > 20, seen


def test_torch_1d_nearest_backward_quirk_is_what_we_document():
    torch = pytest.importorskip("torch")
    x = torch.arange(3.0).reshape(1, 1, 3).requires_grad_()
    y = torch.nn.functional.interpolate(x, scale_factor=1.2)
    y.sum().backward()
    assert y.flatten().tolist() == [0.0, 0.0, 1.0]  # the forward reads cells 0, 0, 1 ...
    if x.grad.flatten().tolist() == [2.0, 1.0, 0.0]:
        pytest.skip("this PyTorch's 1-D nearest backward is its forward's adjoint: drop the documented difference")
    assert x.grad.flatten().tolist() == [1.0, 1.0, 1.0]  # ... but the gradient says 0, 1, 2
    assert ref.interpolate_backward(np.ones((1, 1, 3)), np.zeros((1, 1, 3)), scale_factor=1.2).tolist() == [[[2.0, 1.0, 0.0]]]
