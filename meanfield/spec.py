"""Network specification shared by the theory engine, the simulator and the trainer.

A :class:`Spec` names the architecture (``frn`` | ``rrn`` | ``ff``), the activation, the depth and the
numeric hyperparameters (variances, alpha, input statistics). Numeric fields may be Python floats or
arrays of any broadcast-compatible shapes: an array-valued spec describes a whole grid, which the engines
evaluate in one compiled program. Everything is validated on construction, before any compilation, with
an error that names the field and its allowed range.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from .activations import Activation, get_activation

ARCHS = ("frn", "rrn", "ff")
HYPER_FIELDS = ("sw2", "sv2", "sb2", "sa2", "alpha", "p0", "gamma0")


class Hyper(NamedTuple):
    """Numeric hyperparameters as arrays (a pytree): the part of a spec that ``jax.vmap`` sweeps over."""

    sw2: object
    sv2: object
    sb2: object
    sa2: object
    alpha: object
    p0: object
    gamma0: object


def _check_array(name: str, value, *, low=None, low_open=False, high=None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (got NaN or inf)")
    if low is not None:
        bad = arr <= low if low_open else arr < low
        if np.any(bad):
            rel = ">" if low_open else ">="
            rng = f"{rel} {low}" if high is None else f"in {'(' if low_open else '['}{low}, {high}]"
            raise ValueError(f"{name} must be {rng}, got {float(arr[bad].ravel()[0])!r}")
    if high is not None and np.any(arr > high):
        raise ValueError(f"{name} must be <= {high}, got {float(arr[arr > high].ravel()[0])!r}")
    return arr


@dataclasses.dataclass(frozen=True)
class Spec:
    """A residual (or feedforward) network at initialization, in the notation of THEORY.md.

    Args:
      arch: ``"frn"`` (full residual: x = V phi(W x + b) + x + a), ``"rrn"`` (reduced: x = phi(W x + b) + x;
        sv2 and sa2 are ignored) or ``"ff"`` (feedforward: x = phi(W x + b)).
      act: activation name (``tanh``, ``relu``, ``alpha_relu``, ``erf``) or an :class:`Activation`.
      depth: number of layers L >= 1 (static: it sets the length of the compiled scan).
      sw2, sv2, sb2, sa2: variances sigma_w^2, sigma_v^2, sigma_b^2, sigma_a^2 (>= 0).
      alpha: exponent of the alpha-ReLU, in (1/2, 1]; ignored by other activations.
      p0: squared length |x0|^2 / N of both inputs (> 0).
      gamma0: their inner product x0 . x0' / N, with |gamma0| <= p0.
    """

    arch: str
    act: object
    depth: int
    sw2: object = 1.0
    sv2: object = 1.0
    sb2: object = 0.0
    sa2: object = 0.0
    alpha: object = 1.0
    p0: object = 1.0
    gamma0: object = 0.5

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {self.arch!r}")
        act = self.act if isinstance(self.act, Activation) else get_activation(self.act)
        object.__setattr__(self, "act", act)
        if isinstance(self.depth, bool) or not isinstance(self.depth, (int, np.integer)) or self.depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {self.depth!r}")
        object.__setattr__(self, "depth", int(self.depth))
        for name in ("sw2", "sv2", "sb2", "sa2"):
            object.__setattr__(self, name, _check_array(name, getattr(self, name), low=0.0))
        alpha = _check_array("alpha", self.alpha)
        if act.has_alpha and (np.any(alpha <= 0.5) or np.any(alpha > 1.0)):
            raise ValueError(
                "alpha must be in (0.5, 1] for alpha_relu: for alpha <= 1/2 the gradient transform "
                f"V'(q) = E[phi'(z)^2] is infinite; got {float(alpha.ravel()[0])!r}"
            )
        object.__setattr__(self, "alpha", alpha)
        p0 = _check_array("p0", self.p0, low=0.0, low_open=True)
        gamma0 = _check_array("gamma0", self.gamma0)
        object.__setattr__(self, "p0", p0)
        object.__setattr__(self, "gamma0", gamma0)
        try:
            np.broadcast_shapes(*(getattr(self, f).shape for f in HYPER_FIELDS))
        except ValueError:
            shapes = {f: getattr(self, f).shape for f in HYPER_FIELDS}
            raise ValueError(f"hyperparameter shapes do not broadcast together: {shapes}") from None
        if np.any(np.abs(gamma0) > p0 * (1 + 1e-12)):
            raise ValueError("gamma0 must satisfy |gamma0| <= p0 (Cauchy-Schwarz for two inputs of length p0)")

    @property
    def shape(self) -> tuple[int, ...]:
        """Broadcast shape of the numeric hyperparameters (() for a single network)."""
        return np.broadcast_shapes(*(getattr(self, f).shape for f in HYPER_FIELDS))

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def hyper(self) -> Hyper:
        """Hyperparameters broadcast to :attr:`shape`, as float64 numpy arrays.

        For the reduced residual and feedforward networks, sv2 = 1 and sa2 = 0 (they have no V and no
        a), whatever the spec says.
        """
        shape = self.shape
        vals = {f: np.broadcast_to(getattr(self, f), shape).astype(np.float64) for f in HYPER_FIELDS}
        if self.arch in ("rrn", "ff"):
            vals["sv2"] = np.ones(shape)
            vals["sa2"] = np.zeros(shape)
        if not self.act.has_alpha:
            vals["alpha"] = np.ones(shape)
        return Hyper(**vals)

    def replace(self, **changes) -> "Spec":
        return dataclasses.replace(self, **changes)
