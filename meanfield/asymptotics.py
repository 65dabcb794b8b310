"""Asymptotic laws of deep mean-field networks, their fixed points, and fits of the laws on trajectories.

This module owns docs/theory.md, section 5 as data: for each (architecture, activation) the predicted growth law
of p, the fixed point e* of the cosine distance with its convergence exponent delta*, the law of s and the
gradient law (A of R = exp(A sqrt(L)) for tanh-like activations, log B of R = B^L for ReLU, the power of
L for the alpha-ReLU). It also owns the feedforward contrast of Poole et al. (2016) and Schoenholz et al.
(2017): the length fixed point q*, chi_1, the correlation fixed point c* and the depth scales xi_q, xi_c.

Laws are properties of (architecture, activation), reached only at great depth (local slopes settle at
l ~ 1e3 - 1e5). :func:`measure` reads the same quantities off a long theory trajectory (or a simulation:
both are :class:`~meanfield.trajectory.Trajectory` values) as local slopes over the last octave of depth,
with an uncertainty from how much the estimate still moves between the last two octaves.

Saturating odd activations (tanh, erf) share one set of laws: for large q, V(q) -> 1, W(q, c q) ->
(2/pi) arcsin c and sqrt(q) V'(q) -> kappa = (1 / sqrt(2 pi)) int phi'(x)^2 dx (kappa = (4/3) / sqrt(2 pi)
for tanh, 2 / pi for erf), which is all the laws use.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import brentq

from ._x64 import in_float64
from .activations import J_alpha, get_activation, log_c_alpha
from .blocks import DECAYS, get_block
from .spec import Spec
from .trajectory import Trajectory

#: sqrt(q) V'(q) as q -> inf for the saturating odd activations (see the module docstring).
KAPPA = {"tanh": (4.0 / 3.0) / math.sqrt(2.0 * math.pi), "erf": 2.0 / math.pi}
#: nu of V(q) = 1 - nu q^(-1/2) + O(1/q): nu = (1 / sqrt(2 pi)) int (1 - phi(x)^2) dx.
NU = {"tanh": math.sqrt(2.0 / math.pi), "erf": 2.0 / math.pi}

#: The law keys of ``meanfield laws`` (null where a law does not apply).
LAW_KEYS = ("e_star", "delta_star", "p_exponent", "log_B", "A", "R_exponent")


# --------------------------------------------------------------------------------------- fixed points
def saturating_e_star(sv2: float, sa2: float) -> float:
    """Fixed point e* of the cosine distance of a tanh (or erf) FRN (docs/theory.md, section 5).

    The stable root in [0, 1) of sv2 (2/pi) arcsin(e) + sa2 = (sv2 + sa2) e: the large-q limit of
    gamma's increment equals e times p's increment. e = 1 is always a root and is unstable for sv2 > 0
    (arcsin has infinite slope there). sa2 = 0 (and the RRN) gives e* = 0; sv2 = 0 gives e* = 1.
    """
    sv2, sa2 = _nonneg("sv2", sv2), _nonneg("sa2", sa2)
    if sv2 == 0.0:
        return 1.0
    if sa2 == 0.0:
        return 0.0
    h = lambda e: sv2 * (2.0 / math.pi) * math.asin(e) + sa2 - (sv2 + sa2) * e  # noqa: E731
    # h(0) = sa2 > 0 and h < 0 just below 1, where h(1 - eps) ~ -sv2 (2/pi) sqrt(2 eps)
    return brentq(h, 0.0, 1.0 - 1e-14, xtol=1e-15, rtol=1e-15)


def saturating_delta_star(sv2: float, sa2: float) -> float:
    """Exponent delta* of |e - e*| ~ l^(-delta*) for a tanh (or erf) FRN (docs/theory.md, section 5).

    delta* = 1 - (2/pi) sv2 / ((sv2 + sa2) sqrt(1 - e*^2)), from linearizing e_l - e_(l-1) =
    f(e) / ((sv2 + sa2) l) at e*. Caveat (found in this project, see figures/exponents.md): V(q) = 1 -
    sqrt(2/pi) q^(-1/2) + ... feeds a forcing term of order l^(-3/2) into that difference equation when
    e* > 0, so e - e* = C l^(-delta*) + D l^(-1/2) and delta* < 1/2 wins only very slowly (see
    :func:`saturating_gap_correction`).
    """
    e = saturating_e_star(sv2, sa2)
    if sv2 == 0.0:
        return 1.0
    return 1.0 - (2.0 / math.pi) * sv2 / ((sv2 + sa2) * math.sqrt(1.0 - e * e))


@in_float64
def J_alpha_prime(c, alpha):
    """J_alpha'(c) by the derivative identity J_alpha' = alpha^2 / (2 alpha - 1) J_(alpha-1) (alpha > 1/2).

    docs/theory.md section 4; J_(alpha-1) is the normalized kernel of psi_(alpha-1) = psi_alpha' / alpha, which
    is why the identity needs J_alpha for exponents down to -1/2.
    """
    alpha = _alpha(alpha)
    return alpha * alpha / (2.0 * alpha - 1.0) * np.asarray(J_alpha(c, alpha - 1.0))


@in_float64
def alpha_relu_e_star(alpha: float) -> float:
    """The stable root e* in (0, 1) of J_alpha(c) = c, 1/2 < alpha < 1 (docs/theory.md section 4).

    J_alpha(0) > 0 and J_alpha'(1) = alpha^2 / (2 alpha - 1) > 1, so J_alpha(c) < c just below the
    unstable root c = 1 and the stable root lies in between. alpha = 1 (ReLU) has no root below 1.
    """
    alpha = _alpha(alpha)
    if alpha == 1.0:
        return 1.0
    g = lambda c: float(J_alpha(c, alpha)) - c  # noqa: E731
    hi = 1.0 - 1e-9
    while g(hi) >= 0.0:  # alpha near 1: J_alpha hugs the diagonal, the root is close to 1
        hi = 1.0 - (1.0 - hi) * 1e-2
        if 1.0 - hi < 1e-15:
            raise ValueError(f"alpha = {alpha}: no stable root of J_alpha(c) = c resolved below c = 1")
    return brentq(g, 0.0, hi, xtol=1e-15, rtol=1e-15)


@in_float64
def alpha_relu_delta_star(alpha: float) -> float:
    """Exponent of |e - e*| ~ l^(-delta*) for the alpha-ReLU FRN: (1 - J_alpha'(e*)) / (1 - alpha)."""
    alpha = _alpha(alpha)
    if alpha == 1.0:
        return 2.0  # ReLU: 1 - e ~ l^-2 (docs/theory.md, section 5)
    return (1.0 - float(J_alpha_prime(alpha_relu_e_star(alpha), alpha))) / (1.0 - alpha)


@in_float64
def alpha_relu_R_exponent(alpha: float) -> float:
    """R = Theta(L^(alpha^2 / ((1 - alpha)(2 alpha - 1)))) for the alpha-ReLU FRN (docs/theory.md, section 5).

    From log R = sum_l log(1 + sv2 sw2 V'(q^(l))) with sv2 sw2 V'(q^(l)) -> alpha^2 c_(alpha-1) /
    ((1 - alpha) c_alpha l) and c_(alpha-1) / c_alpha = 1 / (2 alpha - 1): no variance survives.
    """
    alpha = _alpha(alpha)
    if alpha == 1.0:
        return math.inf
    return alpha * alpha / ((1.0 - alpha) * (2.0 * alpha - 1.0))


# ------------------------------------------------------------------------------------ feedforward
@functools.partial(jax.jit, static_argnames=("act",))
def _ff_q_star(sw2, sb2, alpha, *, act):
    # bisection in log q on g(q) = sw2 V(q) + sb2 - q; g(tiny) <= 0 means q* = 0 (sb2 = 0, sw2 V'(0) <= 1)
    def g(log_q):
        return sw2 * jnp.exp(act.log_V(log_q, alpha) - log_q) + sb2 * jnp.exp(-log_q) - 1.0

    lo = jnp.full(jnp.shape(sw2), -60.0)
    hi = jnp.full(jnp.shape(sw2), 60.0)
    g_lo, g_hi = g(lo), g(hi)

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        pos = g(mid) > 0
        return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 80, body, (lo, hi))
    q = jnp.exp(0.5 * (lo + hi))
    q = jnp.where(g_lo <= 0, 0.0, q)
    q = jnp.where(g_hi > 0, jnp.inf, q)
    flat = (jnp.abs(g_lo) < 1e-12) & (jnp.abs(g_hi) < 1e-12)
    return jnp.where(flat, jnp.nan, q)  # a linear map with slope 1: every q is fixed


@in_float64
def ff_q_star(act, sw2, sb2, alpha=1.0):
    """Fixed point q* of the feedforward length map q = sw2 V(q) + sb2 (Poole et al. 2016, eq. 3).

    Vectorized over broadcastable ``sw2, sb2, alpha``. q* = 0 where the only fixed point is q = 0 (sb2 = 0
    and sw2 V(q) < q, e.g. tanh with sw2 <= 1); q* = inf where lengths grow without bound (ReLU with
    sw2 >= 2 and sb2 > 0: no finite fixed point); NaN where every q is fixed (ReLU at sw2 = 2, sb2 = 0).
    """
    act = get_activation(act)
    sw2, sb2, alpha = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (sw2, sb2, alpha)))
    return np.asarray(_ff_q_star(jnp.asarray(sw2), jnp.asarray(sb2), jnp.asarray(alpha), act=act))


@in_float64
def ff_chi_1(act, sw2, sb2, alpha=1.0):
    """chi_1 = sw2 V'(q*) = sw2 E[phi'(sqrt(q*) z)^2] (Poole et al. 2016, eq. 7); 1 on the critical line.

    chi_1 < 1: ordered phase (nearby inputs converge); chi_1 > 1: chaotic. For ReLU V' = 1/2 for every q,
    so chi_1 = sw2 / 2 whether or not q* is finite (critical point sw2 = 2, sb2 = 0).
    """
    act = get_activation(act)
    q = ff_q_star(act, sw2, sb2, alpha)
    sw2, alpha = np.broadcast_arrays(np.asarray(sw2, np.float64), np.asarray(alpha, np.float64))
    sw2, alpha = np.broadcast_to(sw2, q.shape), np.broadcast_to(alpha, q.shape)
    # q* = 0: the limit q -> 0 of V'(q); q* = inf: the limit q -> inf (finite only for ReLU)
    q_eval = np.clip(np.nan_to_num(q, nan=1.0), 1e-24, 1e24)
    return sw2 * np.exp(np.asarray(act.log_Vp(jnp.log(jnp.asarray(q_eval)), jnp.asarray(alpha))))


@in_float64
def ff_critical_sw2(act, sb2, alpha=1.0, bracket=(0.1, 20.0)) -> float:
    """sw2 on the order-to-chaos line chi_1(sw2, sb2) = 1 for a given sb2 (Poole et al. 2016, fig. 3)."""
    act = get_activation(act)
    f = lambda sw2: float(ff_chi_1(act, sw2, sb2, alpha)) - 1.0  # noqa: E731
    return brentq(f, *bracket, xtol=1e-12)


def _corr_slope(act, q, c, alpha):
    # d/dc corr(log q, c) by forward-mode autodiff (the tanh rules contain data-dependent loops)
    log_q = jnp.log(jnp.asarray(q, float))
    f = lambda cc: act.corr(log_q, cc, alpha)  # noqa: E731
    return float(jax.jvp(f, (jnp.asarray(c, float),), (jnp.asarray(1.0),))[1])


@in_float64
def ff_depth_scales(act, sw2: float, sb2: float, alpha: float = 1.0) -> dict:
    """Feedforward fixed points and depth scales at one (sw2, sb2) (Schoenholz et al. 2017, eqs. 5-9).

    Returns a dict with ``q_star``, ``chi_1``, ``c_star`` (stable fixed point of the correlation map
    c -> (sw2 W(q*, c q*) + sb2) / q*; c* = 1 in the ordered phase), ``xi_q`` and ``xi_c``:

        xi_q^-1 = -log(chi_1 + sw2 E[phi''(sqrt(q*) z) phi(sqrt(q*) z)])    (Schoenholz et al., eq. 5)
        xi_c^-1 = -log(sw2 E[phi'(u1) phi'(u2)]),  (u1, u2) at correlation c*  (eq. 9)

    The argument of xi_q's log is the slope of the length map at q*: by Stein's lemma
    d/dq E[phi(sqrt(q) z)^2] = E[phi'^2] + E[phi phi''], so it is computed as sw2 dV/dq(q*) by
    autodiff (for ReLU phi phi'' = 0 and it equals chi_1). The argument of xi_c's log is the slope of the
    correlation map at c* (Price's theorem, dW/dlam = E[phi' phi']), which is chi_1 at c* = 1. A scale is
    inf where its slope is >= 1 (at criticality, or where the fixed point does not exist).
    """
    act = get_activation(act)
    sw2, sb2, alpha = float(sw2), float(sb2), float(alpha)
    q = float(ff_q_star(act, sw2, sb2, alpha))
    chi_1 = float(ff_chi_1(act, sw2, sb2, alpha))
    out = dict(q_star=q, chi_1=chi_1, c_star=math.nan, xi_q=math.inf, xi_c=math.inf)
    if not (0.0 < q < math.inf):
        if q == 0.0:  # lengths die out; the correlation of vanishing signals is not defined
            out["xi_q"] = _depth_scale(chi_1)
        return out
    log_q = jnp.log(q)
    dV = float(jax.jvp(lambda lq: jnp.exp(act.log_V(lq, alpha)), (log_q,), (jnp.asarray(1.0),))[1]) / q
    out["xi_q"] = _depth_scale(sw2 * dV)
    frac = (q - sb2) / q  # sw2 V(q*) / q*
    if chi_1 <= 1.0:
        out["c_star"], slope = 1.0, chi_1
    else:
        g = lambda c: frac * float(act.corr(log_q, c, alpha)) + sb2 / q - c  # noqa: E731
        hi = 1.0 - 1e-6
        g0 = g(0.0)
        if g(hi) >= 0:
            out["c_star"] = 1.0
        elif g0 == 0.0:  # odd phi with sb2 = 0: c = 0 maps to itself
            out["c_star"] = 0.0
        else:
            lo = 0.0 if g0 > 0 else -1.0 + 1e-6
            out["c_star"] = brentq(g, lo, hi, xtol=1e-13)
        slope = frac * _corr_slope(act, q, out["c_star"], alpha) if out["c_star"] < 1.0 else chi_1
    out["xi_c"] = _depth_scale(slope)
    return out


def _depth_scale(slope: float) -> float:
    return -1.0 / math.log(slope) if 0.0 < slope < 1.0 else math.inf


# ------------------------------------------------------------------------------------------- laws
@dataclasses.dataclass(frozen=True)
class Laws:
    """Predicted asymptotic laws of one network (docs/theory.md, section 5); None where a law does not apply.

    Attributes:
      e_star: limit of the cosine distance e^(l).
      delta_star: |e - e*| ~ l^(-delta_star) (ReLU: 1 - e ~ l^-2, delta_star = 2).
      p_exponent: p ~ l^p_exponent; None where growth is exponential (ReLU).
      p_prefactor: p / l^p_exponent as l -> inf (tanh: sv2 + sa2; alpha-ReLU:
        [(1 - a) sv2 c_a sw2^a]^(1/(1-a))).
      s_exponent: s ~ l^s_exponent (None for ReLU, where log s / l -> log B).
      log_B: ReLU: log p^(l) / l -> log B and R = B^L exactly, B = 1 + sv2 sw2 / 2.
      one_minus_e_coef: ReLU: (1 - e) l^2 -> (9 pi^2 / 2) (B / (B - 1))^2.
      A: tanh-like: R = exp(A sqrt(L) + o(sqrt L)).
      R_exponent: alpha-ReLU: R = Theta(L^R_exponent).
      q_star, chi_1, c_star, xi_q, xi_c: feedforward fixed points and depth scales (arch ``ff`` only).
      laws: human-readable statement of each law.
      params: the variances the laws were computed for (sv2 = 1, sa2 = 0 for rrn and ff).
    """

    arch: str
    act: str
    alpha: float | None
    e_star: float | None = None
    delta_star: float | None = None
    p_exponent: float | None = None
    p_prefactor: float | None = None
    s_exponent: float | None = None
    log_B: float | None = None
    one_minus_e_coef: float | None = None
    A: float | None = None
    R_exponent: float | None = None
    q_star: float | None = None
    chi_1: float | None = None
    c_star: float | None = None
    xi_q: float | None = None
    xi_c: float | None = None
    laws: dict = dataclasses.field(default_factory=dict)
    params: dict = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


#: The architectures whose laws docs/theory.md, section 5 derives (others get a Laws with every law None).
LAW_ARCHS = ("frn", "rrn", "ff")


@in_float64
def predict(arch: str, act, *, sw2: float, sv2: float = 1.0, sb2: float = 0.0, sa2: float = 0.0,
            alpha: float = 1.0, branch_scale: float = 1.0, growth: float | None = None, sg2: float = 1.0,
            gate_bias: float = 0.0) -> Laws:
    """The predicted laws of docs/theory.md, section 5 for one network (scalars; validated like a Spec).

    Closed forms: FRN and RRN with tanh or erf, FRN with ReLU or alpha-ReLU, and the feedforward contrast
    for every activation. Every other residual block, and any block with a constant ``branch_scale`` other
    than 1, gets the growth laws read off its own mean-field map (:func:`block_limits`): p and R for tanh,
    erf and ReLU. Other combinations (alpha-ReLU outside the FRN, the mean-tracking RRN of a non-odd
    activation) return a :class:`Laws` with every law None. For the RRN, sv2 = 1 and sa2 = 0 whatever is
    passed. A growing stream (``densenet``, ``growth`` its k) gets the power laws of
    :func:`growth_limits`. ``sg2`` and ``gate_bias`` (a gated block's, validated like a Spec's) enter no
    law: no law is derived for a gated block (``highway``).
    """
    spec = Spec(arch, act, 1, sw2=sw2, sv2=sv2, sb2=sb2, sa2=sa2, alpha=alpha, branch_scale=branch_scale,
                growth=growth, sg2=sg2, gate_bias=gate_bias)
    if spec.shape != ():
        raise ValueError(f"predict takes scalar hyperparameters, got shape {spec.shape}")
    h = spec.hyper()
    sw2, sv2, sb2, sa2, a = (float(v) for v in (h.sw2, h.sv2, h.sb2, h.sa2, h.alpha))
    name = spec.act.name
    base = dict(arch=arch, act=name, alpha=a if spec.act.has_alpha else None,
                params=dict(sw2=sw2, sv2=sv2, sb2=sb2, sa2=sa2))
    block = get_block(arch)
    if block.grows:
        return _growth_laws(spec, base)
    if arch not in LAW_ARCHS or float(spec.hyper().branch_scale) != 1.0:
        return _block_laws(spec, base)
    if not block.residual:
        ff = ff_depth_scales(spec.act, sw2, sb2, a)
        phase = "ordered" if ff["chi_1"] < 1 else ("chaotic" if ff["chi_1"] > 1 else "critical")
        return Laws(**base, **ff, laws=dict(
            phase=f"{phase} (chi_1 = {ff['chi_1']:.6g})",
            q="q -> q*, |q - q*| ~ exp(-l / xi_q)", e="|c - c*| ~ exp(-l / xi_c)",
            R="chi_1^L (exponential)"))
    if "sv2" in block.fields and sv2 == 0.0 and (name in KAPPA or name in ("relu", "alpha_relu")):
        # no residual branch: x^(l) = x^(l-1) + a^(l), so p and gamma both grow by sa2 per layer
        grad = {"relu": "log_B", "alpha_relu": "R_exponent"}.get(name, "A")
        if sa2 == 0.0:
            return Laws(**base, p_exponent=0.0, s_exponent=0.0, **{grad: 0.0}, laws=dict(
                p="p = p0 (sv2 = sa2 = 0: every block is the identity)", e="e = e0", s="s = s0", R="R = 1"))
        return Laws(**base, e_star=1.0, delta_star=1.0, p_exponent=1.0, p_prefactor=sa2, s_exponent=0.0,
                    **{grad: 0.0}, laws=dict(p=f"p = p0 + {sa2:.6g} l", e="1 - e = (p0 - gamma0) / p ~ l^-1",
                                             s="s = s0", R="R = 1"))
    if name in KAPPA:
        kappa = KAPPA[name]
        e_star = saturating_e_star(sv2, sa2)
        delta = saturating_delta_star(sv2, sa2)
        A = 2.0 * kappa * sv2 * math.sqrt(sw2) / math.sqrt(sv2 + sa2) if sv2 + sa2 > 0 else None
        return Laws(**base, e_star=e_star, delta_star=delta, p_exponent=1.0, p_prefactor=sv2 + sa2,
                    s_exponent=1.0, A=A, laws=dict(
                        p=f"p ~ {sv2 + sa2:.6g} l", e=f"e -> {e_star:.6g}, |e - e*| ~ l^-{delta:.6g}",
                        s="s = Theta(l)", R=f"R = exp({A:.6g} sqrt(L))"))
    if name == "relu" and block.centred:  # the mean-tracking (non-centred) ReLU stream has no derived law
        B = 1.0 + sv2 * sw2 / 2.0
        K = sv2 * sb2 / 2.0 + sa2
        coef = 4.5 * math.pi**2 * (B / (B - 1.0)) ** 2 if B > 1.0 else None
        return Laws(**base, e_star=1.0, delta_star=2.0, log_B=math.log(B), one_minus_e_coef=coef, laws=dict(
            p=f"p = B^l (p0 + K/(B-1)) - K/(B-1), B = {B:.6g}, K = {K:.6g}",
            e=f"1 - e ~ {coef:.6g} l^-2" if coef else "e constant",
            s="s = exp(Theta(l))", R=f"R = B^L = exp({math.log(B):.6g} L)"))
    if name == "alpha_relu" and block.centred:
        if a == 1.0:
            return predict(arch, "relu", sw2=sw2, sv2=sv2, sb2=sb2, sa2=sa2)
        e_star = alpha_relu_e_star(a)
        delta = alpha_relu_delta_star(a)
        pref = ((1.0 - a) * sv2 * math.exp(float(log_c_alpha(a))) * sw2**a) ** (1.0 / (1.0 - a))
        r_exp = alpha_relu_R_exponent(a)
        return Laws(**base, e_star=e_star, delta_star=delta, p_exponent=1.0 / (1.0 - a), p_prefactor=pref,
                    s_exponent=1.0 / (1.0 - a), R_exponent=r_exp, laws=dict(
                        p=f"p ~ {pref:.6g} l^{1 / (1 - a):.6g}",
                        e=f"e -> {e_star:.6g}, |e - e*| ~ l^-{delta:.6g}",
                        s=f"s = Theta(l^{1 / (1 - a):.6g})", R=f"R = Theta(L^{r_exp:.6g})"))
    return Laws(**base, laws=dict(note=f"no asymptotic law known for {arch} with {name}"))


# ------------------------------------------------------------------------- laws of any residual block
#: The inputs p at which :func:`block_limits` reads a saturating activation's limits (the O(p^-1/2) terms
#: cancel between the two; tanh's transforms hold 1e-9 up to q ~ 1e10, not much beyond).
_LARGE_P = (1e8, 4e8)


def _centred_residual(spec: Spec) -> bool:
    """A residual block whose stream stays centred (or has an odd activation): its map in p alone
    describes the stream."""
    block = get_block(spec.arch)
    return block.residual and (block.centred or spec.act.odd)


def _check_mappable(spec: Spec, what: str) -> None:
    """The laws read off one block's map need a block that is the same at every layer and whose
    stream stays centred (or an odd activation)."""
    if not _centred_residual(spec):
        raise ValueError(f"{what} applies to residual blocks whose stream stays centred, not {spec.arch}")
    if spec.shape != ():
        raise ValueError(f"{what} takes scalar hyperparameters, got shape {spec.shape}")
    decays = [d for d in DECAYS.values() if float(getattr(spec.hyper(), d)) != 0.0]
    if decays or spec.norm is not None:
        raise ValueError(f"{what}: no law is derived for {', '.join(decays) or 'norm ' + str(spec.norm)} "
                         "(the map changes with depth, or p no longer enters the branch)")


def _block_rates(spec: Spec, branch_scale: float | None = None):
    """The compiled map log p -> (log p_l / p_(l-1), log chi^(l-1) / chi^(l)) of ``spec``'s block at
    input p (zero mean, e = 1/2); ``branch_scale`` replaces the spec's. Call inside ``in_float64``."""
    from .blocks import theory_step

    h = spec.hyper()
    values = h._asdict()
    if branch_scale is not None:
        values["branch_scale"] = branch_scale
    h = h._replace(**{f: jnp.full((1,), float(v)) for f, v in values.items()})

    @jax.jit
    def rates(log_p):
        state = (jnp.reshape(log_p, (1,)), jnp.full((1,), 0.5), jnp.zeros((1,)))
        _, out = theory_step(spec.block, spec.act, h, state)
        return out["log_growth"][0], out["log_factor"][0]

    return rates


@in_float64
def block_limits(spec: Spec) -> dict:
    """Growth constants of a centred residual block, read off its mean-field map (one block of
    :func:`meanfield.blocks.theory_step`), for the block and branch scale of the scalar ``spec``.

    * ReLU: every second moment is linear in p, so the map is exactly p -> B p + K, and the chi factor is a
      constant, log B_chi (R = B_chi^L). Returns ``B``, ``K`` (from the map at p = 1 and 2) and ``log_B``
      (the chi factor).
    * tanh, erf: for large p every activation of the stream saturates (V -> 1, sqrt(q) V'(q) -> kappa), so
      p grows by a constant ``k`` per layer and the chi factor is 1 + C p^-1/2 + O(1/p); with p ~ k l,
      log R = 2 C sqrt(L / k) + o(sqrt L). Returns ``k`` and ``A`` = 2 C / sqrt(k), each extrapolated from
      p = 1e8 and 4e8 (x(p) = x + a p^-1/2 + O(1/p)): relative error ~1e-8.

    For the FRN these are the closed forms of :func:`predict` (B = K = ... , k = sv2 + sa2, A = 2 kappa sv2
    sqrt(sw2) / sqrt(sv2 + sa2)); tests hold them to each other.
    """
    name = spec.act.name
    _check_mappable(spec, "block_limits")
    if name != "relu" and name not in KAPPA:
        raise ValueError(f"block_limits knows relu, tanh and erf, not {name}")
    rates = _block_rates(spec)

    def block_map(p):  # (p_l - p_(l-1), log chi factor) at input p
        log_growth, log_f = rates(math.log(p))
        return p * math.expm1(float(log_growth)), float(log_f)

    if name == "relu":  # p_l - p_(l-1) = (B - 1) p + K
        inc1, log_f = block_map(1.0)
        inc2, _ = block_map(2.0)
        return dict(B=1.0 + inc2 - inc1, K=2.0 * inc1 - inc2, log_B=log_f)
    (k1, f1), (k2, f2) = (block_map(p) for p in _LARGE_P)
    c1, c2 = (math.sqrt(p) * math.expm1(f) for p, f in zip(_LARGE_P, (f1, f2)))
    k, c = 2.0 * k2 - k1, 2.0 * c2 - c1  # sqrt(4e8) = 2 sqrt(1e8): the p^-1/2 terms cancel
    return dict(k=k, A=2.0 * c / math.sqrt(k) if k > 0 else None)


@in_float64
def depth_scaled_limit(spec: Spec, t=None) -> dict:
    """The L -> infinity limit of a residual block with branch scale kappa = L^-1/2 (Stable ResNet).

    With kappa^2 = 1/L each block moves p by p r(p) / L and multiplies chi by 1 + G(p) / L, r and G its
    increment and chi factor at kappa = 1 (:func:`meanfield.blocks.theory_step`); at depth fraction
    t = l / L the trajectory tends to the solution of

        dp/dt = p r(p),   d log R / dt = G(p),   p(0) = p0, log R(0) = 0,

    so p^(L) and log R(L) have finite limits instead of growing with depth. ``spec``: one network (its
    branch scale is ignored). Returns ``{"t", "p", "log_R"}`` at ``t`` (default 0..1 in 101 steps),
    integrated with scipy's LSODA to 1e-10.
    """
    from scipy.integrate import solve_ivp

    _check_mappable(spec, "depth_scaled_limit")
    rates = _block_rates(spec, branch_scale=1.0)

    def rhs(_, y):  # y = (log p, log R): d log p / dt = r(p), d log R / dt = G(p)
        log_growth, log_f = rates(y[0])
        return [math.expm1(float(log_growth)), math.expm1(float(log_f))]

    t = np.linspace(0.0, 1.0, 101) if t is None else np.asarray(t, np.float64)
    sol = solve_ivp(rhs, (0.0, float(t[-1])), [math.log(float(spec.hyper().p0)), 0.0], t_eval=t,
                    method="LSODA", rtol=1e-10, atol=1e-12)
    return {"t": t, "p": np.exp(sol.y[0]), "log_R": sol.y[1]}


def _block_laws(spec: Spec, base: dict) -> Laws:
    """The laws of a residual block without closed forms of its own (:func:`block_limits`)."""
    name = spec.act.name
    if not (_centred_residual(spec) and (name == "relu" or name in KAPPA)):
        return Laws(**base, laws=dict(note=f"no asymptotic law derived for {spec.arch} with {name}"))
    lim = block_limits(spec)
    if name == "relu":
        B, K = lim["B"], lim["K"]
        return Laws(**base, log_B=lim["log_B"], laws=dict(
            p=f"p = B^l (p0 + K/(B-1)) - K/(B-1), B = {B:.6g}, K = {K:.6g} (the block's map)",
            s="s = exp(Theta(l))", R=f"R = exp({lim['log_B']:.6g} L) (the block's chi factor)"))
    k, A = lim["k"], lim["A"]
    if k <= 0:
        return Laws(**base, laws=dict(note=f"p does not grow ({spec.arch}: the branch adds nothing at large p)"))
    return Laws(**base, p_exponent=1.0, p_prefactor=k, A=A, laws=dict(
        p=f"p ~ {k:.6g} l (the block's increment at large p)",
        R=f"R = exp({A:.6g} sqrt(L)) (from the chi factor at large p)"))


# ------------------------------------------------------------------------------ growing streams
@in_float64
def growth_limits(spec: Spec) -> dict:
    """Large-depth limits of a growing stream (``densenet``: N_l p_l = N_(l-1) p_(l-1) + k N0 V(q_l),
    q_l = sw2 p_(l-1) + sb2; chi^(l-1) = chi^(l) (1 + sw2 k V'(q_l) / (1 + (l - 1) k))), for the scalar
    ``spec``.

    A fixed point p* of the map satisfies p* = V(sw2 p* + sb2): q* = sw2 p* + sb2 is the feedforward
    network's fixed point (:func:`ff_q_star`). Linearized about it, p_l - p* = (p_(l-1) - p*)
    (l - 1 + 1/k + s_q) / (l + 1/k) with s_q = sw2 dV/dq(q*), the slope of the feedforward length map, so

        |p - p*| ~ l^-(1 - s_q)  where s_q < 1 (p converges to p*), and
        R(L) = chi^(0) / chi^(L) ~ L^chi_1, chi_1 = sw2 V'(q*)  (the chi factor is 1 + chi_1 / (l + 1/k) + ...),

    whatever k: the new units are a fraction k / (1 + l k) ~ 1 / l of the stream, so the feedforward
    network's exponential approach becomes a power of the depth. ReLU is exact at every depth
    (:func:`relu_growth_closed_form`; s_q = chi_1 = sw2 / 2, p grows like l^(sw2/2 - 1) for sw2 > 2).
    Returns ``q_star``, ``p_star`` (NaN where q* is not finite), ``chi_1`` and ``s_q`` (the length map's slope).
    """
    if not get_block(spec.arch).grows:
        raise ValueError(f"growth_limits applies to a growing stream (densenet), not {spec.arch}")
    if spec.shape != ():
        raise ValueError(f"growth_limits takes scalar hyperparameters, got shape {spec.shape}")
    h = spec.hyper()
    if any(float(getattr(h, d)) != 0.0 for d in DECAYS.values()):
        raise ValueError("growth_limits: no law is derived for decaying variances (the map changes with depth)")
    sw2, sb2, a = float(h.sw2), float(h.sb2), float(h.alpha)
    q = float(ff_q_star(spec.act, sw2, sb2, a))
    chi_1 = float(ff_chi_1(spec.act, sw2, sb2, a))
    if spec.act.name == "relu":
        s_q = sw2 / 2.0  # V(q) = q / 2
    elif 0.0 < q < math.inf:
        dV = jax.jvp(lambda lq: jnp.exp(spec.act.log_V(lq, a)), (jnp.log(q),), (jnp.asarray(1.0),))[1]
        s_q = sw2 * float(dV) / q
    else:
        s_q = math.nan
    p_star = (q - sb2) / sw2 if (0.0 <= q < math.inf and sw2 > 0) else math.nan
    return dict(q_star=q, p_star=p_star, chi_1=chi_1, s_q=s_q)


def relu_growth_closed_form(sw2: float, sb2: float, p0: float, k: float, l) -> dict:
    """The ReLU densenet's recursion in closed form at layers ``l`` (an array of integers >= 0).

    With V(q) = q / 2 and V'(q) = 1/2 the map is linear, p_l = A_l p_(l-1) + k sb2 / (2 n_l),
    A_l = (n_(l-1) + a k) / n_l, n_l = 1 + l k, a = sw2 / 2. With c = 1/k, Pi_l = prod A =
    Gamma(l + c + a) Gamma(c + 1) / (Gamma(c + a) Gamma(l + c + 1)) and the bias terms telescope:

        p_l = p* + (p0 - p*) Pi_l,   p* = sb2 / (2 - sw2)   (sw2 != 2),
        p_l = p0 + (sb2 / 2) (psi(l + c + 1) - psi(c + 1))   (sw2 = 2),
        R(L) = prod_(l <= L) (l - 1 + c + a) / (l - 1 + c) = Gamma(L + c + a) Gamma(c) / (Gamma(c + a) Gamma(L + c)),

    so Pi_l ~ [Gamma(c + 1) / Gamma(c + a)] l^(a - 1) and R(L) ~ [Gamma(c) / Gamma(c + a)] L^a. Returns
    ``p``, ``log_R`` (R(l) of a depth-l network) and ``p_star``, from scipy's log-gamma and digamma.
    """
    from scipy.special import digamma, gammaln

    l = np.asarray(l, np.float64)
    a, c = sw2 / 2.0, 1.0 / k
    log_pi = gammaln(l + c + a) - gammaln(l + c + 1.0) + gammaln(c + 1.0) - gammaln(c + a)
    log_r = gammaln(l + c + a) - gammaln(l + c) + gammaln(c) - gammaln(c + a)
    if sw2 == 2.0:
        return dict(p=p0 + 0.5 * sb2 * (digamma(l + c + 1.0) - digamma(c + 1.0)), log_R=log_r, p_star=math.inf)
    p_star = sb2 / (2.0 - sw2)
    return dict(p=p_star + (p0 - p_star) * np.exp(log_pi), log_R=log_r, p_star=p_star)


def _growth_laws(spec: Spec, base: dict) -> Laws:
    """The power laws of a growing stream (:func:`growth_limits`)."""
    lim = growth_limits(spec)
    chi_1, s_q, p_star = lim["chi_1"], lim["s_q"], lim["p_star"]
    ff = dict(q_star=lim["q_star"], chi_1=chi_1)
    R = f"R = Theta(L^{chi_1:.6g}) (chi_1 = sw2 V'(q*) of the feedforward fixed point)"
    if spec.act.name == "relu":
        sw2, sb2 = float(spec.hyper().sw2), float(spec.hyper().sb2)
        a = sw2 / 2.0
        if sw2 == 2.0:
            p = "p = p0 + (sb2/2) (psi(l + 1/k + 1) - psi(1/k + 1)) ~ (sb2/2) log l"
        else:
            p = (f"p = p* + (p0 - p*) Gamma(l+1/k+a) Gamma(1/k+1) / (Gamma(1/k+a) Gamma(l+1/k+1)), "
                 f"p* = sb2/(2 - sw2) = {sb2 / (2.0 - sw2):.6g}, a = sw2/2: p - p* ~ l^{a - 1:.6g}")
        return Laws(**base, **ff, R_exponent=a, p_exponent=a - 1.0 if a > 1.0 else None, laws=dict(
            p=p, R=f"R = Gamma(L+1/k+a) Gamma(1/k) / (Gamma(1/k+a) Gamma(L+1/k)) ~ L^{a:.6g} (exact)"))
    if not (math.isfinite(p_star) and s_q < 1.0):
        return Laws(**base, **ff, R_exponent=chi_1 if math.isfinite(lim["q_star"]) else None, laws=dict(
            note=f"no length law derived for {spec.arch} with {spec.act.name} at these variances", R=R))
    return Laws(**base, **ff, R_exponent=chi_1, laws=dict(
        p=f"p -> p* = V(q*) = {p_star:.6g}, |p - p*| ~ l^-{1.0 - s_q:.6g} (1 - sw2 dV/dq(q*))", R=R))


# ---------------------------------------------------------------------------------------- fitting
def local_slope(l, y=None, *, log_y=None, scale: str = "log", ratio: float = 2.0):
    """Secant slope of log y over [l / ratio, l] at every layer l with l / ratio >= l[0].

    ``scale`` is the abscissa: ``"log"`` (d log y / d log l, a power law's exponent), ``"sqrt"``
    (d log y / d sqrt(l), the A of exp(A sqrt l)) or ``"linear"`` (d log y / d l, the log B of B^l).
    ``l`` is increasing layers; give ``y`` (positive; other values give NaN) or, where y overflows,
    ``log_y`` (e.g. ``log_p`` or log R). Returns ``(l_end, slope)``, l_end the upper end of each secant.
    """
    l = np.asarray(l, np.float64)
    if (y is None) == (log_y is None):
        raise ValueError("give exactly one of y and log_y")
    if log_y is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_y = np.where(np.asarray(y) > 0, np.log(np.asarray(y, np.float64)), np.nan)
    return _secant(l, np.asarray(log_y, np.float64), scale, ratio)


def _secant(l, log_y, scale, ratio):
    if scale not in ("log", "sqrt", "linear"):
        raise ValueError(f"scale must be one of log, sqrt, linear; got {scale!r}")
    if not ratio > 1.0:
        raise ValueError(f"ratio must be > 1, got {ratio!r}")
    x = {"log": np.log, "sqrt": np.sqrt, "linear": lambda v: v}[scale]
    lo = np.searchsorted(l, l / ratio)  # first index with l >= l_i / ratio
    ok = (l / ratio >= l[0]) & (lo < np.arange(l.size))
    i = np.nonzero(ok)[0]
    j = lo[i]
    with np.errstate(invalid="ignore"):
        slope = (log_y[i] - log_y[j]) / (x(l[i]) - x(l[j]))
    return l[i], slope


def tail_slope(l, log_y, *, scale: str = "log", depth: int | None = None) -> tuple[float, float]:
    """Slope of log y over the last octave [L/2, L], and its drift from the octave [L/4, L/2] before.

    The drift is the uncertainty of a slowly converging local slope: the limit is not farther from the
    last octave's value than the last octave's change, as long as the approach is monotone and at least
    as fast as 1/log l (true of every law here but checked only by eye).
    """
    l = np.asarray(l, np.float64)
    log_y = np.asarray(log_y, np.float64)
    L = int(depth if depth is not None else l[-1])
    x = {"log": np.log, "sqrt": np.sqrt, "linear": lambda v: v}[scale]

    def octave(top):
        i, j = np.searchsorted(l, top), np.searchsorted(l, top // 2)
        return (log_y[i] - log_y[j]) / (x(l[i]) - x(l[j]))

    last, prev = octave(L), octave(L // 2)
    return float(last), float(abs(last - prev))


@in_float64
def measure(traj: Trajectory, laws: Laws) -> dict:
    """Measure the laws of ``laws`` on one network's trajectory (docs/theory.md, section 5), at its depth L.

    Returns ``{key: {"value": v, "drift": d}}`` for each law of ``laws`` that applies (keys of
    :data:`LAW_KEYS` plus ``one_minus_e_coef`` for ReLU), each read over the last octave of depth: power
    exponents as d log y / d log l, A as d log R / d sqrt(L), log B as d log R / d L and e* as e^(L).
    ``drift`` is the change from the octave before (see :func:`tail_slope`). Two diagnostics of the slow
    approach of e come with delta_star: ``delta_reduced``, the local exponent that the leading-order
    dynamics of e predicts at the measured e^(L) (:func:`reduced_gap_slope`; no drift), and for a tanh
    FRN with e* > 0, ``delta_star_corrected``, the slope of |e - e* - D l^(-1/2)|
    (:func:`saturating_gap_correction`). R(L') = chi^(0) / chi^(L')
    for every L' <= L comes from the one trajectory: the forward pass of a shallower network is a prefix.
    """
    t = traj.to_numpy() if hasattr(traj, "to_numpy") else traj
    if np.ndim(t.p) != 1:
        raise ValueError(f"measure takes the trajectory of one network, got p of shape {np.shape(t.p)}")
    L = t.depth
    if L < 8:
        raise ValueError(f"depth must be >= 8 to measure a tail slope, got {L}")
    l = np.arange(L + 1, dtype=np.float64)
    log_R = t.log_chi[0] - t.log_chi  # log R(L') for L' = 0..L
    out = {}

    def put(key, value, drift):
        out[key] = {"value": _finite(value), "drift": _finite(drift)}

    if laws.p_exponent is not None:
        put("p_exponent", *tail_slope(l, t.log_p, scale="log", depth=L))
    if laws.e_star is not None:
        put("e_star", t.e[L], abs(t.e[L] - t.e[L // 2]))
    if laws.delta_star is not None:
        with np.errstate(divide="ignore"):
            if laws.log_B is not None:  # ReLU: 1 - e keeps full precision in the engine's d = 1 - e
                log_gap = np.log(1.0 - t.e)
            else:
                log_gap = np.log(np.abs(t.e - laws.e_star))
        slope, drift = tail_slope(l, log_gap, scale="log", depth=L)
        put("delta_star", -slope, drift)
        if laws.e_star is not None and laws.log_B is None:
            put("delta_reduced", reduced_gap_slope(laws, t.e[L]), math.nan)
        d_coef = saturating_gap_correction(laws)
        if d_coef:
            corrected = np.abs(t.e - laws.e_star - d_coef / np.sqrt(np.maximum(l, 1.0)))
            with np.errstate(divide="ignore"):
                slope, drift = tail_slope(l, np.log(corrected), scale="log", depth=L)
            put("delta_star_corrected", -slope, drift)
    if laws.one_minus_e_coef is not None:
        coef = (1.0 - t.e) * l * l
        put("one_minus_e_coef", coef[L], abs(coef[L] - coef[L // 2]))
    if laws.log_B is not None:
        put("log_B", *tail_slope(l, log_R, scale="linear", depth=L))
    if laws.A is not None:
        put("A", *tail_slope(l, log_R, scale="sqrt", depth=L))
    if laws.R_exponent is not None:
        put("R_exponent", *_R_power(l, log_R, L))
    return out


@in_float64
def saturating_gap_correction(laws: Laws) -> float:
    """D of the second term of e - e* = C l^(-delta*) + D l^(-1/2) for a tanh (or erf) FRN; 0 elsewhere.

    From V(q) = 1 - nu q^(-1/2) + O(1/q) (nu = sqrt(2/pi) for tanh, docs/theory.md section 4; 2/pi for erf),
    W(q, c q) - (2/pi) arcsin c = O(1/q), p ~ kappa l and q ~ sw2 kappa l with kappa = sv2 + sa2, the
    cosine distance obeys

        e_l - e_(l-1) = [f(e) + sv2 e nu q^(-1/2)] / p_l,   f(e) = sv2 (2/pi) arcsin e + sa2 - kappa e,

    whose particular solution at e* is D l^(-1/2) with D = G / (delta* - 1/2),
    G = sv2 e* nu / (kappa sqrt(sw2 kappa)). Leading order only (for the tanh FRN of docs/theory.md section 6
    a two-term fit over l in [1e4, 1e5] gives D = -3.39 against the predicted -3.17).
    """
    if laws.act not in KAPPA or "sv2" not in get_block(laws.arch).fields or not laws.e_star:  # the map with V
        return 0.0
    sv2, sa2, sw2 = laws.params["sv2"], laws.params["sa2"], laws.params["sw2"]
    kappa = sv2 + sa2
    g = sv2 * laws.e_star * NU[laws.act] / (kappa * math.sqrt(sw2 * kappa))
    return g / (laws.delta_star - 0.5)


@in_float64
def reduced_gap_slope(laws: Laws, e: float) -> float:
    """-d log|e - e*| / d log l of the leading-order (nonlinear) dynamics of e, at the value e.

    alpha-ReLU: de / d log l = (J_alpha(e) - e) / (1 - alpha); tanh-like: de / d log l = f(e) / kappa
    (see :func:`saturating_gap_correction`). Its limit at e -> e* is delta*; away from e* it is the
    local exponent that a trajectory at that e should show, which separates a wrong law from a slow
    approach (for alpha near 1, J_alpha is strongly curved next to e* and the limit is reached only
    where |e - e*| << 1 - e*, i.e. at astronomically large depth).
    """
    if laws.e_star is None or float(e) == laws.e_star:
        return math.nan
    e = float(e)
    gap = e - laws.e_star
    if laws.act == "alpha_relu":
        rate = (float(J_alpha(min(e, 1.0), laws.alpha)) - e) / (1.0 - laws.alpha)
    elif laws.act in KAPPA:
        sv2, sa2 = laws.params["sv2"], laws.params["sa2"]
        kappa = sv2 + sa2
        rate = (sv2 * (2.0 / math.pi) * math.asin(min(max(e, -1.0), 1.0)) + sa2 - kappa * e) / kappa
    else:
        return math.nan
    return -rate / gap


@in_float64
def reduced_e_path(laws: Laws, l0: float, e0: float, l) -> np.ndarray:
    """e^(l) of the leading-order dynamics de / d log l = rate(e) (see :func:`reduced_gap_slope`).

    Started at e(l0) = e0 and integrated to the layers ``l`` (>= l0) with scipy's LSODA: the curve a
    trajectory should follow if only the law's own nonlinearity, and no correction term, mattered.
    """
    from scipy.integrate import solve_ivp

    if laws.act == "alpha_relu":
        rate = lambda e: (float(J_alpha(min(e, 1.0), laws.alpha)) - e) / (1.0 - laws.alpha)  # noqa: E731
    elif laws.act in KAPPA:
        sv2, sa2 = laws.params["sv2"], laws.params["sa2"]
        kappa = sv2 + sa2
        rate = lambda e: (sv2 * 2 / math.pi * math.asin(min(max(e, -1.0), 1.0)) + sa2 - kappa * e) / kappa  # noqa: E731
    else:
        raise ValueError(f"no reduced dynamics of e for {laws.arch} with {laws.act}")
    t = np.log(np.asarray(l, np.float64))
    sol = solve_ivp(lambda _, y: [rate(y[0])], (math.log(l0), float(t[-1])), [float(e0)], t_eval=t,
                    method="LSODA", rtol=1e-10, atol=1e-14)
    return sol.y[0]


def _R_power(l, log_R, L):
    # R = Theta(L^k): k = d log R / d log L (log R itself, not log log R, is linear in log L)
    x = np.log(np.maximum(l, 1.0))

    def octave(top):
        i, j = top, top // 2
        return (log_R[i] - log_R[j]) / (x[i] - x[j])

    last, prev = octave(L), octave(L // 2)
    return float(last), float(abs(last - prev))


@in_float64
def measured_laws(spec: Spec, laws: Laws | None = None) -> dict:
    """Predicted and measured laws of a single-network spec: ``{"predicted": Laws, "measured": dict}``."""
    from .theory import trajectory

    if spec.shape != ():
        raise ValueError(f"measured_laws takes a single network, got hyperparameter shape {spec.shape}")
    if laws is None:
        h = spec.hyper()
        if spec.norm is not None or any(float(getattr(h, d)) != 0.0 for d in DECAYS.values()):
            raise ValueError("predicted laws are those of a block without normalization or variance decay; "
                             "pass laws to measure this spec")
        laws = predict(spec.arch, spec.act, sw2=float(h.sw2), sv2=float(h.sv2), sb2=float(h.sb2),
                       sa2=float(h.sa2), alpha=float(h.alpha), branch_scale=float(h.branch_scale),
                       growth=spec.growth, sg2=float(h.sg2), gate_bias=float(h.gate_bias))
    return {"predicted": laws, "measured": measure(trajectory(spec), laws)}


# ------------------------------------------------------------------------------------------ helpers
def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else None


def _nonneg(name, v):
    v = float(v)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return v


def _alpha(alpha):
    a = float(alpha)
    if not (0.5 < a <= 1.0):
        raise ValueError(f"alpha must be in (0.5, 1], got {alpha!r}")
    return a
