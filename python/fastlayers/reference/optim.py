"""NumPy reference: optim."""

import numpy as np  # noqa: F401

__all__ = []
