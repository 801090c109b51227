import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def strided(a, pad=3):
    """a with the same values in a buffer whose rows are `pad` elements longer: a view
    whose row stride is not its column count (kfuse takes it as a leading dimension)."""
    big = np.full((a.shape[0], a.shape[1] + pad), np.nan, dtype=a.dtype)
    big[:, : a.shape[1]] = a
    return big[:, : a.shape[1]]
