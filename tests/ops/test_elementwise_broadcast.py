"""add (with alpha) and mul with NumPy broadcasting, and their backwards, on every backend: against
the float64 reference (one rounding per element for add / mul: reduction_tol(1); the backward sums
over the broadcast axes: reduction_tol(number of summed elements)) and against torch."""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, assert_grad_matches, reduction_tol

# torch's sample_inputs_elementwise_binary shapes, then every broadcast pattern of a 3-D output
# (each axis of each operand broadcast or not), bias-like rows/columns, and the large ones that
# cross the OpenMP grain and the kernels' chunking.
SHAPES = [((), ()), ((5,), ()), ((5, 1), (5,)), ((10, 5), ()), ((5, 10, 5), (10, 5)), ((5, 10, 5), (5, 10, 5)),
          ((10, 1, 5), (10, 5)), ((10, 1, 5), (1, 10, 5)), ((0, 1, 3), (0, 10, 3)), ((), (4, 3)),
          ((300, 9000), (9000,)), ((9000, 3), (9000, 1)), ((2, 64, 7, 7), (1, 64, 1, 1)), ((1,), (3, 1, 2))]
SHAPES += [(tuple(3 + i if ma >> i & 1 else 1 for i in range(3)), tuple(3 + i if mb >> i & 1 else 1 for i in range(3)))
           for ma in range(8) for mb in range(8)]


def _reduced_count(a_shape, out_shape):
    return max(1, int(np.prod(out_shape)) // max(1, int(np.prod(a_shape))))


@pytest.mark.parametrize("sa,sb", SHAPES)
def test_add_mul_and_backward_broadcast(device, rng, sa, sb):
    a = np.asarray(rng.standard_normal(sa), np.float32)
    b = np.asarray(rng.standard_normal(sb), np.float32)
    out = np.broadcast_shapes(sa, sb)
    g = np.asarray(rng.standard_normal(out), np.float32)
    da, db, dg = device.put(a), device.put(b), device.put(g)
    for alpha in (1, -3.125):
        y = fl.add(da, db, alpha=alpha)
        assert y.shape == out and y.dtype == np.float32
        assert_close(y, ref.add(a.astype(np.float64), b.astype(np.float64), alpha), reduction_tol(1), f"add {sa} {sb}")
        ga, gb = fl.add_backward(dg, da, db, alpha)
        wa, wb = ref.add_backward(g.astype(np.float64), a, b, alpha)
        assert ga.shape == sa and gb.shape == sb
        assert_close(ga, wa, reduction_tol(_reduced_count(sa, out)), f"add grad_a {sa} {sb}")
        assert_close(gb, wb, reduction_tol(_reduced_count(sb, out)), f"add grad_b {sa} {sb}")
    y = fl.mul(da, db)
    assert y.shape == out
    assert_close(y, ref.mul(a.astype(np.float64), b), reduction_tol(1), f"mul {sa} {sb}")
    ga, gb = fl.mul_backward(dg, da, db)
    wa, wb = ref.mul_backward(g.astype(np.float64), a.astype(np.float64), b.astype(np.float64))
    assert ga.shape == sa and gb.shape == sb
    assert_close(ga, wa, reduction_tol(_reduced_count(sa, out)), f"mul grad_a {sa} {sb}")
    assert_close(gb, wb, reduction_tol(_reduced_count(sb, out)), f"mul grad_b {sa} {sb}")
    np.testing.assert_array_equal(device.get(da), a)  # inputs untouched


def test_same_shape_add_is_exact_and_backward_keeps_copies(device, rng):
    a = np.asarray(rng.standard_normal((3, 4)), np.float32)
    b = np.asarray(rng.standard_normal((3, 4)), np.float32)
    np.testing.assert_array_equal(device.get(fl.add(device.put(a), device.put(b))), a + b)
    g = device.put(np.asarray(rng.standard_normal((3, 4)), np.float32))
    ga, gb = fl.add_backward(g, device.put(a), device.put(b))  # the explicit form, same shapes
    ga += 1
    np.testing.assert_array_equal(device.get(gb), device.get(g))
    ga, gb = fl.add_backward(g, alpha=2.0)  # same-shape operands with alpha
    np.testing.assert_array_equal(device.get(gb), 2 * device.get(g))


def test_python_scalars(device, rng):
    a = np.asarray(rng.standard_normal((2, 3)), np.float32)
    np.testing.assert_allclose(device.get(fl.add(device.put(a), 2.5)), a + 2.5)
    np.testing.assert_allclose(device.get(fl.mul(3, device.put(a))), 3 * a)
    np.testing.assert_allclose(device.get(fl.add(device.put(a), 1.0, alpha=-2)), a - 2)
    ga, gb = fl.mul_backward(device.put(np.ones((2, 3), np.float32)), device.put(a), 4.0)
    assert gb.shape == () and float(gb) == pytest.approx(a.sum(), rel=1e-6)


def test_reference_backward_matches_finite_differences(rng):
    a, b = rng.standard_normal((3, 1, 4)), rng.standard_normal((2, 1))
    g = rng.standard_normal((3, 2, 4))
    ga, gb = ref.add_backward(g, a, b, 1.5)
    assert_grad_matches(ga, lambda t: np.sum(g * ref.add(t, b, 1.5)), a, "add wrt a")
    assert_grad_matches(gb, lambda t: np.sum(g * ref.add(a, t, 1.5)), b, "add wrt b")
    ga, gb = ref.mul_backward(g, a, b)
    assert_grad_matches(ga, lambda t: np.sum(g * ref.mul(t, b)), a, "mul wrt a")
    assert_grad_matches(gb, lambda t: np.sum(g * ref.mul(a, t)), b, "mul wrt b")


def test_bad_input(device):
    ones = device.put(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"b must have a shape that broadcasts with a's \(2, 3\), got \(4,\)"):
        fl.add(ones, device.put(np.ones(4, np.float32)))
    with pytest.raises(ValueError, match=r"grad_out must have the output's shape \(2, 3\), got \(3,\)"):
        fl.mul_backward(device.put(np.ones(3, np.float32)), ones, ones)
    with pytest.raises(TypeError, match="needs both a and b"):
        fl.add_backward(ones, ones)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        fl.add(ones, ones, alpha="2")


def test_matches_torch(device, rng):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch cross-check is skipped")
    for sa, sb in SHAPES[:14]:
        a = np.asarray(rng.standard_normal(sa), np.float32)
        b = np.asarray(rng.standard_normal(sb), np.float32)
        ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        y = torch.add(ta, tb, alpha=2) * 1.0
        g = np.asarray(rng.standard_normal(tuple(y.shape)), np.float32)
        y.backward(torch.tensor(g))
        assert_close(fl.add(device.put(a), device.put(b), alpha=2), y.detach().numpy(), reduction_tol(1), "add")
        ga, gb = fl.add_backward(device.put(g), device.put(a), device.put(b), alpha=2)
        assert_close(ga, ta.grad.numpy(), reduction_tol(g.size), "add grad_a")
        assert_close(gb, tb.grad.numpy(), reduction_tol(g.size), "add grad_b")
        ta.grad = tb.grad = None
        torch.mul(ta, tb).backward(torch.tensor(g))
        ga, gb = fl.mul_backward(device.put(g), device.put(a), device.put(b))
        assert_close(ga, ta.grad.numpy(), reduction_tol(g.size), "mul grad_a")
        assert_close(gb, tb.grad.numpy(), reduction_tol(g.size), "mul grad_b")
