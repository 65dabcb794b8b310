"""meanfield: mean-field theory and finite-width simulation of deep residual networks.

The theory is written out in docs/theory.md. Importing the package is cheap and has no side effects:
the names below are loaded on first use (PEP 562), so ``import meanfield`` does not import jax, and
nothing here changes JAX's global configuration. The theory engine computes in float64 inside its own
calls only (see docs/architecture.md); arrays you create keep the default dtype you chose.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: Public name -> the submodule that defines it.
_EXPORTS = {
    **dict.fromkeys(("Activation", "alpha_relu", "custom", "erf_act", "get_activation", "relu", "tanh"),
                    "activations"),
    **dict.fromkeys(("Hyper", "Spec"), "spec"),
    **dict.fromkeys(("FIELDS", "Trajectory"), "trajectory"),
}
#: Submodules reachable as attributes (``meanfield.theory``) without an explicit import.
_SUBMODULES = ("activations", "asymptotics", "figures", "quadrature", "reference", "simulate", "spec",
               "theory", "train", "trajectory")

__all__ = [*_EXPORTS, "asymptotics", "simulate", "theory"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load lazily
    from . import asymptotics, simulate, theory
    from .activations import Activation, alpha_relu, custom, erf_act, get_activation, relu, tanh
    from .spec import Hyper, Spec
    from .trajectory import FIELDS, Trajectory


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
