"""Gaussian moments of a sigmoid gate T = sigmoid(g), g ~ N(c, v), alone and for two correlated inputs.

The highway block (:mod:`meanfield.blocks`, ``Gate``) mixes its branch and its input with T = sigmoid(g),
g = U x + c. In the mean-field limit g ~ N(c, v) with v = S p, and the gates of two inputs, (g, g'), are
jointly Gaussian with correlation 1 - d (d = 1 - e of the inputs). The map needs

* :func:`moments`: E[T^2], E[(1 - T)^2], E[T (1 - T)] = E[sigmoid'(g)] and E[sigmoid'(g)^2], each
  computed directly (E[T] = E[T^2] + E[T (1 - T)] and E[1 - T] = E[(1 - T)^2] + E[T (1 - T)] are sums
  of them, so neither 1 - E[T] nor E[(1 - T)^2] = 1 - 2 E[T] + E[T^2] is ever formed by subtraction);
* :func:`diff_sq`: D = E[(T - T')^2], which vanishes like d as d -> 0 and must keep its relative
  precision there. With g = x + y, g' = x - y, x ~ N(c, a^2), y ~ N(0, b^2) independent,
  a^2 = v (1 - d/2), b^2 = v d / 2,

      sigmoid(x + y) - sigmoid(x - y) = sinh(y) / (2 cosh((x + y)/2) cosh((x - y)/2))
                                      = sign(y) (1 - e^(-2|y|)) e^(-max(|x| - |y|, 0))
                                        / ((1 + e^(-|x + y|)) (1 + e^(-|x - y|))),

  a product of factors without cancellation (1 - e^(-2|y|) by ``expm1``) that neither overflows nor
  loses digits for any x, y; D is its mean square, proportional to b^2 with full relative precision.

Rules (fixed node counts: they jit once, vmap and run in blocks of points). Plain Gauss-Hermite
quadrature in the standard normal z of g = c + sqrt(v) z fails once v is large: sigmoid(c + sqrt(v) z)
has a transition of width 1/sqrt(v) at z = -c/sqrt(v) that the Hermite nodes step over (64 nodes: 8e-2
relative error at v = 1e3, 1e-13 for v <= 1). So the direction with the sigmoid's transition uses the
composite Gauss-Legendre rule anchored at it (:func:`meanfield.quadrature.anchored_normal_rule`), and
Gauss-Hermite is kept where the integrand is analytic in a wide strip:

* one-dimensional moments: the anchored rule in z (392 nodes);
* D: outer x by the anchored rule (410 nodes); inner y = b w, even in w, per outer node by one of two
  rules with the same 96 nodes: (A) b <= 2, the positive nodes of 192-point Gauss-Hermite in w (the
  integrand is analytic within |Im w| < pi / b); (B) b > 2, the step 1{|y| > |x|} that the squared
  difference tends to, integrated in closed form (erfc), plus the remainder, which decays like
  e^(-||y| - |x||) on both sides of |y| = |x|, on fixed graded panels in t = |y| - |x| in [-20, 40].

Accuracy against nested adaptive ``scipy.integrate.quad`` (tests/test_highway.py), over c in [-8, 12],
v in [1e-6, 1e16], d in [1e-12, 2]: the moments within 1e-12 relative (scipy's own error at
v = 1e-6; ~1e-15 from 1e6 to 1e20), D within 5e-12 relative.
"""

from __future__ import annotations

import math

import numpy as np

from . import quadrature as quad

#: The one-dimensional (and the outer) anchored rule: (n_side, n_uniform, n) of
#: :func:`meanfield.quadrature.anchored_normal_rule`.
_RULE_1D = (14, 20, 8)
_RULE_OUTER = (12, 16, 10)
#: Inner rule of D: 96 nodes either way; rule A below b = _B_SPLIT, rule B above.
_N_INNER = 96
_B_SPLIT = 2.0
_GH, _GH_W = quad.gauss_hermite(2 * _N_INNER)
_ZA, _WA = _GH[_GH > 0], 2.0 * _GH_W[_GH > 0]  # even in w: the positive nodes, weights doubled
_T_EDGES = np.array([-20.0, -10.0, -5.0, -2.5, -1.0, 0.0, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 40.0])
_N_PANEL = _N_INNER // (len(_T_EDGES) - 1)
assert _ZA.size == _N_INNER and _N_PANEL * (len(_T_EDGES) - 1) == _N_INNER
#: Points per block: bounds the working memory of D (~4e4 node pairs per point).
_BLOCK = 16


def _sigmoid_parts(g):
    """(sigmoid(g), sigmoid(-g), sigmoid'(g)) from one exponential, each without cancellation."""
    import jax.numpy as jnp

    e = jnp.exp(-jnp.abs(g))
    inv = 1.0 / (1.0 + e)
    pos = g >= 0
    return jnp.where(pos, inv, e * inv), jnp.where(pos, e * inv, inv), e * inv * inv


def _normalized(w):
    import jax.numpy as jnp

    return w / jnp.sum(w, -1, keepdims=True)  # constants exactly (the mass beyond 9.5 sd is 2e-21)


def _feature_rule(anchor, w_lo, w_hi, n_side: int = 14, n_uniform: int = 20, n: int = 8):
    """Nodes z and normalized weights for  int f(z) phi(z) dz  on [-9.5, 9.5], f with features of widths
    w_lo .. w_hi that reach at most 40 w_hi from z = ``anchor`` (traced, broadcastable).

    Edges: ``n_uniform`` equal panels over the interval (the density's own scale), merged with ``n_side``
    edges on each side of the anchor at distances growing geometrically from w_lo / 4 to 40 w_hi, clipped
    to the interval (coinciding edges make empty panels: the shape is fixed). The ratio of the steps,
    (160 w_hi / w_lo)^(1/13), does not grow with the variance, unlike a rule whose steps reach the
    density's scale 1 (:func:`meanfield.quadrature.anchored_normal_rule`).
    """
    import jax.numpy as jnp

    anchor = jnp.asarray(anchor)
    lo = jnp.log(0.25 * w_lo)[..., None]
    hi = jnp.log(40.0 * w_hi)[..., None]
    k = jnp.arange(n_side, dtype=jnp.result_type(float)) / (n_side - 1)
    steps = jnp.exp(lo + (hi - lo) * k)
    a = anchor[..., None]
    grid = jnp.broadcast_to(jnp.linspace(-quad.Z_MAX, quad.Z_MAX, n_uniform + 1), a.shape[:-1] + (n_uniform + 1,))
    edges = jnp.sort(jnp.clip(jnp.concatenate([a - steps, a, a + steps, grid], axis=-1), -quad.Z_MAX, quad.Z_MAX), -1)
    z, w = quad.panels(edges, n)
    return z, _normalized(w * jnp.exp(-0.5 * z * z))


def _nodes(c, s, w_lo, w_hi, rule):
    """Nodes g = c + s z of :func:`_feature_rule` anchored at g = 0, feature widths w_lo .. w_hi in g."""
    import jax.numpy as jnp

    safe = jnp.maximum(s, 1e-300)
    z, w = _feature_rule(-c / safe, w_lo / safe, w_hi / safe, *rule)
    return c[..., None] + s[..., None] * z, w


def diff(x, y):
    """sigmoid(x + y) - sigmoid(x - y) without cancellation (see the module docstring)."""
    import jax.numpy as jnp

    ay = jnp.abs(y)
    num = jnp.sign(y) * -jnp.expm1(-2.0 * ay) * jnp.exp(-jnp.maximum(jnp.abs(x) - ay, 0.0))
    return num / ((1.0 + jnp.exp(-jnp.abs(x + y))) * (1.0 + jnp.exp(-jnp.abs(x - y))))


def _moments_flat(c, v):
    import jax.numpy as jnp

    g, w = _nodes(c, jnp.sqrt(v), 1.0, 1.0, _RULE_1D)
    t, u, dp = _sigmoid_parts(g)
    return tuple(jnp.sum(w * f, -1) for f in (t * t, u * u, dp, dp * dp))


def _diff_sq_flat(c, v, d):
    import jax.numpy as jnp
    from jax.scipy.special import erfc

    d = jnp.clip(d, 0.0, 2.0)
    a = jnp.sqrt(v * (1.0 - 0.5 * d))
    b = jnp.sqrt(0.5 * v * d)
    x, wx = _nodes(c, a, 1.0, jnp.maximum(1.0, 0.25 * b), _RULE_OUTER)  # (B, n_outer)
    ax = jnp.abs(x)[..., None]
    use_a = (b <= _B_SPLIT)[:, None, None]
    bb = b[:, None, None]
    safe_b = jnp.where(use_a, 1.0, bb)
    t, wt = quad.panels(jnp.maximum(_T_EDGES, -ax), _N_PANEL)  # rule B: t = |y| - |x| >= -|x|
    y_b = ax + t
    dens = np.sqrt(2.0 / np.pi) * jnp.exp(-0.5 * (y_b / safe_b) ** 2) / safe_b  # 2 N(y; 0, b^2), y >= 0
    y = jnp.where(use_a, bb * _ZA, y_b)
    weight = jnp.where(use_a, _WA, wt * dens)
    f = diff(x[..., None], y) ** 2 - jnp.where(use_a, 0.0, (t > 0).astype(x.dtype))
    step = jnp.where(use_a[..., 0], 0.0, erfc(ax[..., 0] / (safe_b[..., 0] * math.sqrt(2.0))))
    return jnp.sum(wx * (jnp.sum(weight * f, -1) + step), -1)


def _blocked(fn, *args):
    """``fn`` of flat arrays evaluated _BLOCK points at a time (args broadcast; returns their shape)."""
    import jax
    import jax.numpy as jnp

    args = jnp.broadcast_arrays(*(jnp.asarray(a, float) for a in args))
    shape = args[0].shape
    flat = [a.ravel() for a in args]
    n = flat[0].size
    if n <= _BLOCK:
        out = fn(*flat)
    else:
        nb = -(-n // _BLOCK)
        pad = nb * _BLOCK - n
        blocks = [jnp.concatenate([a, jnp.repeat(a[-1:], pad)]).reshape(nb, _BLOCK) for a in flat]
        out = jax.lax.map(lambda xs: fn(*xs), tuple(blocks))
        out = jax.tree.map(lambda o: o.reshape(-1)[:n], out)
    return jax.tree.map(lambda o: o.reshape(shape), out)


def moments(c, v):
    """(E[T^2], E[(1 - T)^2], E[T (1 - T)], E[sigmoid'(g)^2]) for T = sigmoid(g), g ~ N(c, v); broadcasts."""
    return _blocked(_moments_flat, c, v)


def diff_sq(c, v, d):
    """E[(T - T')^2] for T, T' = sigmoid(g), sigmoid(g'), (g, g') ~ N(c, v) each with correlation 1 - d."""
    return _blocked(_diff_sq_flat, c, v, d)
