import numpy as np

from fastlayers import reference as ref

from ..helpers import assert_grad_matches


def test_relu_backward_matches_finite_differences(rng):
    x = rng.standard_normal((4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # stay away from the kink
    g = rng.standard_normal(x.shape)
    assert_grad_matches(ref.relu_backward(g, x), lambda t: np.sum(g * ref.relu(t)), x, "relu")
