"""matmul (torch.matmul semantics: 1-D operands, batch broadcasting) and matmul_backward on every
backend, against the float64 reference and torch. Tolerance: reduction_tol(K) for the product; the
gradients sum over K and over the broadcast batch entries."""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, assert_grad_matches, reduction_tol

L, M, S = 9, 7, 3
# torch's sample_inputs_matmul shapes, then folds, broadcasting of either side, zero sizes, and a
# product large enough for the threaded GEMM.
CASES = [((L,), (L,)), ((S, M), (M,)), ((M,), (M, S)), ((S, M), (M, S)), ((S, 0), (0, M)), ((S, S, M), (M,)),
         ((S, S, M), (M, S)), ((S, S, 0), (0, S)), ((M,), (S, M, S)), ((S, M), (S, M, S)), ((0, 0), (S, 0, 0)),
         ((S, S, M, M), (S, S, M, S)), ((S, S, M, M), (M,)), ((M,), (S, S, M, S)), ((S, S, S), (1, S, S)),
         ((2, 1, 4, 3), (1, 5, 3, 6)), ((5, 1, 2, 3), (4, 3, 2)), ((0, 4, 3), (3, 2)), ((4, 1, 1, 2, 1, 3, 2, 4), (1, 3, 2, 1, 5, 1, 4, 3)),
         ((1, 1), (1, 1)), ((3, 50, 64), (64, 70)), ((2, 130, 70), (2, 70, 90))]


def _product_shape(sa, sb):
    return np.matmul(np.empty(sa), np.empty(sb)).shape


@pytest.mark.parametrize("sa,sb", CASES)
def test_matmul_and_backward(device, rng, sa, sb):
    a = np.asarray(rng.standard_normal(sa), np.float32)
    b = np.asarray(rng.standard_normal(sb), np.float32)
    k = sa[-1]
    y = fl.matmul(device.put(a), device.put(b))
    want = ref.matmul(a.astype(np.float64), b.astype(np.float64))
    assert y.shape == want.shape == _product_shape(sa, sb) and y.dtype == np.float32
    assert_close(y, want, reduction_tol(k), f"matmul {sa} {sb}")
    g = np.asarray(rng.standard_normal(want.shape), np.float32)
    ga, gb = fl.matmul_backward(device.put(g), device.put(a), device.put(b))
    wa, wb = ref.matmul_backward(g.astype(np.float64), a.astype(np.float64), b.astype(np.float64))
    assert ga.shape == sa and gb.shape == sb
    batch = max(1, int(np.prod(want.shape)) // max(1, int(np.prod(want.shape[-2:]))))
    n = (sb[-1] if len(sb) > 1 else 1)
    m = (sa[-2] if len(sa) > 1 else 1)
    assert_close(ga, wa, reduction_tol(n * batch), f"grad_a {sa} {sb}")
    assert_close(gb, wb, reduction_tol(m * batch), f"grad_b {sa} {sb}")


@pytest.mark.parametrize("which", ["a", "b", "both"])
@pytest.mark.parametrize("m,k,n", [(7, 5, 3), (100, 130, 70), (1, 9, 4)])
def test_matmul_of_transposed_views(device, rng, which, m, k, n):
    # x @ w.T: an operand stored transposed goes to the GEMM through its transpose flag, not copied;
    # same values as from contiguous copies, the views and their bases untouched. (1, 9) is both C-
    # and F-contiguous: the plain path.
    a_store = np.asarray(rng.standard_normal((k, m) if which in ("a", "both") else (m, k)), np.float32)
    b_store = np.asarray(rng.standard_normal((n, k) if which in ("b", "both") else (k, n)), np.float32)
    a = device.put(a_store)
    b = device.put(b_store)
    a_op = a.T if which in ("a", "both") else a
    b_op = b.T if which in ("b", "both") else b
    before = (a_store.copy(), b_store.copy())
    y = fl.matmul(a_op, b_op)
    a64 = (a_store.T if which in ("a", "both") else a_store).astype(np.float64)
    b64 = (b_store.T if which in ("b", "both") else b_store).astype(np.float64)
    want = ref.matmul(a64, b64)
    assert y.shape == (m, n) and y.dtype == np.float32
    assert_close(y, want, reduction_tol(k), f"matmul {which} transposed {m}x{k}x{n}")
    np.testing.assert_array_equal(device.get(a), before[0])
    np.testing.assert_array_equal(device.get(b), before[1])


def test_matmul_of_transposed_view_checks_inner_dimension(device):
    a = device.put(np.ones((4, 3), np.float32)).T  # (3, 4)
    with pytest.raises(ValueError, match=r"last dimension of a \(shape \(3, 4\)\) must equal the second-to-last"):
        fl.matmul(a, device.put(np.ones((3, 2), np.float32)))


def test_reference_backward_matches_finite_differences(rng):
    for sa, sb in [((3, 4), (4,)), ((4,), (2, 4, 3)), ((2, 1, 3, 4), (3, 4, 2))]:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        g = rng.standard_normal(np.matmul(a, b).shape)
        ga, gb = ref.matmul_backward(g, a, b)
        assert_grad_matches(ga, lambda t: np.sum(g * ref.matmul(t, b)), a, f"matmul wrt a {sa} {sb}")
        assert_grad_matches(gb, lambda t: np.sum(g * ref.matmul(a, t)), b, f"matmul wrt b {sa} {sb}")


def test_bad_input(device):
    x = device.put(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"last dimension of a \(shape \(2, 3\)\) must equal the second-to-last"):
        fl.matmul(x, x)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        fl.matmul(device.put(np.ones((), np.float32)), x)
    with pytest.raises(ValueError, match="batch dimensions"):
        fl.matmul(device.put(np.ones((2, 2, 3), np.float32)), device.put(np.ones((3, 3, 1), np.float32)))
    with pytest.raises(ValueError, match=r"grad_out must have the shape of matmul\(a, b\) \(2,\)"):
        fl.matmul_backward(device.put(np.ones((2, 1), np.float32)), x, device.put(np.ones(3, np.float32)))


def test_matches_torch(device, rng):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch cross-check is skipped")
    for sa, sb in CASES:
        a = np.asarray(rng.standard_normal(sa), np.float32)
        b = np.asarray(rng.standard_normal(sb), np.float32)
        ta = torch.tensor(a, dtype=torch.float64, requires_grad=True)
        tb = torch.tensor(b, dtype=torch.float64, requires_grad=True)
        y = torch.matmul(ta, tb)
        g = np.asarray(rng.standard_normal(tuple(y.shape)), np.float32)
        y.backward(torch.tensor(g, dtype=torch.float64))
        tol = reduction_tol(max(sa[-1], 1) * 8)
        assert_close(fl.matmul(device.put(a), device.put(b)), y.detach().numpy(), tol, f"{sa} {sb}")
        ga, gb = fl.matmul_backward(device.put(g), device.put(a), device.put(b))
        assert_close(ga, ta.grad.numpy(), reduction_tol(g.size), f"grad_a {sa} {sb}")
        assert_close(gb, tb.grad.numpy(), reduction_tol(g.size), f"grad_b {sa} {sb}")
