"""meanfield: mean-field theory and finite-width simulation of deep residual networks.

Importing the package turns on JAX's 64-bit mode (``jax_enable_x64``): the theory engine is exact to
~1e-10 only in float64. Simulation and training pick their dtype explicitly (float32 by default where
speed matters), so the global switch only changes the default dtype of arrays you create yourself.
"""

import jax

jax.config.update("jax_enable_x64", True)

from .activations import Activation, alpha_relu, custom, erf_act, get_activation, relu, tanh  # noqa: E402
from .spec import Hyper, Spec  # noqa: E402
from .trajectory import FIELDS, Trajectory  # noqa: E402
from . import asymptotics, simulate, theory  # noqa: E402

__all__ = [
    "Activation", "alpha_relu", "custom", "erf_act", "get_activation", "relu", "tanh",
    "Hyper", "Spec", "FIELDS", "Trajectory", "asymptotics", "simulate", "theory",
]
__version__ = "0.1.0"
