"""Shared test setup.

The package computes in float64 only inside its engines' entry points and leaves the process-wide
``jax_enable_x64`` alone. The activation transforms (``act.V``, ``act.W``, ``J_alpha``, ...) are plain
functions that follow the caller's setting, so the modules that check them directly against 1e-10
reference values run each test inside the same float64 scope the engines use.
"""

import pytest

from meanfield._x64 import float64

_FLOAT64_MODULES = ("test_activations", "test_asymptotics")


@pytest.fixture(autouse=True)
def _float64_for_direct_transform_checks(request):
    if request.module.__name__.rsplit(".", 1)[-1] in _FLOAT64_MODULES:
        with float64():
            yield
    else:
        yield
