"""The highway block, x <- T phi(W x + b) + (1 - T) x with T = sigmoid(U x + c) (docs/blocks.md).

Checks: the gate's Gaussian moments against scipy; exact identities of the map (S = 0: a constant gate
t = sigmoid(c), closed form in the activation's transforms; c -> -infinity: the identity); the theory
against both samplers (z-scores with an O(L/N) allowance) and against the scipy referee; no recompiling
over sg2, gate_bias, sw2; the trained model's forward pass written out by hand; validation and the CLI.

Theory vs simulation, per layer and field: |sim - theory| <= 4 stderr + (C / N) |theory| + 1e-5 scale,
C = L (one O(1/N) Jensen term per activation and layer, as for the frn; docs/theory.md, section 8). At
the networks below (L = 10, gamma0 = -0.3, so that the gate's E[(T - T')^2] is large) the measured
finite-width bias N |sim - theory| / |theory| of p, q, s, mu, chi at N = 256 and 1024 (fast sampler) is
at most 8.7, and of chi_b, chi_w at most 25 (N = 1024, where their z is below 2.1: noise, not bias); every
|z| <= 3.3. gamma, e and lambda pass through 0 (gamma0 < 0), where only the stderr term applies. At other settings the
mean-tracking ReLU highway has the rrn's larger finite-width bias where 1 - e gets small (README,
limits of the infinite-width theory): e.g. sw2 = 1.5, sb2 = 0.2, S = 1.5, c = 0.5 at L = 20 has
N (sim - theory) / theory of s about 80 at N = 256, 1024 and 4096 (1 - e ~ 1e-4 there).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meanfield as mf
from meanfield import blocks, gate
from meanfield import reference as ref
from meanfield._x64 import float64
from meanfield.cli import main
from meanfield.simulate import networks, summarize
from meanfield.theory import trajectory
from meanfield.trajectory import FIELDS

pytestmark = pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")

KW = dict(sw2=1.5, sb2=0.2, sg2=2.0, gate_bias=-1.0, p0=1.0, gamma0=-0.3)
DEPTH = 10


def _spec(act, **changes):
    return mf.Spec("highway", act, DEPTH, **{**KW, **changes})


@functools.lru_cache(maxsize=None)
def _theory(act):
    return trajectory(_spec(act))


# ------------------------------------------------------------------------------------- gate moments
def _sigmoid(g):
    return 1.0 / (1.0 + math.exp(-g)) if g >= 0 else math.exp(g) / (1.0 + math.exp(g))


def _scipy_moments(c, v):
    dsig = lambda g: math.exp(-abs(g)) / (1.0 + math.exp(-abs(g))) ** 2  # noqa: E731
    return [ref.normal_expectation(f, v, mean=c) for f in (
        lambda g: _sigmoid(g) ** 2, lambda g: _sigmoid(-g) ** 2, dsig, lambda g: dsig(g) ** 2)]


def _scipy_diff_sq(c, v, d):
    """E[(T - T')^2] by nested adaptive quadrature over x ~ N(c, v (1 - d/2)), y ~ N(0, v d / 2) (y >= 0,
    the integrand is even in y), the difference sigmoid(x + y) - sigmoid(x - y) from its exponentials."""
    b = math.sqrt(v * d / 2)

    def inner(x):
        dens = lambda y: 2 * math.exp(-0.5 * (y / b) ** 2) / (b * math.sqrt(2 * math.pi))  # noqa: E731
        return ref._quad(lambda y: ref._sigmoid_diff(x, y) ** 2 * dens(y), 0.0, 12 * b, anchor=abs(x))

    return ref.normal_expectation(inner, v * (1 - d / 2), mean=c)


#: (c, v) of the one-dimensional moments and (c, v, d) of D checked against scipy, then the exact ends
_MOMENTS = np.array([(c, v) for v in (1e-6, 1.0, 30.0, 1e4, 1e8) for c in (-8.0, 0.7, 12.0)] + [(0.0, 3.0), (0.4, 3.0)])
_PAIRS = np.array([(0.7, 1.0, 1e-12), (0.7, 1.0, 0.5), (-3.0, 30.0, 1e-4), (4.0, 1e4, 0.3), (-1.0, 2.0, 2.0),
                   (0.0, 1e8, 1e-12), (0.3, 5.0, 0.0), (0.3, 0.0, 1.0), (0.0, 3.0, 2.0), (0.4, 3.0, 1e-12),
                   (KW["gate_bias"], KW["sg2"] * KW["p0"], 1 - KW["gamma0"] / KW["p0"])])  # the networks' first gate
_N_SCIPY = 15, 6


@functools.lru_cache(maxsize=None)
def _gate_values():
    """The rules at _MOMENTS and _PAIRS: one compiled call each."""
    with float64():
        return np.array(jax.jit(gate.moments)(*_MOMENTS.T)), np.asarray(jax.jit(gate.diff_sq)(*_PAIRS.T))


def test_gate_moments_match_scipy():
    # the rules against adaptive quadrature: the moments within 2e-12 relative from v = 1e-6 to 1e8
    # (measured 9e-13, set by scipy at v = 1e-6; the rule is exact there to rounding), D = E[(T - T')^2]
    # within 1e-11 down to d = 1e-12, where D ~ d keeps its relative precision (measured <= 5e-12 over
    # c in [-8, 12], v in [1e-4, 1e16], d in [1e-12, 2])
    got, dsq = _gate_values()
    n1, n2 = _N_SCIPY
    np.testing.assert_allclose(got[:, :n1], np.array([_scipy_moments(*cv) for cv in _MOMENTS[:n1]]).T, rtol=2e-12)
    np.testing.assert_allclose(dsq[:n2], [_scipy_diff_sq(*cvd) for cvd in _PAIRS[:n2]], rtol=1e-11)
    # E[T] = E[T^2] + E[T (1 - T)] and E[1 - T] = E[(1 - T)^2] + E[T (1 - T)] add up to 1
    np.testing.assert_allclose(got[0] + got[1] + 2 * got[2], 1.0, rtol=1e-15)


def test_gate_difference_is_exact_at_the_ends():
    got, dsq = _gate_values()
    n1, n2 = _N_SCIPY
    # d = 0: identical gates; v = 0: a constant gate
    assert dsq[n2] == 0.0 and dsq[n2 + 1] == 0.0
    # d = 2 at c = 0: T' = 1 - T, so E[(T - T')^2] = E[T^2] + E[(1 - T)^2] - 2 E[T (1 - T)]
    t2, u2, tm, _ = got[:, n1]
    assert dsq[n2 + 2] == pytest.approx(t2 + u2 - 2 * tm, rel=1e-12)
    # D / d -> 4 (v / 2) E[sigmoid'(g)^2] as d -> 0 (sigmoid(x + y) - sigmoid(x - y) ~ 2 y sigmoid'(x))
    assert dsq[n2 + 3] / 1e-12 == pytest.approx(2 * 3.0 * got[3, n1 + 1], rel=1e-10)


# ------------------------------------------------------------------------------------- identities
def _relu_kernel(c):
    return ref.relu_kernel(min(max(c, -1.0), 1.0))


def constant_gate_relu(depth, sw2, sb2, t, p0, gamma0):
    """S = 0: T = t = sigmoid(c) everywhere; the ReLU map in closed form (V = q/2, M = sqrt(q / 2 pi),
    W = q k(lam / q) with the arc-cosine kernel k, V' = 1/2), no quadrature and no block layer."""
    p, g, mu = [p0], [gamma0], [0.0]
    factors = []
    for _ in range(depth):
        q, lam = sw2 * p[-1] + sb2, sw2 * g[-1] + sb2
        v, m, w = q / 2, math.sqrt(q / (2 * math.pi)), q * _relu_kernel(lam / q)
        p.append(t * t * v + (1 - t) ** 2 * p[-1] + 2 * t * (1 - t) * m * mu[-1])
        g.append(t * t * w + (1 - t) ** 2 * g[-1] + 2 * t * (1 - t) * m * mu[-1])
        mu.append(t * m + (1 - t) * mu[-1])
        factors.append((1 - t) ** 2 + sw2 * t * t / 2)
    chi = np.append(np.cumprod(factors[::-1])[::-1], 1.0)
    return np.array(p), np.array(g), np.array(mu), chi


@jax.jit
def _tanh_transforms(q, lam):
    """V, V' and W of tanh (one compiled program)."""
    tanh = mf.get_activation("tanh")
    log_q = jnp.log(q)
    v = jnp.exp(tanh.log_V(log_q))
    return v, jnp.exp(tanh.log_Vp(log_q)), v * tanh.corr(log_q, lam / q)


@pytest.mark.parametrize("c", [-1.0, 2.0])
def test_constant_gate_is_the_closed_form_map(c):
    t = _sigmoid(c)
    spec = _spec("relu", sg2=0.0, gate_bias=c, gamma0=0.3)
    th = trajectory(spec)
    p, g, mu, chi = constant_gate_relu(DEPTH, KW["sw2"], KW["sb2"], t, KW["p0"], 0.3)
    np.testing.assert_allclose(th.p, p, rtol=1e-13)
    np.testing.assert_allclose(th.gamma, g, rtol=1e-12)
    np.testing.assert_allclose(th.mu, mu, rtol=1e-13)
    np.testing.assert_allclose(th.chi, chi, rtol=1e-13)
    np.testing.assert_allclose(th.chi_b[1:], chi[1:] * t * t / 2, rtol=1e-13)  # chi E[T^2] V'(q)
    np.testing.assert_allclose(th.chi_w[1:], th.chi_b[1:] * p[:-1], rtol=1e-13)
    # tanh: the same map in the activation's own transforms (odd: no mean)
    th = trajectory(_spec("tanh", sg2=0.0, gate_bias=c, gamma0=0.3))
    with float64():
        q = KW["sw2"] * th.p[:-1] + KW["sb2"]
        v, vp, w = (np.asarray(a) for a in _tanh_transforms(q, KW["sw2"] * th.gamma[:-1] + KW["sb2"]))
    np.testing.assert_allclose(th.p[1:], t * t * v + (1 - t) ** 2 * th.p[:-1], rtol=1e-13)
    np.testing.assert_allclose(th.gamma[1:], t * t * w + (1 - t) ** 2 * th.gamma[:-1], rtol=1e-11)
    np.testing.assert_allclose(th.chi[:-1] / th.chi[1:], (1 - t) ** 2 + KW["sw2"] * t * t * vp, rtol=1e-13)


def test_closed_gate_is_the_identity():
    # c = -800: T = sigmoid(-800) = 0 in float64 and float32; every layer passes x through
    for act in ("tanh", "relu"):
        th = trajectory(_spec(act, gate_bias=-800.0))
        for f in ("p", "gamma", "e", "s", "mu", "chi"):
            np.testing.assert_allclose(getattr(th, f), getattr(th, f)[0], rtol=1e-14, atol=1e-300, err_msg=f)
        assert np.all(th.chi_b[1:] == 0) and np.all(th.chi_w[1:] == 0)
    # the sampled networks pass x through bit for bit (the compiled networks of the simulation tests)
    per = networks(_spec("relu", gate_bias=-800.0), 256, 100, jax.random.key(0))
    np.testing.assert_array_equal(per.p, np.repeat(per.p[:, :1], DEPTH + 1, axis=1))
    np.testing.assert_array_equal(per.chi, 1.0)


def test_half_distance_update_keeps_its_precision_near_e_1():
    # inputs 1e-12 and 2e-12 apart (d0 = 1 - e0): the map of d is linear in d to O(d^2) for tanh, so d^(l)
    # doubles to ~1e-10 at every layer if no term of its update cancels (d read from log s = log 2 p d,
    # not from e = 1 - d, which keeps only ~1e-4 of d's digits here)
    th = [trajectory(_spec("tanh", gamma0=1.0 - d0)) for d0 in (1e-12, 2e-12)]
    log_d = [t.log_s - t.log_p for t in th]  # log 2d
    assert np.all(np.isfinite(log_d))
    np.testing.assert_allclose(np.exp(log_d[1] - log_d[0]), 2.0, rtol=1e-10)
    assert np.ptp(log_d[0]) > 0.1  # and d moves: the ratio is not a constant passed through


# ------------------------------------------------------------------------------------- simulation
def _check(th, mean, se, width, label):
    c = DEPTH
    for field in FIELDS:
        t, m, s = (np.asarray(getattr(x, field), float) for x in (th, mean, se))
        assert np.array_equal(np.isnan(m), np.isnan(t)), f"{label}: NaN pattern of {field}"
        scale = np.sqrt(th.p) if field == "mu" else np.abs(t)
        tol = (4 * s + c / width + 1e-5) if field.startswith("log_") else (4 * s + c / width * np.abs(t) + 1e-5 * scale)
        ok = np.isnan(t) | (np.abs(m - t) <= tol)
        assert ok.all(), (f"{label}: {field} at l = {np.flatnonzero(~ok).tolist()}: sim {m[~ok]} +- {s[~ok]}, "
                          f"theory {t[~ok]}")
    assert abs(mean.log_R - th.log_R) <= 4 * se.log_R + c / width, label


@pytest.mark.parametrize("act,sampler,width", [
    ("relu", "fast", 256), ("relu", "dense", 128),  # tanh: the same sampler code, a compilation each (-m slow)
    pytest.param("tanh", "fast", 256, marks=pytest.mark.slow),
    pytest.param("tanh", "dense", 128, marks=pytest.mark.slow)])
def test_theory_matches_both_samplers(act, sampler, width):
    mean, se = summarize(networks(_spec(act), width, 100, jax.random.key(0), sampler))
    th = _theory(act)
    _check(th, mean, se, width, f"{act} {sampler}")
    # (T - T')^2 multiplies E[(b - x)(b - x')] = E[(b - x)^2] - s/2 in the update of s (b the branch):
    # the form with + s/2 instead is off by E[(T - T')^2] s^(0), which the networks reject (measured
    # 27 to 95 stderr at layer 1)
    dsq = _gate_values()[1][-1]  # E[(T - T')^2] at the first layer
    assert abs(mean.s[1] - (th.s[1] + dsq * th.s[0])) > 10 * se.s[1]


@pytest.mark.slow
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_engine_matches_block_reference(act):
    # the log-domain engine against the plain-domain scipy referee (the gate's moments by nested adaptive
    # quadrature, E[T T'], E[(1 - T)(1 - T')] and E[T (1 - T')] directly): measured 1e-11 (tanh: its table)
    kw = dict(KW, gamma0=0.4)
    t = trajectory(mf.Spec("highway", act, 3, **kw))
    want = ref.trajectory("highway", act, 3, kw["sw2"], 1.0, kw["sb2"], 0.0, 1.0, kw["p0"], kw["gamma0"],
                          sg2=kw["sg2"], gate_bias=kw["gate_bias"])
    for f in ("p", "q", "gamma", "e", "s", "mu", "chi", "chi_b", "chi_w"):
        got, w = np.asarray(getattr(t, f)), np.asarray(want[f])
        np.testing.assert_allclose(got, w, rtol=1e-9, atol=1e-12 if f == "mu" else 0, err_msg=f)
    assert t.log_R == pytest.approx(want["log_R"], rel=1e-10)


def test_sweep_over_the_gate_and_sw2_never_recompiles():
    from meanfield.simulate import _networks
    from meanfield.theory import _batched

    # (the shapes of the other tests: their compiled programs serve here)
    spec = _spec("relu")
    trajectory(spec.replace(sg2=0.5, gate_bias=1.0))
    networks(spec.replace(sg2=0.5, gate_bias=1.0), 256, 100, jax.random.key(0))
    before = _batched._cache_size(), _networks._cache_size()
    for sw2, sg2, c in ((0.7, 0.0, 2.0), (1.9, 3.0, -3.0)):
        trajectory(spec.replace(sw2=sw2, sg2=sg2, gate_bias=c))
        networks(spec.replace(sw2=sw2, sg2=sg2, gate_bias=c), 256, 100, jax.random.key(0))
    assert (_batched._cache_size(), _networks._cache_size()) == before


def test_registry_memory_rows_and_fields():
    block = blocks.get_block("highway")
    assert block.fields == {"sw2", "sb2", "sg2", "gate_bias"} and not block.residual and not block.centred
    assert [n for n, _ in block.params] == ["u", "c", "w", "b"]
    assert block.dense_key_slots() == (("u", "w"), ("b",)) and block.shapes(8)["c"] == (8,)
    # fast: basis + Gaussian rows of U and W (4 + 4), phi'(h), and the gate's preactivation and b - x;
    # dense: h, and the gate's two rows
    assert (block.tape_rows("fast"), block.tape_rows("dense")) == (11, 3)
    from meanfield._plan import network_bytes

    assert network_bytes("fast", "highway", 64, 10, 4, 10) == (10 * 11 + 24 + 2) * 64 * 4


# ------------------------------------------------------------------------------------------ model
def test_model_applies_the_highway_block():
    from meanfield.train.model import NetworkSettings, apply, init_params

    var = NetworkSettings(1.5, 1.0, 0.2, 0.0, sg2=3.0, gate_bias=-1.5)
    key = jax.random.key(3, impl="rbg")  # any key implementation; this one compiles fastest
    p = init_params(key, var, arch="highway", width=16, depth=3)
    assert set(p["blocks"]) == {"u", "c", "w", "b"}
    np.testing.assert_array_equal(p["blocks"]["c"], np.full((3, 16), -1.5, np.float32))
    x = jax.random.normal(jax.random.fold_in(key, 1), (5, 784), jnp.float32)
    got = apply(p, 1.0, x, arch="highway", act=mf.get_activation("relu"))
    h = x @ p["embed_w"] + p["embed_b"]
    for l in range(3):
        k = {name: v[l] for name, v in p["blocks"].items()}
        t = 1.0 / (1.0 + jnp.exp(-(h @ k["u"] + k["c"])))
        h = t * jax.nn.relu(h @ k["w"] + k["b"]) + (1.0 - t) * h
    np.testing.assert_allclose(got, h @ p["out_w"] + p["out_b"], rtol=2e-5, atol=2e-5)
    # U carries the variance sg2 / N (768 entries: the mean square within 25%, 5 standard errors; sw2 is half)
    assert float(jnp.mean(p["blocks"]["u"] ** 2)) * 16 == pytest.approx(3.0, rel=0.25)


# ------------------------------------------------------------------------------------- validation
def test_spec_validates_the_gate_fields():
    with pytest.raises(ValueError, match="sg2 must be >= 0, got -1.0"):
        mf.Spec("highway", "relu", 3, sg2=-1.0)
    with pytest.raises(ValueError, match="gate_bias must be a finite number, got nan"):
        mf.Spec("highway", "relu", 3, gate_bias=float("nan"))
    with pytest.raises(ValueError, match="sg2 applies to arch highway only: leave it at 1 for arch frn"):
        mf.Spec("frn", "relu", 3, sg2=2.0)
    with pytest.raises(ValueError, match="gate_bias applies to arch highway only: leave it at 0 for arch rrn"):
        mf.Spec("rrn", "relu", 3, gate_bias=-1.0)
    with pytest.raises(ValueError, match="sv2 applies to arch"):
        mf.Spec("highway", "relu", 3, sv2=2.0)
    with pytest.raises(ValueError, match="branch_scale applies to arch"):
        mf.Spec("highway", "relu", 3, branch_scale=0.5)


@pytest.mark.parametrize("argv,message", [
    (["theory", "--arch", "highway", "--sg2", "-1"], "sg2 must be >= 0"),
    (["theory", "--arch", "highway", "--gate-bias", "inf"], "gate_bias must be a finite number"),
    (["theory", "--arch", "frn", "--sg2", "2"], "--sg2 applies to --arch highway only: the frn has no gate"),
    (["simulate", "--arch", "ff", "--gate-bias", "-1", "--width", "8", "--samples", "2"],
     "--gate-bias applies to --arch highway only: the ff has no gate"),
    (["laws", "--arch", "highway", "--measure", "--depth", "100"], "no law is derived for a gated block"),
    (["train", "--arch", "frn", "--sg2", "0.5,2", "--out", "unused"], "--sg2 applies to --arch highway only"),
])
def test_cli_refuses_bad_gate_flags(argv, message, capsys):
    base = ["--act", "relu", "--sw2", "1"] + (["--depth", "3"] if argv[0] != "laws" else [])
    with pytest.raises(SystemExit) as exc:
        main(argv + base)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_cli_theory_reaches_the_gate(capsys):
    import json

    flags = ["--arch", "highway", "--act", "relu", "--sw2", "1.5", "--sb2", "0.2", "--sg2", "2", "--gate-bias", "-1",
             "--depth", str(DEPTH), "--format", "json"]
    assert main(["theory"] + flags) == 0
    out = json.loads(capsys.readouterr().out)
    np.testing.assert_array_equal(out["chi"], trajectory(_spec("relu", p0=1.0, gamma0=0.5)).chi)


def test_sweep_config_carries_the_gate_and_reads_older_results(tmp_path):
    from meanfield.train import sweep
    from meanfield.train.config import COLUMNS, COLUMNS_WITHOUT_GATE, SweepConfig, effective, settings, validate

    cfg = SweepConfig(arch="highway", act="relu", depth=(2,), sw2=(1.5,), sg2=(0.5, 2.0), gate_bias=(-1.0,))
    validate(cfg)
    assert sorted({(s["sg2"], s["gate_bias"]) for s in settings(effective(cfg))}) == [(0.5, -1.0), (2.0, -1.0)]
    # a block without a gate trains at the neutral values, as an rrn at sv2 = 1 (the CLI refuses the flags)
    assert effective(SweepConfig(arch="frn", act="relu", depth=(2,), sg2=(2.0,), gate_bias=(1.0,))).sg2 == (1.0,)
    # a results.csv from before the gate columns: its networks read with sg2 = 1, gate_bias = 0
    path = tmp_path / "results.csv"
    row = ["frn", "relu", "linear", "1.0", "1.5", "1.0", "0.0", "0.0", "0.01", "2", "8", "0", "1", "0.5", "0.5",
           "0.5", "1.0", "0", "1.0"]
    path.write_text(",".join(COLUMNS_WITHOUT_GATE) + "\n" + ",".join(row) + "\n")
    res = sweep.read_results(str(path))
    assert list(res) == list(COLUMNS) and res["sg2"][0] == 1.0 and res["gate_bias"][0] == 0.0
    assert sweep._read_done(str(path)) == {((1.0, 1.5, 1.0, 0.0, 0.0, 1.0, 0.0, 0.01), 2, 0)}
    with sweep._results_file(str(path), True) as append:  # resumed there: rows without the gate columns
        append([row + ["1.0", "0.0"]])
    assert path.read_text().splitlines()[-1] == ",".join(row)


@pytest.mark.slow
def test_highway_dynamics_figures_draw_without_laws(tmp_path):
    from meanfield import figures as F

    nets = [n for n in F.BLOCK_NETWORKS if n.arch == "highway"]
    assert [n.act for n in nets] == ["tanh", "relu"] and all(n.laws().log_B is None for n in nets)
    for net in nets:
        path = F.dynamics_figure(net, F.TINY, str(tmp_path))
        with open(path, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "--sg2 2 --gate-bias -1" in F._cli_flags(nets[1])
