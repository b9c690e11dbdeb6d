"""The cat / split reference: cat_backward against finite differences (float64) and against
torch.cat's autograd; split against torch.split."""

import numpy as np
import pytest

from fastlayers import reference as ref

from ..helpers import assert_grad_matches


@pytest.mark.parametrize("shapes,axis", [([(2, 3), (2, 1), (2, 0)], 1), ([(1, 2, 2), (3, 2, 2)], 0)])
def test_cat_backward_finite_differences(rng, shapes, axis):
    arrays = [rng.standard_normal(s) for s in shapes]
    g = rng.standard_normal(ref.cat(arrays, axis).shape)
    sizes = [s[axis] for s in shapes]
    grads = ref.cat_backward(g, sizes, axis)
    for i, a in enumerate(arrays):
        def f(t, i=i):
            return np.sum(g * ref.cat(arrays[:i] + [t] + arrays[i + 1:], axis))
        assert_grad_matches(grads[i], f, a, f"cat_backward piece {i}")


def test_split_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((7, 4))
    for arg, axis in ((3, 0), ([1, 3], 1), (10, 0), ([0, 7, 0], 0)):
        got = ref.split(x, arg, axis)
        want = torch.split(torch.from_numpy(x), arg, axis)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b.numpy())
