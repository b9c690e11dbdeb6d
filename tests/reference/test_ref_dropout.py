import importlib

import numpy as np
import pytest

from fastlayers import reference as ref

from ..helpers import assert_grad_matches

philox = importlib.import_module("fastlayers.reference.dropout").philox4x32_10

# Known-answer vectors of Random123 (kat_vectors, philox4x32 10 rounds): counter, key, output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_reference_philox_known_answers(counter, key, expected):
    assert tuple(int(w) for w in philox(counter, key)) == expected


def test_reference_philox_is_vectorised(rng):
    # array counters give, element by element, what scalar counters give
    c = rng.integers(0, 2**32, size=(4, 9), dtype=np.uint64)
    out = philox(tuple(c), (0x12345678, 0x9ABCDEF0))
    for j in range(9):
        scalar = philox(tuple(int(v) for v in c[:, j]), (0x12345678, 0x9ABCDEF0))
        assert [int(o[j]) for o in out] == [int(s) for s in scalar]


@pytest.mark.parametrize("seed", [0, 1, 2**32 + 7, 2**64 - 1])
def test_reference_mask_follows_the_documented_mapping(seed):
    p = 0.3
    n = 23
    mask = ref.dropout_mask((n,), p, seed=seed)
    for i in range(n):
        words = philox((i // 4, 0, 0, 0), (seed & 0xFFFFFFFF, seed >> 32))
        u = (int(words[i % 4]) >> 8) * 2.0**-24
        assert mask[i] == (1.0 if u >= p else 0.0), i
    # a pure function of the flat index: the shape does not matter
    np.testing.assert_array_equal(ref.dropout_mask((n,), p, seed=seed), mask)
    np.testing.assert_array_equal(ref.dropout_mask(24, p, seed=seed)[:n], mask)
    assert mask.dtype == np.float32


def test_reference_dropout_backward_matches_finite_differences(rng):
    x = rng.standard_normal((3, 5))
    g = rng.standard_normal(x.shape)
    p, seed = 0.4, 99
    assert_grad_matches(ref.dropout_backward(g, p, seed=seed),
                        lambda t: np.sum(g * ref.dropout(t, p, seed=seed)), x, "dropout")


def test_reference_dropout_scales_kept_values(rng):
    x = rng.standard_normal(1000)
    p = 0.25
    y = ref.dropout(x, p, seed=3)
    mask = ref.dropout_mask(x.shape, p, seed=3).astype(bool)
    np.testing.assert_allclose(y[mask], x[mask] / (1 - p), rtol=1e-15)
    assert np.all(y[~mask] == 0)
    np.testing.assert_array_equal(ref.dropout(x, p, seed=3, training=False), x)
    np.testing.assert_array_equal(ref.dropout(x, 0.0, seed=3), x)
