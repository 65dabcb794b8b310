"""Network specification shared by the theory engine, the simulator and the trainer.

A :class:`Spec` names the architecture (a block of :mod:`meanfield.blocks`: ``frn`` | ``rrn`` | ``ff``), the activation, the depth and the
numeric hyperparameters (variances, alpha, input statistics; docs/theory.md, sections 1 and 2). Numeric
fields may be Python floats or arrays of any broadcast-compatible shapes: an array-valued spec describes
a whole grid, which the engines evaluate in one compiled program. Everything is validated on
construction, before any compilation, with an error that names the field and its allowed range. A field
that the network does not have (alpha of a tanh network, a variance its block does not use, such as
sv2 and sa2 of an rrn or ff) must stay at the value the engines use for it (alpha = 1, sv2 = 1, sa2 = 0), so that a typo cannot be ignored silently.

Validation needs only numpy: a bad spec is rejected before jax is imported, which keeps the command
line's error messages instant. The activation module (and with it jax) is imported once the numbers
are known to be valid.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .activations import Activation

from .blocks import ARCHS, DECAYS, NORMS, WIDTH_MEANING, WIDTHS, get_block  # noqa: F401  (ARCHS re-exported)

#: Names of the built-in activations (``meanfield.activations.BUILTIN``) and those that take alpha.
ACTIVATIONS = ("tanh", "relu", "alpha_relu", "erf")
ALPHA_ACTIVATIONS = ("alpha_relu",)
#: The value an engine uses for a field the network does not have.
NEUTRAL = {"alpha": 1.0, "sv2": 1.0, "sa2": 0.0, "branch_scale": 1.0, "decay_w": 0.0, "decay_v": 0.0,
           "decay_b": 0.0, "decay_a": 0.0, "survival": 1.0, "sg2": 1.0, "gate_bias": 0.0}
HYPER_FIELDS = ("sw2", "sv2", "sb2", "sa2", "alpha", "p0", "gamma0", "branch_scale", "decay_w", "decay_v",
                "decay_b", "decay_a", "survival", "sg2", "gate_bias")
#: Branch scales given by the depth L (Stable ResNet, depth-muP: L^-1/2).
DEPTH_SCALES = {"1/sqrt(L)": lambda depth: depth ** -0.5, "1/L": lambda depth: 1.0 / depth}


def unused_variances(arch: str) -> list[str]:
    """The fields with a neutral value (:data:`NEUTRAL`) that block ``arch`` does not use (alpha aside);
    a variance's decay exponent (:data:`~meanfield.blocks.DECAYS`) is used where the variance is."""
    used = get_block(arch).fields
    used = used | {DECAYS[v] for v in used if v in DECAYS}
    return [f for f in NEUTRAL if f != "alpha" and f not in used]


class Hyper(NamedTuple):
    """Numeric hyperparameters as arrays (a pytree): the part of a spec that ``jax.vmap`` sweeps over."""

    sw2: object
    sv2: object
    sb2: object
    sa2: object
    alpha: object
    p0: object
    gamma0: object
    branch_scale: object = 1.0
    decay_w: object = 0.0
    decay_v: object = 0.0
    decay_b: object = 0.0
    decay_a: object = 0.0
    survival: object = 1.0
    sg2: object = 1.0
    gate_bias: object = 0.0


def branch_scale_at(value, depth: int):
    """``value`` with the strings of :data:`DEPTH_SCALES` (spaces ignored) replaced by their number at ``depth``
    (a numeric string becomes its float)."""
    if isinstance(value, str):
        text = value.replace(" ", "")
        if text in DEPTH_SCALES:
            return DEPTH_SCALES[text](depth)
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"branch_scale must be a number >= 0 or one of {', '.join(DEPTH_SCALES)}, "
                             f"got {value!r}") from None
    return value


def _check_array(name: str, value, *, low=None, low_open=False, high=None) -> np.ndarray:
    """``value`` as a float64 array, or a ValueError naming ``name``, its range and the first bad value."""
    if low is None:
        rng = "a finite number"
    elif high is None:
        rng = f"{'>' if low_open else '>='} {low:g}"
    else:
        rng = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    try:
        arr = np.asarray(value, dtype=np.float64)
        if value is None or arr.dtype == object:
            raise TypeError
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {rng} (a number or an array of numbers), got {value!r}") from None
    bad = ~np.isfinite(arr)
    if low is not None:
        bad |= arr <= low if low_open else arr < low
    if high is not None:
        bad |= arr > high
    if np.any(bad):
        raise ValueError(f"{name} must be {rng}, got {float(arr[bad].ravel()[0])!r}")
    return arr


@dataclasses.dataclass(frozen=True)
class Spec:
    """A residual (or feedforward) network at initialization, in the notation of docs/theory.md.

    Args:
      arch: ``"frn"`` (full residual: x = V phi(W x + b) + x + a), ``"rrn"`` (reduced: x = phi(W x + b) + x;
        sv2 and sa2 must stay 1 and 0) or ``"ff"`` (feedforward: x = phi(W x + b)).
      act: activation name (``tanh``, ``relu``, ``alpha_relu``, ``erf``) or an :class:`Activation`.
      depth: number of layers L >= 1 (static: it sets the length of the compiled scan).
      sw2, sv2, sb2, sa2: variances sigma_w^2, sigma_v^2, sigma_b^2, sigma_a^2 (>= 0).
      alpha: exponent of the alpha-ReLU, in (1/2, 1]; must stay 1 for other activations.
      p0: squared length |x0|^2 / N of both inputs (> 0).
      gamma0: their inner product x0 . x0' / N, with |gamma0| <= p0.
      branch_scale: kappa >= 0 of a residual block, x <- x + kappa branch(x) (the branch including its
        output bias), or ``"1/sqrt(L)"`` / ``"1/L"`` for L^-1/2 / L^-1 at this spec's depth; must stay 1
        for a block without a residual branch.
      decay_w, decay_v, decay_b, decay_a: variance decay exponents (finite numbers, default 0): layer l
        (1..L) has the variances sw2 l^-decay_w, sv2 l^-decay_v, sb2 l^-decay_b, sa2 l^-decay_a
        (Yang & Schoenholz 2018); a decay of a variance the block does not use must stay 0.
      survival: the survival probability s in [0, 1] of stochastic depth: layer l adds its branch with
        probability s (one Bernoulli draw per layer per network) and is the identity otherwise; the
        theory is the exact expectation over the masks. Must stay 1 for a block without a residual
        branch, and cannot be combined with variance decay (the expectation needs the same map at
        every layer).
      sg2: the variance S >= 0 of a gate's U, U_ij ~ N(0, S / N) (``highway``: T = sigmoid(U x + c));
        must stay 1 for a block without a gate.
      gate_bias: the gate's constant c (a finite number; c_i = c at initialization); must stay 0 for a
        block without a gate.
      bottleneck: the inner width r > 0 of ``bottleneck`` (a single number; None: 1/4): W: N -> rN,
        W2: rN -> rN, V: rN -> N. Static: it sets the samplers' and the model's shapes (at width N the
        inner width is round(r N), at least 1), and a new value compiles anew; must stay None for other
        blocks.
      growth: the growth k > 0 of ``densenet`` (a single number; None: 1/4): each layer appends
        phi(W x + b) with k N0 units to the stream (N0 the input width), so N_l = N0 (1 + l k). Static,
        like ``bottleneck``: a network of input width N0 has G = round(k N0) >= 1 new units per layer,
        and its theory is that of k = G / N0. Must stay None for other blocks.
      norm: ``"layer"`` for pre-LayerNorm: every residual branch sees (x - mean(x)) / std(x) instead of x
        (no affine parameters); None (default): no normalization. Static, like ``bottleneck``.
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
    branch_scale: object = 1.0
    decay_w: object = 0.0
    decay_v: object = 0.0
    decay_b: object = 0.0
    decay_a: object = 0.0
    survival: object = 1.0
    sg2: object = 1.0
    gate_bias: object = 0.0
    bottleneck: object = None
    norm: object = None
    growth: object = None

    def __post_init__(self):
        if not isinstance(self.arch, str):
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {self.arch!r}")
        get_block(self.arch)  # a registered block, or a ValueError naming the choices
        if isinstance(self.act, str):
            if self.act not in ACTIVATIONS:
                raise ValueError(f"act must be one of {', '.join(ACTIVATIONS)} (or an Activation); got {self.act!r}")
            act_name, has_alpha = self.act, self.act in ALPHA_ACTIVATIONS
        else:
            from .activations import Activation

            if not isinstance(self.act, Activation):
                raise ValueError(f"act must be an activation name or a meanfield.Activation, got {self.act!r}")
            act_name, has_alpha = self.act.name, self.act.has_alpha
        if isinstance(self.depth, bool) or not isinstance(self.depth, (int, np.integer)) or self.depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {self.depth!r}")
        object.__setattr__(self, "depth", int(self.depth))
        object.__setattr__(self, "branch_scale", branch_scale_at(self.branch_scale, self.depth))
        for name in ("sw2", "sv2", "sb2", "sa2", "branch_scale", "sg2"):
            object.__setattr__(self, name, _check_array(name, getattr(self, name), low=0.0))
        for name in (*DECAYS.values(), "gate_bias"):
            object.__setattr__(self, name, _check_array(name, getattr(self, name)))
        object.__setattr__(self, "survival", _check_array("survival", self.survival, low=0.0, high=1.0))
        if np.any(self.survival != 1.0) and any(np.any(getattr(self, d) != 0.0) for d in DECAYS.values()):
            raise ValueError("survival < 1 cannot be combined with a variance decay: the expectation over the "
                             "masks needs the same map at every layer (leave every decay at 0 or survival at 1)")
        self._check_widths()
        if self.norm is not None:
            if self.norm not in NORMS:
                raise ValueError(f"norm must be one of {', '.join(NORMS)} (or None), got {self.norm!r}")
            if not get_block(self.arch).residual:
                users = ", ".join(a for a in ARCHS if get_block(a).residual)
                raise ValueError(f"norm applies to arch {users} only (it normalizes a residual branch's input), "
                                 f"not to arch {self.arch}")
        if has_alpha:
            # alpha <= 1/2: V'(q) = E[phi'(z)^2] is infinite; alpha > 1 is not the family of the paper
            alpha = _check_array("alpha", self.alpha, low=0.5, low_open=True, high=1.0)
        else:
            alpha = _check_array("alpha", self.alpha)
        object.__setattr__(self, "alpha", alpha)
        unused = [] if has_alpha else ["alpha"]
        unused += unused_variances(self.arch)
        for name in unused:
            value = getattr(self, name)
            if np.any(value != NEUTRAL[name]):
                owner = f"act {act_name}" if name == "alpha" else f"arch {self.arch}"
                users = ", ".join(a for a in ARCHS if name not in unused_variances(a))
                applies = "applies to alpha_relu only" if name == "alpha" else f"applies to arch {users} only"
                raise ValueError(f"{name} {applies}: leave it at {NEUTRAL[name]:g} for {owner}, "
                                 f"got {float(value[value != NEUTRAL[name]].ravel()[0])!r}")
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
        if isinstance(self.act, str):  # valid numbers: now load the activation (this imports jax)
            from .activations import get_activation

            object.__setattr__(self, "act", get_activation(self.act))

    def _check_widths(self):
        """Each width field (:data:`~meanfield.blocks.WIDTHS`): a single number > 0 for a block that has
        it (None: its default), None for one that does not."""
        used = get_block(self.arch).widths
        for name, default in WIDTHS.items():
            value = getattr(self, name)
            if name not in used:
                if value is not None:
                    users = ", ".join(a for a in ARCHS if name in get_block(a).widths)
                    raise ValueError(f"{name} applies to arch {users} only: leave it unset for arch {self.arch}, "
                                     f"got {value!r}")
                continue
            if value is None:
                value = default
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a single number > 0 ({WIDTH_MEANING[name][0]}), got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def block(self):
        """The :class:`~meanfield.blocks.Block` of ``arch`` with this spec's widths and normalization (what
        the engines compile)."""
        return get_block(self.arch).at({name: getattr(self, name) for name in WIDTHS}, self.norm)

    @property
    def shape(self) -> tuple[int, ...]:
        """Broadcast shape of the numeric hyperparameters (() for a single network)."""
        return np.broadcast_shapes(*(getattr(self, f).shape for f in HYPER_FIELDS))

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def hyper(self) -> Hyper:
        """Hyperparameters broadcast to :attr:`shape`, as float64 numpy arrays.

        A variance the block does not use is set to its neutral value (for the reduced residual and
        feedforward networks sv2 = 1 and sa2 = 0: they have no V and no a), whatever the spec says.
        """
        shape = self.shape
        vals = {f: np.broadcast_to(getattr(self, f), shape).astype(np.float64) for f in HYPER_FIELDS}
        for name in unused_variances(self.arch):
            vals[name] = np.full(shape, NEUTRAL[name])
        if not self.act.has_alpha:
            vals["alpha"] = np.ones(shape)
        return Hyper(**vals)

    def replace(self, **changes) -> "Spec":
        return dataclasses.replace(self, **changes)
