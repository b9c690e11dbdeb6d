import numpy as np
import pytest

from fastlayers import reference as ref

from ..helpers import assert_grad_matches


@pytest.mark.parametrize("x_shape", [(4, 3), (2, 3, 3), (3,)])
def test_linear_backward_matches_finite_differences(rng, x_shape):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((5, 3))
    b = rng.standard_normal(5)
    g = rng.standard_normal(x_shape[:-1] + (5,))
    gx, gw, gb = ref.linear_backward(g, x, w)
    assert_grad_matches(gx, lambda t: np.sum(g * ref.linear(t, w, b)), x, "grad_x")
    assert_grad_matches(gw, lambda t: np.sum(g * ref.linear(x, t, b)), w, "grad_w")
    assert_grad_matches(gb, lambda t: np.sum(g * ref.linear(x, w, t)), b, "grad_b")
    assert ref.linear_backward(g, x, w, with_bias=False)[2] is None
