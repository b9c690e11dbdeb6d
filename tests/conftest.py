import numpy as np
import pytest

from .helpers import BACKENDS, Device


@pytest.fixture(params=BACKENDS)
def device(request) -> Device:
    """The backend under test: 'cpu' always, 'cuda' when a GPU is usable (skipped with a reason otherwise)."""
    return Device(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
