"""Stochastic depth in the theory: the exact expectation over the branch masks.

With stochastic depth (Huang et al. 2016) layer l adds its branch with probability s, x <- x + xi_l kappa
branch(x) with xi_l ~ Bernoulli(s) drawn once per layer per network, and is the identity otherwise. The
theory of such networks is the expectation over the masks of each per-network quantity, as a simulation
averages it: E[p], E[gamma], e = E[gamma / p], E[s], E[mu], E[chi] and the parameter gradients.

Given a mask the mean-field state is deterministic, and since a dropped layer leaves it as it was and the
block's map is the same at every layer, the state after l layers is the plain network's state after
K_l = xi_1 + ... + xi_l layers, K_l ~ Binomial(l, s). So every forward quantity is a binomial mixture of
the plain trajectory:

    E[f(state_l)] = sum_k B(k; l, s) f(state_k^plain).

Backward, chi^(l) = prod over the kept layers m > l of the plain factor F(state_(m-1)). Conditioning on
K_l = a, G_l(a) = E[chi^(l) | K_l = a] obeys

    G_L(a) = 1,   G_(l-1)(a) = s F_a G_l(a + 1) + (1 - s) G_l(a),

with F_a the plain factor of the layer that reads state a, and E[chi^(l)] = sum_a B(a; l, s) G_l(a). A
parameter of layer l has gradient 0 where the layer is dropped, so its quantity is
s sum_a B(a; l - 1, s) g_a G_l(a + 1), with g_a the plain gain at state a. Everything is summed in the log
domain (the plain p and chi may overflow float64 at depth), and the correlation distance d = 1 - e is mixed
directly (a sum of non-negative terms), so e near 1 keeps its precision. The cost is O(L^2) per grid point
(one reverse scan over l, each step a sum over the L + 1 plain states). With s = 1 every sum has the one
term k = l and the plain trajectory is returned to rounding.

The per-layer q and lambda (at the first preactivation) are those of the layer's branch whether it is kept
or not (a sampler computes the branch in both cases), so their expectation is over K_(l-1).

Variance decay makes the map depend on the layer, and the state then depends on which layers were kept,
not only on how many: :class:`meanfield.spec.Spec` refuses that combination.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, logsumexp, xlog1py, xlogy

from .blocks import GRADIENT_FIELDS
from .trajectory import Trajectory


def log_binomial(n, k, s):
    """log B(k; n, s) of Binomial(n, s) at integer-valued ``k`` (any shape), -inf outside 0 <= k <= n.
    ``s`` broadcasts against ``k``; exact at s = 0 and s = 1 (0 log 0 = 0)."""
    inside = (k >= 0) & (k <= n)
    kk = jnp.clip(k, 0, jnp.maximum(n, 0))
    out = (gammaln(n + 1.0) - gammaln(kk + 1.0) - gammaln(n - kk + 1.0)
           + xlogy(kk, s) + xlog1py(n - kk, -s))
    return jnp.where(inside, out, -jnp.inf)


def _lse(x):
    """logsumexp over the last axis (-inf for an all -inf row)."""
    return logsumexp(x, axis=-1)


def _shift(x, fill):
    """x[..., a + 1] for a = 0..n-1, ``fill`` at the last place."""
    return jnp.concatenate([x[..., 1:], jnp.full_like(x[..., :1], fill)], axis=-1)


def _pad(x, fill):
    """A per-layer array (B, L) (the layer reading state a = 0..L-1) padded to the states a = 0..L."""
    return jnp.concatenate([x, jnp.full_like(x[..., :1], fill)], axis=-1)


def expectation(survival, log_p, d, m, log_q, c, log_factor, gains: dict) -> Trajectory:
    """The trajectory averaged over the masks, from the plain network's arrays.

    ``survival`` (B,); the plain states ``log_p, d, m`` (B, L + 1) (m = mu / sqrt p); the plain per-layer
    outputs ``log_q, c, log_factor`` (B, L) and ``gains`` {parameter name: log gain} (B, L), layer
    j = 1..L at index j - 1 (read from state j - 1). Returns every :class:`Trajectory` field, (B, L + 1).
    """
    n_states = log_p.shape[-1]
    depth = n_states - 1
    a = jnp.arange(n_states, dtype=log_p.dtype)
    s = survival[:, None]
    log_s, log_not = jnp.log(s), jnp.log1p(-s)
    log_dist = log_p + jnp.log(2.0 * d)  # log |x - x'|^2 / N of the plain states
    plain_log_q = _pad(log_q, -jnp.inf)
    plain_c = _pad(c, 0.0)
    log_f = _pad(log_factor, 0.0)
    log_g = {name: _pad(g, -jnp.inf) for name, g in gains.items()}

    def at(l, log_chi_given, ahead):
        """Every field at layer l, given log G_l (B, L + 1) and ``ahead`` = log G_l(a + 1)."""
        w = log_binomial(l, a, s)  # K_l
        w_in = log_binomial(l - 1.0, a, s)  # K_(l-1): the state the layer reads
        lp = _lse(w + log_p)
        share = jax.nn.softmax(w + log_p, axis=-1)  # p-weighted mixture: gamma = E[p] (1 - d~)
        out = dict(
            log_p=lp,
            d=jnp.sum(jnp.exp(w) * d, axis=-1),
            gamma_over_p=1.0 - jnp.sum(share * d, axis=-1),
            log_s=_lse(w + log_dist),
            mu=_signed(w + 0.5 * log_p, m),
            log_chi=_lse(w + log_chi_given),
        )
        lq = _lse(w_in + plain_log_q)
        out["log_q"] = lq
        out["c"] = jnp.sum(jax.nn.softmax(w_in + plain_log_q, axis=-1) * plain_c, axis=-1)
        out["grads"] = {name: log_s[:, 0] + _lse(w_in + g + ahead) for name, g in log_g.items()}
        return out

    def step(log_chi_given, l):
        ahead = _shift(log_chi_given, -jnp.inf)  # G_l(a + 1)
        out = at(l, log_chi_given, ahead)
        kept = log_s + log_f + ahead
        dropped = log_not + log_chi_given
        return jnp.logaddexp(kept, dropped), out

    layers = jnp.arange(depth, -1, -1, dtype=log_p.dtype)
    _, out = jax.lax.scan(step, jnp.zeros_like(log_p), layers)
    out = jax.tree.map(lambda x: jnp.flip(x, axis=0).T, out)  # (B, L + 1), layer 0 first

    first = jnp.arange(n_states) == 0  # q, lambda and the gradients are undefined at l = 0
    undefined = lambda x: jnp.where(first, jnp.nan, x)  # noqa: E731
    p = jnp.exp(out["log_p"])
    q = undefined(jnp.exp(out["log_q"]))
    grads = {name: undefined(jnp.exp(out["grads"][name])) if name in gains else jnp.full_like(p, jnp.nan)
             for name in GRADIENT_FIELDS}
    log_chi = out["log_chi"]
    return Trajectory(
        p=p, q=q, gamma=out["gamma_over_p"] * p, lam=undefined(out["c"]) * q, e=1.0 - out["d"],
        s=jnp.exp(out["log_s"]), mu=out["mu"], chi=jnp.exp(log_chi), log_chi=log_chi,
        chi_a=grads["a"], chi_b=grads["b"], chi_w=grads["w"], chi_v=grads["v"],
        log_p=out["log_p"], log_s=out["log_s"], log_R=log_chi[:, 0],
    )


def _signed(log_weight, value):
    """sum exp(log_weight) * value over the last axis, for values of any sign, without overflow in the
    weights' common scale (the result overflows only where it is itself beyond float64)."""
    top = jnp.max(log_weight, axis=-1, keepdims=True)
    return jnp.sum(jnp.exp(log_weight - top) * value, axis=-1) * jnp.exp(top[..., 0])
