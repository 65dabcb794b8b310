"""The densenet block (``--arch densenet``): x^(l) = concat(x^(l-1), phi(W x^(l-1) + b)), k N0 new units a layer.

Mean-field map (docs/blocks.md, densenet), with n_l = N_l / N0 = 1 + l k and q_l = sw2 p^(l-1) + sb2:

    n_l p^(l) = n_(l-1) p^(l-1) + k V(q_l)   (gamma through W(q, lambda), mu through M(q), alike),
    chi^(l-1) = chi^(l) (1 + sw2 (k / n_(l-1)) V'(q_l)),   chi = |dE/dx|^2 / N per coordinate.

Tolerance of theory against simulation, per layer and field (width N0 = 32, k = 1/4, so G = 8 new units a
layer and N_L = 96 at L = 8):

    |sim - theory| <= 4 stderr + (C / N0) |theory|,  C = 1   (mu: scale sqrt(p); logs: C / N0 absolute)

C / N0 is the finite-width bias. h = W x + b is exactly Gaussian given x, so a layer's bias comes from
nonlinear functions of empirical means over the N_(l-1) >= N0 coordinates it reads (Jensen, O(1/N_(l-1))),
and the new units weigh k / n_l of the stream, so the bias stays O(1/N0) at any depth instead of growing
like L / N as in a residual stream. Measured at N0 = 16, L = 10, 20000 networks (float64, fast sampler):
N0 |bias| / |theory| <= 0.45 over every field and layer (ReLU e), <= 0.23 for tanh (chi); C = 1 leaves a
factor 2. Simulations run in float64, so the exactly constructed inputs at l = 0 need no rounding term.
"""

from __future__ import annotations

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meanfield as mf
from meanfield import asymptotics as asy
from meanfield import blocks
from meanfield import reference as ref
from meanfield.cli import main
from meanfield._plan import network_bytes
from meanfield.simulate import _networks, networks, plan, summarize
from meanfield.theory import _batched, trajectory

pytestmark = pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")

KW = dict(sw2=1.5, sb2=0.3, p0=1.2, gamma0=0.4)
RELU_KW = dict(sw2=1.8, sb2=0.3, p0=1.2, gamma0=0.4)
N0, K, L = 32, 0.25, 8  # G = round(K N0) = 8 units a layer: the theory at k = G / N0 = K exactly
C = 1.0
FIELDS = ("p", "q", "gamma", "lam", "e", "s", "mu", "chi", "chi_b", "chi_w", "log_p", "log_s", "log_chi")


def _spec(act, depth=L, **kw):
    return mf.Spec("densenet", act, depth, growth=K, **{**(KW if act == "tanh" else RELU_KW), **kw})


# ------------------------------------------------------------------------------------------- theory
@pytest.mark.slow  # by default the map is checked written out (below) and in closed form (ReLU)
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_engine_matches_the_block_reference(act):
    """The log-domain engine against the plain-domain referee (scipy quadrature) of the same definition,
    with a decaying sw2 on top."""
    spec = mf.Spec("densenet", act, 4, growth=0.3, decay_w=0.4, **KW)
    t = trajectory(spec)
    want = ref.trajectory(spec.block, act, 4, KW["sw2"], 1.0, KW["sb2"], 0.0, 1.0, KW["p0"], KW["gamma0"],
                          decay={"sw2": 0.4})
    for f in ("p", "q", "gamma", "lam", "e", "s", "chi", "chi_b", "chi_w"):
        got, w = getattr(t, f), want["lambda" if f == "lam" else f]
        np.testing.assert_allclose(got, w, rtol=1e-8, err_msg=f)
    np.testing.assert_allclose(t.mu, want["mu"], atol=1e-12)
    assert t.log_R == pytest.approx(want["log_R"], rel=1e-10)
    assert np.all(np.isnan(t.chi_v)) and np.all(np.isnan(t.chi_a))


def test_relu_distance_keeps_full_precision_near_e_one():
    """e0 = 1 - 1e-10: the engine's d = 1 - e (its update a sum of non-negative terms) against the ReLU map
    in 60-digit decimals, D = p - gamma: n_l D_l = n_(l-1) D_(l-1) + k (q/2) (1 - rho(c)), 1 - c = sw2 D / q,
    with the arc-cosine kernel's 1 - rho written by a series in 1 - c. Relative 1e-12 (measured 6e-16;
    the scipy referee is off by ~3e-6 here for every block, its quadrature of V - W near c = 1)."""
    from decimal import Decimal, getcontext
    from fractions import Fraction

    getcontext().prec = 60
    exact = lambda x: Decimal(Fraction(x).numerator) / Decimal(Fraction(x).denominator)  # noqa: E731
    pi = Decimal("3.14159265358979323846264338327950288419716939937510582097494")
    sw2, sb2, p0, k, depth = 1.5, 0.3, 1.2, K, L
    gamma0 = p0 * (1 - 1e-10)
    t = trajectory(_spec("relu", sw2=sw2, sb2=sb2, p0=p0, gamma0=gamma0))
    p, dist = exact(p0), exact(p0) - exact(gamma0)
    sw2_, sb2_, k_ = exact(sw2), exact(sb2), exact(k)
    for l in range(1, depth + 1):
        n_in, n_out = 1 + (l - 1) * k_, 1 + l * k_
        q = sw2_ * p + sb2_
        d = sw2_ * dist / q  # 1 - c
        acos = (2 * d).sqrt() * (1 + d / 12 + 3 * d * d / 160 + 5 * d**3 / 896)  # acos(1 - d), error O(d^4)
        one_minus_rho = (pi * d + (1 - d) * acos - (2 * d - d * d).sqrt()) / pi
        p, dist = (n_in * p + k_ * q / 2) / n_out, (n_in * dist + k_ * q / 2 * one_minus_rho) / n_out
        assert t.s[l] == pytest.approx(float(2 * dist), rel=1e-12), l
        assert 1 - t.e[l] == pytest.approx(float(dist / p), rel=1e-5)  # e itself rounds to 1e-16
    assert t.s[-1] < 0.9 * t.s[0]  # the distance does shrink: the check is not of a constant


def test_map_is_the_weighted_form_written_out():
    """BLOCKS.md's map by hand for tanh, the transforms from the referee: p and gamma weighted by the
    widths, chi's factor 1 + sw2 (k / n_(l-1)) V'(q_l), chi_b = chi^(l) V'(q_l), chi_w = chi_b p^(l-1)."""
    sw2, sb2, p0, g0, k, depth = 1.3, 0.2, 1.1, 0.5, K, 4
    t = trajectory(_spec("tanh", sw2=sw2, sb2=sb2, p0=p0, gamma0=g0))  # depth L: layers 1..4 are a prefix
    p, g, vps = [p0], [g0], [math.nan]
    for l in range(1, depth + 1):
        n_in, n_out = 1 + (l - 1) * k, 1 + l * k
        q, lam = sw2 * p[-1] + sb2, sw2 * g[-1] + sb2
        p.append((n_in * p[-1] + k * ref.V_("tanh", q)) / n_out)
        g.append((n_in * g[-1] + k * ref.W_("tanh", q, lam)) / n_out)
        vps.append(ref.Vp_("tanh", q))
    factors = [1 + sw2 * k / (1 + (l - 1) * k) * vps[l] for l in range(1, depth + 1)]
    top = slice(0, depth + 1)
    np.testing.assert_allclose(t.p[top], p, rtol=1e-12)
    np.testing.assert_allclose(t.gamma[top], g, rtol=1e-10)
    np.testing.assert_allclose(t.chi[:depth] / t.chi[1:depth + 1], factors, rtol=1e-11)
    np.testing.assert_allclose(t.chi_b[1:depth + 1], t.chi[1:depth + 1] * np.array(vps[1:]), rtol=1e-11)
    np.testing.assert_allclose(t.chi_w[1:], t.chi_b[1:] * t.p[:-1], rtol=1e-12)
    assert np.all(t.mu == 0)  # tanh is odd: the stream's mean is exactly 0


@pytest.mark.parametrize("sw2", [1.6, 2.0, 2.5])
def test_relu_closed_form(sw2):
    """ReLU: V(q) = q / 2 and V'(q) = 1/2 make p's recursion linear, p^(l) = p* + (p0 - p*) Pi_l with
    Pi_l = Gamma(l + c + a) Gamma(c + 1) / (Gamma(c + a) Gamma(l + c + 1)), c = 1/k, a = sw2 / 2,
    p* = sb2 / (2 - sw2) (sw2 = 2: p0 + (sb2/2)(psi(l + c + 1) - psi(c + 1))); chi's factor is
    (l - 1 + c + a) / (l - 1 + c), so R(L) = Gamma(L + c + a) Gamma(c) / (Gamma(c + a) Gamma(L + c)); the
    mean is n_l mu^(l) = k sum_(j <= l) sqrt(q_j / (2 pi)) (M(q) of the ReLU)."""
    sb2, p0, k, depth = 0.3, 1.2, K, L
    t = trajectory(_spec("relu", sw2=sw2, sb2=sb2, p0=p0, gamma0=0.4))
    l = np.arange(depth + 1)
    exact = asy.relu_growth_closed_form(sw2, sb2, p0, k, l)
    np.testing.assert_allclose(t.p, exact["p"], rtol=1e-12)
    c, a = 1 / k, sw2 / 2
    np.testing.assert_allclose(t.chi[:-1] / t.chi[1:], (l[1:] - 1 + c + a) / (l[1:] - 1 + c), rtol=1e-13)
    assert t.log_R == pytest.approx(float(exact["log_R"][-1]), rel=1e-12)
    np.testing.assert_allclose(t.log_chi[0] - t.log_chi, exact["log_R"], rtol=1e-12, atol=1e-14)
    q = sw2 * t.p[:-1] + sb2
    np.testing.assert_allclose(t.q[1:], q, rtol=1e-13)
    np.testing.assert_allclose(t.mu[1:], k * np.cumsum(np.sqrt(q / (2 * np.pi))) / (1 + l[1:] * k), rtol=1e-12)
    np.testing.assert_allclose(t.chi_b[1:], t.chi[1:] / 2, rtol=1e-13)


@pytest.mark.parametrize("act", ["tanh", pytest.param("relu", marks=pytest.mark.slow)])
def test_tiny_growth_leaves_the_stream_near_its_input(act):
    """k -> 0: every layer adds a fraction k / (1 + l k) of new units, so p, e and chi move by O(L k)."""
    k, depth = 1e-6, 50
    t = trajectory(mf.Spec("densenet", act, depth, growth=k, **KW))
    p0, e0 = KW["p0"], KW["gamma0"] / KW["p0"]
    move = depth * k
    assert np.max(np.abs(t.p / p0 - 1)) <= 2 * move and abs(t.p[-1] / p0 - 1) > 0.01 * move
    assert np.max(np.abs(t.e - e0)) <= 2 * move
    assert 0 < t.log_R <= 2 * move * KW["sw2"]
    # the finite network of that growth has no new units at any width the samplers take
    with pytest.raises(ValueError, match=r"growth k = 1e-06 at width N = 32 .* round\(k N\) must be >= 1"):
        mf.Spec("densenet", act, depth, growth=k).block.shapes(32)


@pytest.mark.slow  # a depth-2e4 trajectory; the ReLU laws are exact (test_relu_closed_form)
def test_laws_of_a_growing_stream():
    """tanh: p -> p* = V(q*) like l^-(1 - sw2 dV/dq(q*)) and R ~ L^chi_1, both of the feedforward fixed
    point q*; measured as local slopes over the last octave of a depth-2e4 trajectory (converging like
    the next power of 1/l: drift 0.003 and 0.002 at this depth)."""
    spec = mf.Spec("densenet", "tanh", 20_000, sw2=1.5, sb2=0.3)
    laws = asy.predict("densenet", "tanh", sw2=1.5, sb2=0.3)
    lim = asy.growth_limits(spec)
    assert laws.R_exponent == pytest.approx(lim["chi_1"]) and lim["chi_1"] == pytest.approx(0.74183, rel=1e-4)
    t = trajectory(spec)
    L = spec.depth
    log_R = t.log_chi[0] - t.log_chi
    assert (log_R[L] - log_R[L // 2]) / math.log(2) == pytest.approx(lim["chi_1"], rel=0.01)
    gap = np.abs(t.p - lim["p_star"])
    assert -(math.log(gap[L]) - math.log(gap[L // 2])) / math.log(2) == pytest.approx(1 - lim["s_q"], rel=0.01)
    relu = asy.predict("densenet", "relu", sw2=2.5, sb2=0.3)
    assert (relu.R_exponent, relu.p_exponent) == (1.25, 0.25)
    with pytest.raises(ValueError, match="growing stream"):
        asy.growth_limits(mf.Spec("frn", "tanh", 1))


# ------------------------------------------------------------------------------------------ samplers
@functools.lru_cache(maxsize=None)
def _sim(act: str, sampler: str):
    return networks(_spec(act), N0, 400, jax.random.key(5), sampler, "float64")


def max_abs_z(act: str, sampler: str) -> float:
    """The largest |theory - mean| / stderr over the checked fields and layers, without the O(1/N0)
    allowance (so it includes the finite-width bias: e of the ReLU stream, whose bias is ~1.4% at N0 = 32
    against a standard error of ~0.3%, reaches |z| ~ 4)."""
    mean, se = summarize(_sim(act, sampler))
    th = trajectory(_spec(act))
    worst = 0.0
    for f in FIELDS:
        t, m, s = (np.asarray(getattr(x, f), float) for x in (th, mean, se))
        ok = np.isfinite(t) & (s > 0)
        ok[0] &= f in ("chi", "log_chi")  # the inputs at l = 0 are exact
        worst = max(worst, float(np.max(np.abs(m[ok] - t[ok]) / s[ok])))
    return worst


@pytest.mark.parametrize("act,sampler", [("tanh", "fast"), ("relu", "dense"),  # both samplers, both activations
                                         pytest.param("relu", "fast", marks=pytest.mark.slow),
                                         pytest.param("tanh", "dense", marks=pytest.mark.slow)])
def test_simulation_matches_theory(act, sampler):
    per = _sim(act, sampler)
    mean, se = summarize(per)
    th = trajectory(_spec(act))
    for f in FIELDS:
        t, m, s = (np.asarray(getattr(x, f), float) for x in (th, mean, se))
        np.testing.assert_array_equal(np.isnan(m), np.isnan(t), err_msg=f"NaN pattern of {f}")
        scale = np.sqrt(th.p) if f == "mu" else np.abs(t)
        tol = 4 * s + (C / N0 if f.startswith("log_") else C / N0 * scale)
        bad = ~np.isnan(t) & (np.abs(m - t) > tol)
        assert not bad.any(), f"{act} {sampler} {f} at l = {np.flatnonzero(bad)}: sim {m[bad]} +- {s[bad]}, theory {t[bad]}"
    assert abs(mean.log_R - th.log_R) <= 4 * se.log_R + C / N0
    # bookkeeping: chi^(L) = 1 exactly, chi_w = chi_b p^(l-1) per network (rank one, p over N_(l-1))
    assert np.all(per.chi[:, -1] == 1.0)
    np.testing.assert_allclose(per.chi_w[:, 1:], per.chi_b[:, 1:] * per.p[:, :-1], rtol=1e-12)


def test_old_and_new_gradient_coordinates_share_one_mean_square():
    """chi per coordinate assumes every coordinate of g^(l) = dE/dx^(l) has the same expected square,
    the input's and each layer's new units alike. A densenet written out with real matrices (no sampler)
    measures each block of g^(l) against the theory's chi^(l): |z| <= 4 + the allowance C / N0 above."""
    n0, g_units, depth, samples, sw2, sb2 = 32, 8, 3, 400, 1.5, 0.3
    rng = np.random.default_rng(0)
    out = np.full((samples, depth, depth), np.nan)  # [network, l, block]: block 0 the input, j the units of layer j
    for s in range(samples):
        x = rng.standard_normal(n0)
        xs, ws, hs = [x / np.sqrt(np.mean(x * x))], [], []
        for l in range(depth):
            n_in = n0 + l * g_units
            ws.append(np.sqrt(sw2 / n_in) * rng.standard_normal((g_units, n_in)))
            hs.append(ws[-1] @ xs[-1] + np.sqrt(sb2) * rng.standard_normal(g_units))
            xs.append(np.concatenate([xs[-1], np.tanh(hs[-1])]))
        g = np.where(rng.standard_normal(n0 + depth * g_units) < 0, -1.0, 1.0)
        for l in range(depth, 0, -1):  # g^(l-1) from g^(l)
            n_in = n0 + (l - 1) * g_units
            g = g[:n_in] + ws[l - 1].T @ ((1 - np.tanh(hs[l - 1]) ** 2) * g[n_in:n_in + g_units])
            out[s, l - 1, :l] = [np.mean(g[:n0] ** 2)] + [np.mean(g[n0 + j * g_units:n0 + (j + 1) * g_units] ** 2)
                                                          for j in range(l - 1)]
    mean, se = out.mean(0), out.std(0, ddof=1) / math.sqrt(samples)
    # chi^(l) of a depth-3 network is chi^(l) / chi^(3) of a deeper one (the layers' factors depend on l
    # only); depth L = 8 reuses the program compiled for the simulation tests
    th = trajectory(_spec("tanh", sw2=sw2, sb2=sb2, p0=1.0, gamma0=0.5))
    assert g_units / n0 == K
    for l in range(depth):
        ok = ~np.isnan(mean[l])
        t = th.chi[l] / th.chi[depth]
        assert np.all(np.abs(mean[l, ok] - t) <= 4 * se[l, ok] + C / n0 * t), (l, mean[l, ok], t)


def test_memory_plan_uses_the_final_width():
    spec = _spec("tanh", depth=7)
    block = spec.block
    n_top = block.width_at(N0, 7)
    assert (block.growth_units(N0), n_top) == (8, 88)
    assert block.shapes(N0, 7) == {"w": (88, 8), "b": (8,)}
    # fast: a basis of N_L, two Gaussian rows and phi' of G; dense: h of G (rows of N_L, rounded up)
    assert (block.tape_rows("fast", N0, 7), block.tape_rows("dense", N0, 7)) == (3, 1)
    # one network: the tape (3 rows) and one layer's transients (24 rows, dense: the G x N_L matrix) of N_L
    assert plan("fast", block, N0, 7, 8, 1, memory_bytes=10**9)[0] == 7
    assert network_bytes("fast", block, N0, 7, 8, 7) == (7 * 3 + 24 + 2) * 88 * 8
    assert network_bytes("dense", block, N0, 7, 8, 7) == (7 * 1 + (8 + 8) + 2) * 88 * 8
    with pytest.raises(ValueError, match="need the width and the depth"):
        block.tape_rows("fast")


@pytest.mark.slow
def test_checkpointed_segments_recompute_the_growing_stream():
    spec = _spec("tanh", depth=7)
    full = networks(spec, N0, 4, jax.random.key(2), dtype="float64")
    ckpt = networks(spec, N0, 4, jax.random.key(2), dtype="float64", segment=3)
    for f in ("p", "e", "chi", "chi_w", "q"):
        np.testing.assert_allclose(getattr(ckpt, f), getattr(full, f), rtol=1e-12, err_msg=f)


def test_sweeps_over_the_variances_never_recompile():
    # the programs of the tests above: one network's theory of depth 8, 400 networks of width 32
    trajectory(_spec("tanh"))
    _sim("tanh", "fast")
    before = _batched._cache_size(), _networks._cache_size()
    for sw2, sb2 in ((0.7, 0.0), (2.5, 0.9)):
        trajectory(_spec("tanh", sw2=sw2, sb2=sb2))
        networks(_spec("tanh", sw2=sw2, sb2=sb2), N0, 400, jax.random.key(0), "fast", "float64")
    assert (_batched._cache_size(), _networks._cache_size()) == before


# ------------------------------------------------------------------------------------------- model
@pytest.mark.parametrize("optimizer", ["sgd", pytest.param("adam", marks=pytest.mark.slow)])
def test_model_is_the_densenet_and_masked_weights_stay_zero(optimizer):
    from meanfield.train.config import TrainConfig
    from meanfield.train.model import NetworkSettings, apply, cross_entropy, init_params
    from meanfield.train.trainer import make_optimizer

    width, depth, growth = 16, 3, 0.25
    block = mf.Spec("densenet", "tanh", depth, growth=growth).block
    act = mf.get_activation("tanh")
    n_top = width + depth * 4

    @jax.jit  # one program (op by op, the random draws alone compile for seconds)
    def init(key):
        # the parameters, and W's standard normal draws: init_params splits its key into embed, w, b, out
        z = jax.random.normal(jax.random.split(key, 4)[1], (depth, n_top, 4))
        return init_params(key, NetworkSettings(1.2, 1.0, 0.1, 0.0), arch=block, width=width, depth=depth), z

    p, z = init(jax.random.PRNGKey(3))
    assert p["blocks"]["w"].shape == (depth, n_top, 4) and p["out_w"].shape == (n_top, 10)
    # layer l's W: sqrt(sw2 / N_(l-1)) times its standard normal draw in its first N_(l-1) rows, 0 beyond
    for l in range(depth):
        n_in = width + 4 * l
        np.testing.assert_allclose(np.asarray(p["blocks"]["w"][l, :n_in]), np.sqrt(1.2 / n_in) * np.asarray(
            z[l, :n_in]), rtol=1e-6)
    x = jnp.asarray(np.random.default_rng(4).standard_normal((5, 784)), jnp.float32)

    def by_hand(params):
        h = x @ params["embed_w"] + params["embed_b"]
        for l in range(depth):
            n_in = width + 4 * l
            h = jnp.concatenate([h, jnp.tanh(h @ params["blocks"]["w"][l, :n_in] + params["blocks"]["b"][l])], -1)
        return h @ params["out_w"] + params["out_b"]

    rows = np.arange(n_top)[None, :, None] >= (width + 4 * np.arange(depth))[:, None, None]
    assert np.all(np.asarray(p["blocks"]["w"])[np.broadcast_to(rows, p["blocks"]["w"].shape)] == 0)
    # one optimizer step: the masked rows get no gradient and stay exactly zero, the others move
    opt = make_optimizer(TrainConfig(optimizer=optimizer), 0.1)
    y = jnp.arange(5) % 10

    @jax.jit  # one program: the model and the hand-written network before and after one optimizer step
    def step(q):
        grads = jax.grad(lambda r: cross_entropy(apply(r, 1.0, x, arch=block, act=act), y))(q)
        updates, _ = opt.update(grads, opt.init(q), q)
        new = jax.tree_util.tree_map(lambda a, u: a + u, q, updates)
        return new, [(apply(r, 1.0, x, arch=block, act=act), by_hand(r)) for r in (q, new)]

    new, outputs = step(p)
    for got, want in outputs:
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    w_new = np.asarray(new["blocks"]["w"])
    mask = np.broadcast_to(rows, w_new.shape)
    assert np.all(w_new[mask] == 0) and np.all(w_new[~mask] != np.asarray(p["blocks"]["w"])[~mask])


# -------------------------------------------------------------------------------- validation and CLI
def test_spec_refuses_bad_growth():
    with pytest.raises(ValueError, match=r"growth must be a single number > 0 \(the new units per layer"):
        mf.Spec("densenet", "tanh", 3, growth=0.0)
    with pytest.raises(ValueError, match="growth must be a single number > 0"):
        mf.Spec("densenet", "tanh", 3, growth=np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="growth applies to arch densenet only: leave it unset for arch frn"):
        mf.Spec("frn", "tanh", 3, growth=0.5)
    with pytest.raises(ValueError, match="sv2 applies to arch"):
        mf.Spec("densenet", "tanh", 3, sv2=2.0)
    with pytest.raises(ValueError, match="norm applies to arch"):
        mf.Spec("densenet", "tanh", 3, norm="layer")
    assert mf.Spec("densenet", "tanh", 3).growth == 0.25
    with pytest.raises(ValueError, match="only top-level primitive"):
        blocks.Block("bad", (blocks.Concat((blocks.Dense("w", "sw2"),)), blocks.Act()))
    with pytest.raises(ValueError, match="must start with a Dense"):
        blocks.Block("bad", (blocks.Concat((blocks.Act(), blocks.Dense("w", "sw2"))),))


@pytest.mark.parametrize("argv,message", [
    (["theory", "--arch", "densenet", "--growth", "0"], "growth must be a single number > 0"),
    (["theory", "--arch", "frn", "--growth", "0.5"], "growth applies to arch densenet only"),
    (["theory", "--arch", "densenet", "--sa2", "1"], "--sa2 applies to --arch"),
    (["theory", "--arch", "densenet", "--branch-scale", "0.5"], "the densenet has no residual branch"),
    (["simulate", "--arch", "densenet", "--growth", "0.01", "--width", "16", "--samples", "2"],
     "round(k N) must be >= 1 (k >= 0.03125) (--growth and --width)"),
    (["simulate", "--arch", "frn", "--growth", "0.5", "--width", "16", "--samples", "2"],
     "growth applies to arch densenet only"),
    (["train", "--arch", "frn", "--growth", "0.5", "--out", "unused"], "growth applies to arch densenet only"),
    (["train", "--arch", "densenet", "--growth", "-1", "--out", "unused"], "growth must be a single number > 0"),
])
def test_cli_refuses_bad_growth(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--act", "tanh", "--sw2", "1", "--depth", "3"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


_CLI = ["--arch", "densenet", "--act", "relu", "--sw2", "1.8", "--sb2", "0.3", "--growth", "0.25", "--format", "json"]


def test_cli_theory_reaches_the_densenet(capsys):
    assert main(["theory", "--depth", str(L)] + _CLI) == 0
    out = json.loads(capsys.readouterr().out)
    np.testing.assert_array_equal(out["p"], trajectory(_spec("relu", p0=1.0, gamma0=0.5)).p)


@pytest.mark.slow  # the samplers' numbers are checked above; this is the command line's plumbing
def test_cli_simulate_reaches_the_densenet(capsys):
    flags = _CLI
    assert main(["simulate", "--depth", "3", "--width", "8", "--samples", "2", "--no-progress"] + flags) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["p"]) == 4 and out["chi_v"] == [None] * 4 and out["chi"][-1] == 1.0


@pytest.mark.slow
def test_dynamics_figures_of_the_growing_streams(tmp_path):
    from meanfield import figures as F

    for net in F.GROWTH_NETWORKS:
        path = F.dynamics_figure(net, F.TINY, str(tmp_path))
        assert path.endswith(f"dynamics_{net.name}.png") and (tmp_path / f"dynamics_{net.name}.png").stat().st_size > 0
