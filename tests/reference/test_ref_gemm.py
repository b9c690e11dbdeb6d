import numpy as np
import pytest

from fastlayers import reference as ref

from ..helpers import assert_grad_matches


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_backward_matches_finite_differences(rng, trans_a, trans_b):
    m, n, k, alpha, beta = 3, 4, 5, 1.5, -0.5
    a = rng.standard_normal((k, m) if trans_a else (m, k))
    b = rng.standard_normal((n, k) if trans_b else (k, n))
    c = rng.standard_normal((m, n))
    g = rng.standard_normal((m, n))
    ga, gb, gc = ref.gemm_backward(g, a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta)
    kw = dict(trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta)
    assert_grad_matches(ga, lambda t: np.sum(g * ref.gemm(t, b, c=c, **kw)), a, "grad_a")
    assert_grad_matches(gb, lambda t: np.sum(g * ref.gemm(a, t, c=c, **kw)), b, "grad_b")
    assert_grad_matches(gc, lambda t: np.sum(g * ref.gemm(a, b, c=t, **kw)), c, "grad_c")


def test_gemm_reference_forward_and_no_grad_c():
    a = np.arange(6.0).reshape(2, 3)
    b = np.arange(12.0).reshape(3, 4)
    c = np.ones((2, 4))
    np.testing.assert_allclose(ref.gemm(a, b, alpha=2.0, beta=3.0, c=c), 2.0 * (a @ b) + 3.0)
    np.testing.assert_allclose(ref.gemm(b, a, trans_a=True, trans_b=True), (a @ b).T)
    assert ref.gemm_backward(np.ones((2, 4)), a, b)[2] is None
