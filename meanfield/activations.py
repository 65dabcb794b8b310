"""Activations and their Gaussian transforms (docs/theory.md, sections 2 and 4).

For z ~ N(0, q) and (z, z') ~ N(0, [[q, lam], [lam, q]]):

    V(q) = E[phi(z)^2]    W(q, lam) = E[phi(z) phi(z')]    V'(q) = E[phi'(z)^2]    M(q) = E[phi(z)]

The recursions of deep networks push q to 1e5 and beyond (and to exp(1e4) for ReLU), so the engine
works with log-domain forms: ``log_V(log_q)``, ``log_Vp(log_q)``, the correlation map
``corr(log_q, c) = W(q, c q) / V(q)`` and ``M_scaled(log_q, log_s) = M(q) / exp(log_s)``. The plain
transforms ``V, W, Vp, M`` are methods built from them. Every transform also takes ``alpha`` (used only
by the alpha-ReLU) so that alpha can be swept like a variance.

Closed forms: ReLU (arc-cosine kernel), alpha-ReLU (through c_alpha and an exact one-dimensional
integral for J_alpha), erf. tanh and user activations (:func:`custom`) have quadrature rules built on
:mod:`meanfield.quadrature` (tanh a dedicated two-dimensional rule for W that keeps 1e-8 relative
accuracy for q in [1e-6, 1e8] and every correlation in [-1, 1]), and read their transforms at run time
from tables built from those rules (:mod:`meanfield.tables`): as fast as a closed form, within 1e-10
of the rules. ``act.exact`` is the activation on its rules alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf, gammaln

from . import quadrature as quad
from . import tables
from ._x64 import in_float64

_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False)
class Activation:
    """An activation phi with its Gaussian transforms (see the module docstring for the conventions).

    Instances are hashable by identity, so they can be static arguments of ``jax.jit``.
    """

    name: str
    phi: Callable  # (x, alpha) -> phi(x)
    dphi: Callable  # (x, alpha) -> phi'(x)
    log_V: Callable  # (log_q, alpha) -> log V(q)
    log_Vp: Callable  # (log_q, alpha) -> log V'(q)
    corr: Callable  # (log_q, c, alpha) -> W(q, c q) / V(q)
    M_scaled: Callable  # (log_q, log_s, alpha) -> M(q) / exp(log_s)
    odd: bool = False
    has_alpha: bool = False
    #: (log_q, delta, alpha) -> 1 - corr(log_q, 1 - delta): given where it can be computed without the
    #: cancellation of 1 - corr near c = 1 (ReLU correlations converge to 1 like 1/l^2).
    decorr: Callable | None = None
    #: Tabulated activations (tanh, ``custom``): the quadrature rules the table is checked against
    #: and that answer outside its range of q; and the table itself (:class:`meanfield.tables.Lazy`).
    exact: Activation | None = None
    table: tables.Lazy | None = None
    #: Tabulated activations: the same transforms without the per-call range check, for an engine that
    #: checks ``table.covers(q)`` itself and reruns with this activation otherwise (see theory.py).
    unchecked: Activation | None = None

    def one_minus_corr(self, log_q, delta, alpha=1.0):
        if self.decorr is not None:
            return self.decorr(log_q, delta, alpha)
        return 1.0 - self.corr(log_q, 1.0 - delta, alpha)

    # Plain transforms, for users and tests: computed in float64 (inputs are read as float64).
    @in_float64
    def V(self, q, alpha=1.0):
        return jnp.exp(self.log_V(jnp.log(jnp.asarray(q, float)), alpha))

    @in_float64
    def Vp(self, q, alpha=1.0):
        return jnp.exp(self.log_Vp(jnp.log(jnp.asarray(q, float)), alpha))

    @in_float64
    def W(self, q, lam, alpha=1.0):
        q = jnp.asarray(q, float)
        log_q = jnp.log(q)
        return jnp.exp(self.log_V(log_q, alpha)) * self.corr(log_q, jnp.asarray(lam, float) / q, alpha)

    @in_float64
    def M(self, q, alpha=1.0):
        return self.M_scaled(jnp.log(jnp.asarray(q, float)), 0.0, alpha)

    def __repr__(self):
        return f"Activation({self.name!r})"


#: Range of q the tables of tanh and ``custom`` activations cover (with a margin): the range over which
#: the transforms are verified; outside it their quadrature rules answer.
TABLE_Q_RANGE = (1e-6, 1e8)


def _tabulated(exact: Activation, rules: tables.ExactRules, key: Callable[[], str],
               q_range=TABLE_Q_RANGE) -> Activation:
    """``exact`` with its transforms read from a table (built from ``rules`` on first use).

    ``rules`` may be slower and more accurate than ``exact``'s own transforms, which answer outside the
    table's range and everywhere if the table fails its check (see :mod:`meanfield.tables`).
    """
    lo, hi = (float(x) for x in q_range)
    if not 0 < lo < hi:
        raise ValueError(f"q_range must satisfy 0 < lo < hi, got {q_range!r}")
    layout = tables.Layout(math.log(lo) - 0.1, math.log(hi) + 0.1, odd=exact.odd)
    lazy = tables.Lazy(exact.name, key, layout, rules)
    fallback = tables.ExactRules(
        log_V=lambda u: exact.log_V(u, 1.0),
        log_Vp=lambda u: exact.log_Vp(u, 1.0),
        corr=lambda u, c: exact.corr(u, c, 1.0),
        decorr=lambda u, delta: exact.one_minus_corr(u, delta, 1.0),
        M_over_sqrt_V=None if exact.odd else lambda u: exact.M_scaled(u, 0.5 * exact.log_V(u, 1.0), 1.0),
    )

    def transforms(check: tables.ExactRules | None) -> dict:
        def log_V(log_q, alpha=1.0):
            t = lazy.get()
            return exact.log_V(log_q, alpha) if t is None else tables.log_V(t, check, log_q)

        def log_Vp(log_q, alpha=1.0):
            t = lazy.get()
            return exact.log_Vp(log_q, alpha) if t is None else tables.log_Vp(t, check, log_q)

        def corr(log_q, c, alpha=1.0):
            t = lazy.get()
            return exact.corr(log_q, c, alpha) if t is None else tables.corr(t, check, log_q, c)

        def decorr(log_q, delta, alpha=1.0):
            t = lazy.get()
            if t is None:
                return exact.one_minus_corr(log_q, delta, alpha)
            return tables.one_minus_corr(t, check, log_q, delta)

        def M_scaled(log_q, log_s, alpha=1.0):
            t = lazy.get()
            if t is None or exact.odd:
                return exact.M_scaled(log_q, log_s, alpha)
            return tables.M_over_sqrt_V(t, check, log_q) * jnp.exp(0.5 * log_V(log_q) - log_s)

        return dict(log_V=log_V, log_Vp=log_Vp, corr=corr, decorr=decorr, M_scaled=M_scaled, exact=exact,
                    table=lazy)

    unchecked = dataclasses.replace(exact, **transforms(None))
    return dataclasses.replace(exact, **transforms(fallback), unchecked=unchecked)


# ----------------------------------------------------------------------------------------------- ReLU
def _relu_corr(log_q, c, alpha=1.0):
    c = jnp.clip(c, -1.0, 1.0)
    return (jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0)) + (jnp.pi - jnp.arccos(c)) * c) / jnp.pi


def _relu_decorr(log_q, delta, alpha=1.0):
    # c = 1 - delta, theta = arccos c; 1 - J_1(c) = (theta - sin theta + (pi - theta) delta) / pi, with
    # theta - sin theta by its series below theta = 1e-2 (the direct difference cancels there).
    delta = jnp.clip(delta, 0.0, 2.0)
    theta = 2.0 * jnp.arcsin(jnp.sqrt(0.5 * delta))
    t2 = theta * theta
    series = theta * t2 / 6.0 * (1.0 - t2 / 20.0 * (1.0 - t2 / 42.0 * (1.0 - t2 / 72.0)))
    tms = jnp.where(theta < 1e-2, series, theta - jnp.sin(theta))
    return (tms + (jnp.pi - theta) * delta) / jnp.pi


relu = Activation(
    name="relu",
    phi=lambda x, alpha=1.0: jnp.maximum(x, 0.0),
    dphi=lambda x, alpha=1.0: (x > 0).astype(jnp.result_type(x, float)),
    log_V=lambda log_q, alpha=1.0: log_q - math.log(2.0),
    log_Vp=lambda log_q, alpha=1.0: jnp.full_like(log_q, -math.log(2.0)),
    corr=_relu_corr,
    M_scaled=lambda log_q, log_s, alpha=1.0: jnp.exp(0.5 * log_q - log_s - 0.5 * _LOG_2PI),
    decorr=_relu_decorr,
)


# ----------------------------------------------------------------------------------------- alpha-ReLU
def log_c_alpha(alpha):
    """log c_alpha, c_alpha = E[psi_alpha(z)^2] = 2^(alpha-1) Gamma(alpha + 1/2) / sqrt(pi), alpha > -1/2."""
    return (alpha - 1.0) * math.log(2.0) + gammaln(alpha + 0.5) - 0.5 * math.log(math.pi)


def J_alpha(c, alpha):
    """Normalized alpha-ReLU kernel J_alpha(c) = E[psi(u) psi(u')] / c_alpha, unit variances, corr c.

    Exact rewriting of docs/theory.md's integral (tan-half-angle substitution, Phi = (pi - arccos c) / 2):

        J_alpha(c) = Gamma(alpha+1) 2^alpha / (pi c_alpha) * int_0^Phi [sin(Phi-t) sin(Phi+t)]^alpha dt,

    evaluated with a tanh-sinh rule (the integrand has an algebraic endpoint singularity). Valid for
    alpha > -1/2, so J_(alpha-1) in the derivative identity J_alpha' = alpha^2/(2 alpha - 1) J_(alpha-1)
    is available too. J_alpha(1) = 1 and J_alpha(-1) = 0.
    """
    c = jnp.clip(jnp.asarray(c, float), -1.0, 1.0)
    alpha = jnp.asarray(alpha, float)
    t, _, w = quad.tanh_sinh_rule()
    big_phi = 0.5 * (jnp.pi - jnp.arccos(c))
    theta = jnp.pi - 2.0 * big_phi  # = arccos(c), kept in the form that pairs with big_phi
    bp = big_phi[..., None]
    # integrand after t -> Phi (1 - u):  Phi * [sin(Phi u) sin(theta + Phi u)]^alpha
    a = alpha[..., None]
    # logs factor by factor: the product of two tiny sines would underflow
    log_prod = jnp.log(jnp.sin(bp * t)) + jnp.log(jnp.sin(theta[..., None] + bp * t))
    integral = big_phi * jnp.sum(w * jnp.exp(a * log_prod), -1)
    # The same rule at c = 1 (Phi = pi/2, integrand cos^(2 alpha)) gives the exact normalization
    # sqrt(pi) Gamma(alpha + 1/2) / (2 Gamma(alpha + 1)) up to rounding; dividing by it makes J(1) = 1.
    half_pi = 0.5 * jnp.pi
    norm = half_pi * jnp.sum(w * jnp.exp(2.0 * a * jnp.log(jnp.sin(half_pi * t))), -1)
    return jnp.where(big_phi > 0, integral / norm, 0.0)


def _alpha_relu_log_M1(alpha):
    # E[psi_alpha(z)] for z ~ N(0, 1): 2^(alpha/2) Gamma((alpha+1)/2) / (2 sqrt(pi))
    return 0.5 * alpha * math.log(2.0) + gammaln(0.5 * (alpha + 1.0)) - math.log(2.0 * math.sqrt(math.pi))


def _alpha_relu_phi(x, alpha):
    pos = x > 0
    return jnp.where(pos, jnp.exp(alpha * jnp.log(jnp.where(pos, x, 1.0))), 0.0)


def _alpha_relu_dphi(x, alpha):
    pos = x > 0
    return jnp.where(pos, alpha * jnp.exp((alpha - 1.0) * jnp.log(jnp.where(pos, x, 1.0))), 0.0)


alpha_relu = Activation(
    name="alpha_relu",
    phi=_alpha_relu_phi,
    dphi=_alpha_relu_dphi,
    log_V=lambda log_q, alpha: log_c_alpha(alpha) + alpha * log_q,
    log_Vp=lambda log_q, alpha: 2.0 * jnp.log(alpha) + log_c_alpha(alpha - 1.0) + (alpha - 1.0) * log_q,
    corr=lambda log_q, c, alpha: J_alpha(c, alpha),
    M_scaled=lambda log_q, log_s, alpha: jnp.exp(_alpha_relu_log_M1(alpha) + 0.5 * alpha * log_q - log_s),
    has_alpha=True,
)


# ------------------------------------------------------------------------------------------------ erf
def _erf_log_V(log_q, alpha=1.0):
    # V = (2/pi) arcsin(2q / (1 + 2q)), written with 1 / (1 + 1/(2q)) so huge q stays finite
    x = 1.0 / (1.0 + 0.5 * jnp.exp(-log_q))
    return jnp.log(2.0 / jnp.pi * jnp.arcsin(x))


def _erf_corr(log_q, c, alpha=1.0):
    x = 1.0 / (1.0 + 0.5 * jnp.exp(-log_q))
    return jnp.arcsin(jnp.clip(c, -1.0, 1.0) * x) / jnp.arcsin(x)


def _erf_decorr(log_q, delta, alpha=1.0):
    # 1 - rho = (arcsin x - arcsin(c x)) / arcsin x with x = 2q / (1 + 2q); for c >= 0,
    # arcsin a - arcsin b = arcsin((a^2 - b^2) / (a sqrt(1 - b^2) + b sqrt(1 - a^2))) and
    # a^2 - b^2 = x^2 delta (2 - delta): no difference of nearly equal numbers anywhere.
    delta = jnp.clip(delta, 0.0, 2.0)
    inv = 0.5 * jnp.exp(-log_q)  # 1 / (2q)
    x = 1.0 / (1.0 + inv)
    one_minus_x = inv / (1.0 + inv)
    c = 1.0 - delta
    one_minus_cx = one_minus_x + delta * x
    num = x * x * delta * (2.0 - delta)
    den = x * jnp.sqrt(one_minus_cx * (1.0 + c * x)) + c * x * jnp.sqrt(one_minus_x * (1.0 + x))
    near = jnp.arcsin(num / jnp.where(den > 0, den, 1.0)) / jnp.arcsin(x)
    return jnp.where(delta < 0.5, near, 1.0 - _erf_corr(log_q, c))


erf_act = Activation(
    name="erf",
    phi=lambda x, alpha=1.0: erf(x),
    dphi=lambda x, alpha=1.0: 2.0 / math.sqrt(math.pi) * jnp.exp(-x * x),
    log_V=_erf_log_V,
    # V'(q) = (4/pi) E[exp(-2 z^2)] = (4/pi) / sqrt(1 + 4q)
    log_Vp=lambda log_q, alpha=1.0: math.log(4.0 / math.pi) - 0.5 * jnp.log1p(4.0 * jnp.exp(log_q)),
    corr=_erf_corr,
    M_scaled=lambda log_q, log_s, alpha=1.0: jnp.zeros_like(log_q - log_s),
    odd=True,
    decorr=_erf_decorr,
)


# ----------------------------------------------------------------------------------------------- tanh
def _sech2(x):
    return 1.0 / jnp.cosh(jnp.minimum(jnp.abs(x), 350.0)) ** 2


def _tanh_moments(q):
    """(E[tanh^2], E[sech^4], E[sech^2]) for z ~ N(0, q): one set of nodes, one tanh per node.

    The integrands are even, so the half-line rule is doubled. sech^2 = 1 - tanh^2 loses only absolute
    precision (1e-16) where it is tiny, which is invisible in these expectations.
    """
    sq = jnp.sqrt(q)
    u, w = quad.half_normal_rule(1.0 / jnp.maximum(sq, 1e-300), n_panels=20, n=8)
    t = jnp.tanh(sq[..., None] * u)
    t2 = t * t
    s2 = 1.0 - t2
    return 2.0 * jnp.sum(w * t2, -1), 2.0 * jnp.sum(w * s2 * s2, -1), 2.0 * jnp.sum(w * s2, -1)


def _tanh_log_V(log_q, alpha=1.0):
    return jnp.log(_tanh_moments(jnp.exp(log_q))[0])


def _tanh_log_Vp(log_q, alpha=1.0):
    return jnp.log(_tanh_moments(jnp.exp(log_q))[1])


# Two-dimensional tanh rule. Outer: x ~ N(0, q) on x >= 0 (the integrands are even under
# (x, y) -> (-x, -y)), geometric panels anchored at the kink x = 0. Inner: y | x ~ N(c x, sigma^2) with
# sigma^2 = q (1 - c^2), by one of two rules with the same number of nodes, chosen per outer node:
#   (A) sigma <= 1: y = c x + sigma w; the integrand is analytic within |Im w| < pi / (2 sigma), so
#       uniform Gauss-Legendre panels in w on [-9.5, 9.5] converge fast.
#   (B) sigma > 1: the kink of tanh is narrow against the Gaussian, so split tanh = sign + r with
#       r = tanh - sign decaying like exp(-2|y|): the sign part is an erf in closed form and r (and
#       sech^2) are integrated on fixed graded panels in y on [-20, 20] against N(y; c x, sigma^2).
# Either way each (outer, inner) pair costs one or two exponentials in a single fused reduction.
_N_INNER = 96
_WA, _WA_W = quad.normal_uniform_rule(_N_INNER // 8, 8)
_YB_EDGES = np.array([0.0, 0.7, 1.5, 2.5, 3.8, 5.5, 8.0, 12.0, 20.0])
_yb, _yb_w = quad.panels(_YB_EDGES, _N_INNER // (2 * (len(_YB_EDGES) - 1)))
_YB = np.concatenate([-_yb[::-1], _yb])
_YB_W = np.concatenate([_yb_w[::-1], _yb_w]) / np.sqrt(2 * np.pi)
_YB_RW = _YB_W * (np.tanh(_YB) - np.sign(_YB))  # weights for r = tanh - sign
_YB_SW = _YB_W / np.cosh(_YB) ** 2  # weights for sech^2 = 1 - tanh^2
assert _YB.size == _N_INNER and _WA.size == _N_INNER


# Outer panels: 16 keep 5e-10 up to q = 1e8; 10 keep 9e-10 up to q = _Q_SPLIT (the panels grow by a
# ratio (38 sqrt q)^(1/P), and the error is set by that ratio); 24 keep ~2e-12 up to 1e8 (measured
# against meanfield.reference). The quadrature path takes 10 below _Q_SPLIT and 16 above; the tables
# (which carry tanh at run time, see _TANH_BUILD_RULE) are built with 24.
_Q_SPLIT = 1e4
_OUTER_PANELS_SMALL_Q, _OUTER_PANELS = 10, 16


def _tanh_outer(q, delta, n_panels=_OUTER_PANELS):
    """Outer nodes and inner-rule choice at c = 1 - delta (sigma from delta: no cancellation near c = 1)."""
    sq = jnp.sqrt(q)
    delta = jnp.clip(delta, 0.0, 2.0)
    c = 1.0 - delta
    sigma = sq * jnp.sqrt(delta * (2.0 - delta))
    u, w = quad.half_normal_rule(1.0 / jnp.maximum(sq, 1e-300), n_panels=n_panels)
    x = sq[..., None] * u
    use_a = jnp.broadcast_to((sigma <= 1.0)[..., None], x.shape)
    sig = jnp.broadcast_to(sigma[..., None], x.shape)
    safe_sig = jnp.where(use_a, 1.0, sig)
    return x, w, c[..., None] * x, sig, safe_sig, use_a


def _tanh_W(q, c, n_panels=_OUTER_PANELS):
    """W(q, c q) = 2 int_0^inf tanh(x) E[tanh(y) | x] N(x; 0, q) dx (direct: accurate near c = 0)."""
    x, w, m, sig, safe_sig, use_a = _tanh_outer(q, 1.0 - jnp.clip(c, -1.0, 1.0), n_panels)
    a, mm, sg, ssg = use_a[..., None], m[..., None], sig[..., None], safe_sig[..., None]
    # rule A uses tanh(u) = 1 - 2 / (1 + exp(2u)); rule B the Gaussian factor: one exp either way
    ex = jnp.exp(jnp.minimum(jnp.where(a, 2.0 * (mm + sg * _WA), -0.5 * ((_YB - mm) / ssg) ** 2), 700.0))
    total = jnp.sum(jnp.where(a, _WA_W * (1.0 - 2.0 / (1.0 + ex)), _YB_RW * ex), -1)
    t = jnp.where(use_a, total, erf(m / (safe_sig * math.sqrt(2.0))) + total / safe_sig)
    return 2.0 * jnp.sum(w * jnp.tanh(x) * t, -1)


def _tanh_half_sq_diff(q, delta, n_panels=_OUTER_PANELS):
    """(1/2) E[(tanh x - tanh y)^2] at c = 1 - delta, without the cancellation of V - W near c = 1.

    Rule A forms D = tanh x - tanh y from E = exp(-2|.|) without subtracting nearly equal numbers:
    for |x - y| >= 0.1, tanh|x| - tanh|y| = 2 (E_y - E_x) / ((1 + E_x)(1 + E_y)); below, the exact
    D = sinh(x - y) sech x sech y with sinh by its Taylor series and x - y = delta x - sigma w exact.
    Rule B (sigma > 1, where V - W is not small) uses E[tanh(y)|x] and E[tanh(y)^2|x] on its nodes.
    One exponential per node pair either way.
    """
    delta = jnp.clip(delta, 0.0, 2.0)
    x, w, m, sig, safe_sig, use_a = _tanh_outer(q, delta, n_panels)
    a, xx, mm, sg, ssg = use_a[..., None], x[..., None], m[..., None], sig[..., None], safe_sig[..., None]
    b = mm + sg * _WA
    ex = jnp.exp(jnp.where(a, -2.0 * jnp.abs(b), -0.5 * ((_YB - mm) / ssg) ** 2))
    ex_x = jnp.exp(-2.0 * x)[..., None]  # x >= 0
    z = delta[..., None, None] * xx - sg * _WA  # x - y
    z2 = z * z
    sinh_z = z * (1 + z2 / 6 * (1 + z2 / 20 * (1 + z2 / 42 * (1 + z2 / 72))))
    small = jnp.abs(z) < 0.1
    d_taylor = sinh_z * 4.0 * jnp.sqrt(ex_x * ex) / ((1.0 + ex_x) * (1.0 + ex))
    same_sign = b >= 0
    d_far = jnp.where(same_sign, 2.0 * (ex - ex_x), 2.0 * (1.0 - ex_x * ex)) / ((1.0 + ex_x) * (1.0 + ex))
    diff = jnp.where(small, d_taylor, d_far)
    sum1 = jnp.sum(jnp.where(a, _WA_W * diff * diff, _YB_RW * ex), -1)
    sum2 = jnp.sum(jnp.where(a, 0.0, _YB_SW * ex), -1)
    th = jnp.tanh(x)
    t_b = erf(m / (safe_sig * math.sqrt(2.0))) + sum1 / safe_sig
    cond_b = th * th - 2.0 * th * t_b + 1.0 - sum2 / safe_sig
    return jnp.sum(w * jnp.where(use_a, sum1, cond_b), -1)


# Large spread, sigma = sqrt(q (1 - c^2)) >= _SIGMA_SPLIT: with tanh = sign + r (r = tanh - sign, odd,
# decaying like exp(-2|x|)),
#     W = (2/pi) arcsin c + 2 E[sign(x) r(y)] + E[r(x) r(y)],
# the middle term is one-dimensional (E[sign x | y] = erf(c y / (sigma sqrt 2))) and the last is a
# moment expansion in 1/sigma^2 with mu_k = int x^k r(x) dx = -4 k! eta(k+1) / 2^(k+1). Against the
# nested adaptive quadrature: <= 4e-11 relative at sigma = 8, 3e-13 at 12, 1e-16 beyond 30.
_SIGMA_SPLIT = 8.0
_ETA = {2: math.pi**2 / 12, 4: 7 * math.pi**4 / 720, 6: 31 * math.pi**6 / 30240,
        8: 127 * math.pi**8 / 1209600}  # Dirichlet eta
_MU1, _MU3, _MU5, _MU7 = (-4.0 * math.factorial(k) * _ETA[k + 1] / 2 ** (k + 1) for k in (1, 3, 5, 7))
_YH_RW = _yb_w * (np.tanh(_yb) - 1.0)  # r on [0, 20] (graded panels of rule B)


def _tanh_large_sigma(q, delta):
    """(W - (2/pi) arcsin c, sigma) for sigma >= _SIGMA_SPLIT (see above); c = 1 - delta."""
    delta = jnp.clip(delta, 0.0, 2.0)
    c = 1.0 - delta
    sq = jnp.sqrt(q)
    sigma = jnp.maximum(sq * jnp.sqrt(delta * (2.0 - delta)), 1e-300)
    y = _yb
    dens = jnp.exp(-0.5 * y * y / q[..., None]) / jnp.sqrt(2.0 * jnp.pi * q[..., None])
    t2 = 2.0 * jnp.sum(_YH_RW * erf(c[..., None] * y / (sigma[..., None] * math.sqrt(2.0))) * dens, -1)
    s2 = sigma * sigma
    # E[r(x) r(y)] = N2(0) sum_n (-1/2)^n / n! int int r r Q^n, Q = (x^2 - 2 c x y + y^2) / sigma^2
    t3 = (c * _MU1**2 / s2 - c * _MU1 * _MU3 / s2**2
          + (12 * c * _MU1 * _MU5 + 12 * c * _MU3**2 + 8 * c**3 * _MU3**2) / (48 * s2**3)
          - (16 * c * _MU1 * _MU7 + 48 * c * _MU3 * _MU5 + 64 * c**3 * _MU3 * _MU5) / (384 * s2**4)
          ) / (2 * jnp.pi * sq * sigma)
    return 2.0 * t2 + t3, sigma


_BLOCK = 16  # points per block of the two-dimensional rule


class _Rule(NamedTuple):
    """Settings of the tanh quadrature: where the large-sigma series takes over, outer panel counts."""

    sigma_split: float
    panels_small_q: int  # q <= _Q_SPLIT
    panels: int


#: The quadrature path (<= 5e-10 relative up to q = 1e8) and the table build (~1e-11, 3-4x slower; the
#: series is 1e-13 at sigma = 14): one rule throughout, so the tabulated functions have no seams.
_TANH_FAST_RULE = _Rule(_SIGMA_SPLIT, _OUTER_PANELS_SMALL_Q, _OUTER_PANELS)
_TANH_BUILD_RULE = _Rule(14.0, 24, 24)


def _split_eval(q, delta, cheap, full, rule=_TANH_FAST_RULE):
    """``cheap`` everywhere, then ``full`` only where sigma < rule.sigma_split, in compacted blocks.

    Grids mix the regimes (sigma grows with depth); evaluating the two-dimensional rule only on the
    points that need it, with the outer panel count their q needs, is what keeps deep tanh sweeps fast.
    ``full(q, delta, n_panels)``. Shapes broadcast; returns q's shape.
    """
    q, delta = jnp.broadcast_arrays(jnp.asarray(q, float), jnp.asarray(delta, float))
    shape = q.shape
    q, delta = q.ravel(), delta.ravel()
    out, sigma = cheap(q, delta)
    need = sigma < rule.sigma_split
    small_q = q <= _Q_SPLIT
    if q.size <= _BLOCK:
        vals = full(q, delta, rule.panels)
        if rule.panels_small_q != rule.panels:
            vals = jnp.where(small_q, full(q, delta, rule.panels_small_q), vals)
        return jnp.where(need, vals, out).reshape(shape)
    for mask, n_panels in ((need & small_q, rule.panels_small_q), (need & ~small_q, rule.panels)):
        out = _fill_blocks(out, mask, lambda q, delta, n_panels=n_panels: full(q, delta, n_panels), q, delta)
    return out.reshape(shape)


def _fill_blocks(out, mask, fn, *args):
    """``out`` with ``fn(*args)`` where ``mask``, evaluated on the masked points only, _BLOCK at a time.

    Flat arrays. Bounds both the work (a costly rule runs only where it is needed) and the memory (a
    two-dimensional rule holds ~1e5 numbers per point).
    """
    n = out.size
    if n <= _BLOCK:
        return jnp.where(mask, fn(*args), out)
    idx = jnp.nonzero(mask, size=n, fill_value=0)[0]
    count = jnp.sum(mask)

    def block(i, out):
        start = jnp.clip(i * _BLOCK, 0, n - _BLOCK)
        pos = start + jnp.arange(_BLOCK)
        sel = idx[pos]
        vals = fn(*(a[sel] for a in args))
        return out.at[sel].set(jnp.where(pos < count, vals, out[sel]))

    return jax.lax.fori_loop(0, (count + _BLOCK - 1) // _BLOCK, block, out)


def _tanh_W_split(q, c, rule=_TANH_FAST_RULE):
    c = jnp.clip(c, -1.0, 1.0)

    def cheap(q, delta):
        rest, sigma = _tanh_large_sigma(q, delta)
        return 2.0 / jnp.pi * jnp.arcsin(1.0 - delta) + rest, sigma

    return _split_eval(q, 1.0 - c, cheap, lambda q, delta, n_panels: _tanh_W(q, 1.0 - delta, n_panels), rule)


def _tanh_corr(log_q, c, alpha=1.0, rule=_TANH_FAST_RULE):
    q = jnp.exp(log_q)
    # c = 1 means identical pre-activations: W = V exactly (the two rules agree only to ~1e-10)
    return jnp.where(c >= 1.0, 1.0, _tanh_W_split(q, c, rule) / jnp.exp(_tanh_log_V(log_q)))


def _tanh_decorr(log_q, delta, alpha=1.0, rule=_TANH_FAST_RULE):
    q = jnp.exp(log_q)

    def cheap(q, delta):
        # V - W = (2/pi) arccos c - E[sech^2] - (W - (2/pi) arcsin c), arccos c = 2 arcsin sqrt(delta/2)
        rest, sigma = _tanh_large_sigma(q, delta)
        arccos = 2.0 * jnp.arcsin(jnp.sqrt(0.5 * jnp.clip(delta, 0.0, 2.0)))
        return 2.0 / jnp.pi * arccos - _tanh_moments(q)[2] - rest, sigma

    return _split_eval(q, delta, cheap, _tanh_half_sq_diff, rule) / jnp.exp(_tanh_log_V(log_q))


#: tanh by quadrature alone: what the tables are checked against, and what answers outside their range.
tanh_quadrature = Activation(
    name="tanh",
    phi=lambda x, alpha=1.0: jnp.tanh(x),
    dphi=lambda x, alpha=1.0: _sech2(x),
    log_V=_tanh_log_V,
    log_Vp=_tanh_log_Vp,
    corr=_tanh_corr,
    M_scaled=lambda log_q, log_s, alpha=1.0: jnp.zeros_like(log_q - log_s),
    odd=True,
    decorr=_tanh_decorr,
)

#: Version of the tanh rules the table is built from: part of the table's cache key.
_TANH_RULE_VERSION = "tanh-quadrature-1"

tanh = _tabulated(
    tanh_quadrature,
    tables.ExactRules(
        log_V=_tanh_log_V,
        log_Vp=_tanh_log_Vp,
        corr=lambda u, c: _tanh_corr(u, c, rule=_TANH_BUILD_RULE),
        decorr=lambda u, delta: _tanh_decorr(u, delta, rule=_TANH_BUILD_RULE),
    ),
    key=lambda: f"{_TANH_RULE_VERSION} {_TANH_BUILD_RULE}",
)


# ------------------------------------------------------------------------------------- user activation
_TAU, _TAU_W = quad.gauss_legendre(8)  # phi(a + b) - phi(a - b) = b sum_k w_k phi'(a + tau_k b)
_GH, _GH_W = quad.gauss_hermite(20)
_GH_POS, _GH_POS_W = _GH[_GH > 0], 2.0 * _GH_W[_GH > 0]  # even integrands: w > 0, weights doubled
#: sqrt(q delta / 2) below which custom activations take 1 - rho from the difference rule (the
#: integrand is then analytic in a strip of half-width >= (pi/2) / 0.25 around the real line: Gauss-
#: Hermite with 20 nodes is exact to rounding); above it 1 - W/V has no cancellation to speak of.
_SB_SPLIT = 0.25
#: Version of the rules below: part of the cache key of every custom activation's table.
_CUSTOM_RULE_VERSION = "custom-quadrature-1"


def _fingerprint(*fns) -> str:
    """A hash of elementwise functions: their values at fixed points and their jaxprs (addresses cut).

    Two functions that agree on all of these share a table; any change of phi or phi' changes it.
    """
    x = jnp.asarray(np.concatenate([np.linspace(-50.0, 50.0, 201), np.logspace(-10, 3, 27),
                                    -np.logspace(-10, 3, 27)]))
    digest = hashlib.sha256()
    for fn in fns:
        digest.update(np.asarray(fn(x), dtype=np.float64).tobytes())
        jaxpr = jax.make_jaxpr(fn)(x)
        digest.update(re.sub(r" at 0x[0-9a-fA-F]+", "", str(jaxpr)).encode())
        for const in jaxpr.consts:
            digest.update(np.asarray(const).tobytes())
    return digest.hexdigest()


def custom(phi: Callable, dphi: Callable | None = None, *, odd: bool = False, name: str = "custom",
           q_range=TABLE_Q_RANGE, tabulate: bool = True) -> Activation:
    """An activation from any jax-traceable elementwise ``phi(x)``; ``phi'`` by autodiff unless given.

    Its transforms are read from a table (:mod:`meanfield.tables`) over ``q_range``, built on first use
    from the quadrature rules below and cached on disk (keyed by a hash of phi and phi'); the first use
    pays the build (~1 minute on 2 CPU cores for the full range, less for a narrower one). Outside
    ``q_range``, or with ``tabulate=False``, the rules answer directly (slowly: ~1e5 evaluations of phi
    per W). ``odd=True`` (phi(-x) = -phi(x)) halves the table and makes W(q, 0) exactly 0.

    Rules (features of phi anchored at 0, of width >= 1; measured with phi = erf against its closed
    form): V, V' and M by :func:`meanfield.quadrature.normal_expectation`, ~1e-12 from q = 1e-6 to 1e8.
    W by an outer geometric rule in x and an inner rule in y | x anchored at the kink of phi(y), ~1e-11.
    1 - rho = (1/2) E[(phi(x) - phi(y))^2] / V with x, y = a +- b (a, b independent), the difference
    phi(a + b) - phi(a - b) integrated along the segment, so without cancellation near c = 1, for smooth
    phi; a kink makes that difference, and 1 - rho near c = 1, less accurate.
    """
    if not callable(phi):
        raise ValueError(f"phi must be callable, got {phi!r}")
    if dphi is None:
        grad = jax.grad(lambda x: phi(x))
        dphi_fn = lambda x: jnp.vectorize(grad)(x)  # noqa: E731
    else:
        dphi_fn = dphi

    def V(q):
        return quad.normal_expectation(lambda x: phi(x) ** 2, q)

    def Vp(q):
        return quad.normal_expectation(lambda x: dphi_fn(x) ** 2, q)

    def M(q):
        return quad.normal_expectation(phi, q)

    def cross(q, delta):
        """(E[phi(x) phi(y)], E[phi(x) (phi(x) - phi(y))], E[phi(x)^2]) by one rule, y | x ~ N(c x, sigma^2).

        c = 1 - delta; sigma from delta, which carries 1 - c to full precision. Outer: geometric panels
        in x anchored at 0; inner: nodes in y anchored where c x + sigma w = 0. The second is V - W
        without the cancellation of a difference of two quadratures: it is summed node by node, and the
        third (V by the same outer rule) shares the outer rule's error.
        """
        sq = jnp.sqrt(q)
        delta = jnp.clip(delta, 0.0, 2.0)
        c = 1.0 - delta
        sigma = sq * jnp.sqrt(delta * (2.0 - delta))
        safe = jnp.maximum(sigma, 1e-300)[..., None]
        u, wu = quad.half_normal_rule(1.0 / jnp.maximum(sq, 1e-300), n_panels=24)
        x = sq[..., None] * u

        def terms(x):
            w, ww = quad.anchored_normal_rule(-c[..., None] * x / safe, 1.0 / safe)
            f = phi(x)
            inner = jnp.sum(ww * phi(c[..., None, None] * x[..., None] + sigma[..., None, None] * w), -1)
            return f * inner, f * (f - inner), f * f

        plus, minus = terms(x), terms(-x)
        return tuple(jnp.sum(wu * (a + b), -1) for a, b in zip(plus, minus))

    def half_sq_diff(q, delta):
        """(1/2) E[(phi(x) - phi(y))^2] at c = 1 - delta, x = a + b, y = a - b; for sqrt(q delta/2) small."""
        sa = jnp.sqrt(0.5 * q * (2.0 - delta))
        sb = jnp.sqrt(0.5 * q * delta)
        ua, wa = quad.half_normal_rule(1.0 / jnp.maximum(sa, 1e-300))
        b = (sb[..., None] * _GH_POS)[..., None, :]  # (..., 1, n_w)

        def sq_diff(a):  # (phi(a + b) - phi(a - b))^2 averaged over b
            a = a[..., None]
            seg = b * jnp.sum(_TAU_W * dphi_fn(a[..., None] + _TAU * b[..., None]), -1)
            d = jnp.where(jnp.abs(b) < 0.5, seg, phi(a + b) - phi(a - b))
            return jnp.sum(_GH_POS_W * d * d, -1)

        a = sa[..., None] * ua
        return 0.5 * jnp.sum(wa * (sq_diff(a) + sq_diff(-a)), -1)

    def flat(*xs):
        xs = jnp.broadcast_arrays(*(jnp.asarray(x, float) for x in xs))
        return xs[0].shape, [x.ravel() for x in xs]

    def corr(log_q, c, alpha=1.0):
        shape, (log_q, c) = flat(log_q, c)
        q = jnp.exp(log_q)
        rho = _fill_blocks(jnp.zeros_like(q), jnp.ones(q.shape, bool), lambda q, c: cross(q, 1.0 - c)[0] / V(q),
                           q, jnp.clip(c, -1.0, 1.0))
        return rho.reshape(shape)

    def decorr(log_q, delta, alpha=1.0):
        shape, (log_q, delta) = flat(log_q, jnp.clip(delta, 0.0, 2.0))
        q = jnp.exp(log_q)
        diff = (jnp.sqrt(0.5 * q * delta) > _SB_SPLIT)
        small = _fill_blocks(jnp.zeros_like(q), ~diff, lambda q, d: half_sq_diff(q, d) / V(q), q, delta)
        def by_cross(q, d):
            _, v_minus_w, v = cross(q, d)
            return v_minus_w / v

        return _fill_blocks(small, diff, by_cross, q, delta).reshape(shape)

    exact = Activation(
        name=name,
        phi=lambda x, alpha=1.0: phi(x),
        dphi=lambda x, alpha=1.0: dphi_fn(x),
        log_V=lambda log_q, alpha=1.0: jnp.log(V(jnp.exp(log_q))),
        log_Vp=lambda log_q, alpha=1.0: jnp.log(Vp(jnp.exp(log_q))),
        corr=corr,
        M_scaled=lambda log_q, log_s, alpha=1.0: M(jnp.exp(log_q)) * jnp.exp(-log_s),
        odd=odd,
        decorr=decorr,
    )
    if not tabulate:
        return exact
    rules = tables.ExactRules(
        log_V=lambda u: exact.log_V(u), log_Vp=lambda u: exact.log_Vp(u), corr=corr, decorr=decorr,
        M_over_sqrt_V=None if odd else lambda u: M(jnp.exp(u)) / jnp.sqrt(V(jnp.exp(u))),
    )
    return _tabulated(exact, rules, key=lambda: f"{_CUSTOM_RULE_VERSION} odd={odd} {_fingerprint(phi, dphi_fn)}",
                      q_range=q_range)


BUILTIN = {"tanh": tanh, "relu": relu, "alpha_relu": alpha_relu, "erf": erf_act}


def get_activation(name) -> Activation:
    """Look up a built-in activation by name (``tanh``, ``relu``, ``alpha_relu``, ``erf``)."""
    if isinstance(name, Activation):
        return name
    try:
        return BUILTIN[name]
    except (KeyError, TypeError):
        raise ValueError(f"act must be one of {', '.join(BUILTIN)} (or an Activation); got {name!r}") from None
