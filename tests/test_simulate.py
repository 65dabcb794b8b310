"""Finite-width simulation (meanfield.simulate) against the theory engine (meanfield.theory, itself checked
against the independent scipy reference in test_theory.py), and its two samplers against each other.

Tolerance of theory vs simulation, per layer and field:

    |sim - theory| <= 4 stderr + (C / N) |theory| + 1e-5 scale

* 4 stderr: sampling noise (per comparison, two-sided p ~ 6e-5 for a normal mean).
* C / N: the finite-width bias. The theory is the N -> infinity limit; each layer of a width-N network
  adds an O(1/N) relative bias (e.g. Jensen: E V(q_emp) - V(E q_emp) ~ V''(q) Var(q_emp) / 2, and
  Var(q_emp) ~ 2 q^2 / N), so after L layers the bias is O(L / N). We allow C = L (1/N per layer). For
  the mean-tracking ReLU RRN the measured bias is much larger (N * |sim - theory| / theory ~ 30 for chi
  at sw2 = sb2 = 0.1, L = 20, the same at N = 1024 and 4096, so it is a genuine O(1/N) term with a big
  coefficient, see ``test_finite_width_bias_shrinks_like_one_over_n``); there C = 3 L. A block with two
  activations per layer (``preact``, ``basic``) makes two such Jensen terms a layer: C = 2 L. A bottleneck
  of inner width r N makes them at that width, O(1 / (r N)) each: C = 2 L / r.
* 1e-5 scale: float32 rounding of the exactly constructed inputs at l = 0 (scale = |theory|, or sqrt(p)
  for mu, whose theory value is 0).
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import meanfield as mf
from meanfield import theory
from meanfield.simulate import _networks, compare, networks, plan, plot_comparison, simulate, summarize
from meanfield.trajectory import FIELDS, Trajectory

# (name, spec, width, samples, C)
CASES = [
    ("tanh_rrn", mf.Spec("rrn", "tanh", 20, sw2=1.5, sb2=0.5), 1024, 100, 20),
    ("tanh_frn", mf.Spec("frn", "tanh", 20, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5), 1024, 100, 20),
    ("relu_frn", mf.Spec("frn", "relu", 20, sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5), 1024, 100, 20),
    ("alpha_relu_frn", mf.Spec("frn", "alpha_relu", 20, alpha=0.75, sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5),
     1024, 100, 20),
    ("relu_rrn_mean_tracking", mf.Spec("rrn", "relu", 20, sw2=0.1, sb2=0.1), 1024, 100, 60),
    ("tanh_ff", mf.Spec("ff", "tanh", 10, sw2=1.2, sb2=0.1, gamma0=0.3), 512, 100, 10),
    ("tanh_preact", mf.Spec("preact", "tanh", 20, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5), 1024, 100, 40),
    ("relu_preact", mf.Spec("preact", "relu", 20, sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5), 1024, 100, 40),
    ("tanh_basic", mf.Spec("basic", "tanh", 20, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5), 1024, 100, 40),
    ("relu_basic", mf.Spec("basic", "relu", 20, sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5), 1024, 100, 40),
    ("tanh_frn_sqrt_depth", mf.Spec("frn", "tanh", 20, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5,
                                    branch_scale="1/sqrt(L)"), 1024, 100, 20),
    ("relu_frn_sqrt_depth", mf.Spec("frn", "relu", 20, sw2=2.0, sv2=2.0, sb2=0.5, sa2=0.5,
                                    branch_scale="1/sqrt(L)"), 1024, 100, 20),
    ("relu_basic_inverse_depth", mf.Spec("basic", "relu", 20, sw2=2.0, sv2=2.0, sb2=0.5, sa2=0.5,
                                         branch_scale="1/L"), 1024, 100, 40),
    ("tanh_bottleneck", mf.Spec("bottleneck", "tanh", 20, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5, bottleneck=0.5),
     1024, 100, 80),
    ("relu_bottleneck", mf.Spec("bottleneck", "relu", 20, sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5, bottleneck=0.5),
     1024, 100, 80),
    ("tanh_frn_decay", mf.Spec("frn", "tanh", 20, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5, decay_w=0.5, decay_v=0.5,
                               decay_b=1.0, decay_a=1.0), 1024, 100, 20),
    ("relu_basic_decay", mf.Spec("basic", "relu", 20, sw2=2.0, sv2=2.0, sb2=0.5, sa2=0.5, decay_w=0.3, decay_v=1.0,
                                 decay_b=0.5, decay_a=2.0), 1024, 100, 40),
    ("tanh_frn_norm", mf.Spec("frn", "tanh", 20, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5, norm="layer"), 1024, 100, 20),
    ("relu_basic_norm", mf.Spec("basic", "relu", 20, sw2=2.0, sv2=2.0, sb2=0.5, sa2=0.5, norm="layer"),
     1024, 100, 40),
    ("relu_rrn_norm", mf.Spec("rrn", "relu", 20, sw2=1.0, sb2=0.5, norm="layer"), 1024, 100, 20),
    ("tanh_frn_survival", mf.Spec("frn", "tanh", 20, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5, survival=0.6),
     1024, 100, 20),
    # (a moderate growth per kept layer: with B = 3 the mean over masks is carried by the rare networks that
    # keep most layers, and 100 samples underestimate it)
    ("relu_basic_survival", mf.Spec("basic", "relu", 20, sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5, survival=0.5),
     1024, 100, 40),
]


NAMED = {c[0]: c for c in CASES}


@functools.lru_cache(maxsize=None)
def _case(name: str, **changes) -> Trajectory:
    """Per-network results of a named case (fast sampler, float32, key 7), shared by several tests: the
    tests below reuse these compiled programs (hyperparameters such as gamma0 are traced, not static)."""
    _, spec, width, samples, _ = NAMED[name]
    return networks(spec.replace(**changes), width, samples, jax.random.key(7))


def _check_against_theory(th: Trajectory, mean: Trajectory, se: Trajectory, width: int, c: float, label: str):
    for field in FIELDS:
        t, m, s = (np.asarray(getattr(x, field), float) for x in (th, mean, se))
        np.testing.assert_array_equal(np.isnan(m), np.isnan(t), err_msg=f"{label}: NaN pattern of {field}")
        scale = np.sqrt(th.p) if field == "mu" else np.abs(t)
        if field.startswith("log_"):  # absolute error of a log is the relative error of its value
            tol = 4 * s + c / width + 1e-5
        else:
            tol = 4 * s + c / width * np.abs(t) + 1e-5 * scale
        ok = np.isnan(t) | (np.abs(m - t) <= tol)
        assert ok.all(), (f"{label}: {field} at l = {np.flatnonzero(~ok).tolist()}: sim {m[~ok]} +- {s[~ok]}, "
                          f"theory {t[~ok]}")
    assert abs(mean.log_R - th.log_R) <= 4 * se.log_R + c / width, label


# By default the paper's networks and one case per block and per feature (norm, decay, depth scaling,
# survival, bottleneck); the other combinations run with -m slow.
SLOW_CASES = {"tanh_preact", "tanh_basic", "relu_basic_inverse_depth", "tanh_bottleneck", "relu_basic_decay",
              "relu_basic_norm", "relu_rrn_norm", "relu_basic_survival", "tanh_frn_sqrt_depth"}


@pytest.mark.parametrize("name,spec,width,samples,c",
                         [pytest.param(*c, id=c[0], marks=[pytest.mark.slow] if c[0] in SLOW_CASES else [])
                          for c in CASES])
def test_simulation_matches_theory(name, spec, width, samples, c):
    mean, se = summarize(_case(name))
    _check_against_theory(theory.trajectory(spec), mean, se, width, c, name)
    # gradient bookkeeping: chi^(L) = 1 exactly (a +-1 vector), chi_a = chi, chi_w = chi_b * p^(l-1) per net
    per = _case(name)
    assert np.all(per.chi[:, -1] == 1.0) and se.chi[-1] == 0.0
    if spec.arch != "preact" and spec.norm is None:  # W meets x^(l-1) itself (preact: phi(x^(l-1)); norm: LN)
        np.testing.assert_allclose(per.chi_w[:, 1:], per.chi_b[:, 1:] * per.p[:, :-1], rtol=1e-12)
    if spec.arch == "frn":
        kappa2 = float(spec.branch_scale) ** 2  # dE/da = kappa xi g, xi the stochastic-depth draw
        kept = (per.chi_a[:, 1:] != 0) if float(spec.survival) < 1 else 1.0
        np.testing.assert_allclose(per.chi_a[:, 1:], kappa2 * kept * per.chi[:, 1:],
                                   rtol=1e-6 if kappa2 != 1 else 1e-12)


TINY = mf.Spec("frn", "tanh", 4, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5)


@functools.lru_cache(maxsize=None)
def _tiny(sampler: str) -> Trajectory:
    """3000 networks of width 6 (shared by the autodiff check and the tiny-width two-sample test)."""
    return networks(TINY, 6, 3000, jax.random.key(1 if sampler == "dense" else 2), sampler)


def test_chi_w_is_the_per_entry_mean_square_of_the_weight_gradient():
    """The rank-one shortcut equals the mean over the N x N entries of the real gradient dE/dW^(l).

    Autodiff through explicitly drawn weights (network 0 of the dense sampler, rebuilt from its keys)
    gives dE/dW; chi_w must be mean_ij (dE/dW_ij)^2, not N times it (the chi_w of docs/theory.md =
    sv2 chi V'(q) p^(l-1) is O(1)). Same for chi_v and chi_b.
    """
    from meanfield.simulate import _split_key, _start

    spec, n, dt = TINY, 6, jnp.float32
    per = _tiny("dense")
    k_start, layer_keys = _split_key(jax.random.split(jax.random.key(1), 3000)[0], spec.depth, "dense",
                                    spec.arch)
    hp = jax.tree.map(lambda v: jnp.asarray(v, dt), spec.hyper())
    x0, g_top = _start(k_start, hp, n, dt)
    x0 = x0[0]
    params = []
    for k_w, k_v, k_ba in layer_keys:
        ba = jax.random.normal(k_ba, (2, n), dt)
        params.append(dict(W=jnp.sqrt(hp.sw2 / n) * jax.random.normal(k_w, (n, n), dt),
                           V=jnp.sqrt(hp.sv2 / n) * jax.random.normal(k_v, (n, n), dt),
                           b=jnp.sqrt(hp.sb2) * ba[0], a=jnp.sqrt(hp.sa2) * ba[1]))

    def energy(params):
        x = x0
        for layer in params:
            x = layer["V"] @ jnp.tanh(layer["W"] @ x + layer["b"]) + x + layer["a"]
        return jnp.dot(g_top, x)  # dE/dx^(L) = g_top

    grads = jax.jit(jax.grad(energy))(params)
    chi_w = [float(jnp.mean(gr["W"] ** 2)) for gr in grads]
    chi_v = [float(jnp.mean(gr["V"] ** 2)) for gr in grads]
    chi_b = [float(jnp.mean(gr["b"] ** 2)) for gr in grads]
    np.testing.assert_allclose(per.chi_w[0, 1:], chi_w, rtol=1e-4)
    np.testing.assert_allclose(per.chi_v[0, 1:], chi_v, rtol=1e-4)
    np.testing.assert_allclose(per.chi_b[0, 1:], chi_b, rtol=1e-4)


# ----------------------------------------------------------------------- dense and fast: one distribution
def _two_sample(a: Trajectory, b: Trajectory, fields, z_max=4.0, ks_min=None):
    """Per layer: |z| of the difference of means <= z_max; KS two-sample p-value >= ks_min."""
    for field in fields:
        x_all, y_all = np.asarray(getattr(a, field)), np.asarray(getattr(b, field))
        for l in range(x_all.shape[-1]):
            x, y = x_all[:, l], y_all[:, l]
            if np.isnan(x).all() or (np.ptp(x) == 0 and np.ptp(y) == 0):
                continue
            z = (x.mean() - y.mean()) / np.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
            assert abs(z) <= z_max, f"{field} at l = {l}: z = {z:.2f}"
            if ks_min is not None:
                p = stats.ks_2samp(x, y).pvalue
                assert p >= ks_min, f"{field} at l = {l}: KS p = {p:.2g}"


def test_samplers_agree_in_distribution_at_n256():
    """200 networks per sampler at N = 256: means of p, gamma, chi, chi_w agree per layer at |z| <= 4."""
    spec = mf.Spec("frn", "tanh", 3, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5)
    dense = networks(spec, 256, 200, jax.random.key(1), "dense")
    fast = networks(spec, 256, 200, jax.random.key(2), "fast")
    _two_sample(dense, fast, ("p", "gamma", "e", "chi", "chi_w", "chi_v"))


@pytest.mark.slow
def test_samplers_agree_in_distribution_for_a_scaled_two_layer_branch():
    """The basic block with branch scale 0.7 at N = 8: 1500 networks per sampler, |z| <= 4 and KS p >= 1e-4
    per layer and field (three dense primitives per layer, each conditioned on its own forward columns)."""
    spec = mf.Spec("basic", "tanh", 3, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5, branch_scale=0.7)
    dense = networks(spec, 8, 1500, jax.random.key(1), "dense")
    fast = networks(spec, 8, 1500, jax.random.key(2), "fast")
    _two_sample(dense, fast, ("p", "gamma", "e", "chi", "chi_b", "chi_w", "chi_v"), ks_min=1e-4)


@pytest.mark.slow  # the samplers' equality in distribution runs by default at n = 256 (frn)
@pytest.mark.parametrize("norm", [None, "layer"])
def test_samplers_agree_in_distribution_for_a_bottleneck_with_decay(norm):
    """A bottleneck of inner width 3 at N = 8 (W: 8 -> 3, W2: 3 -> 3, V: 3 -> 8; r = 0.4, round(3.2) = 3)
    with decaying variances, without and with pre-LayerNorm: 1000 networks per sampler, |z| <= 4 and KS
    p >= 1e-4 per layer and field (each rectangular matrix conditioned on its own forward columns, of its
    own input width; the normalization's Jacobian applied exactly by both)."""
    spec = mf.Spec("bottleneck", "tanh", 3, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5, bottleneck=0.4, decay_w=1.0,
                   decay_b=0.5, norm=norm)
    assert spec.block.shapes(8)["w"] == (8, 3)
    dense = networks(spec, 8, 1000, jax.random.key(1), "dense")
    fast = networks(spec, 8, 1000, jax.random.key(2), "fast")
    _two_sample(dense, fast, ("p", "gamma", "e", "chi", "chi_b", "chi_w", "chi_v"), ks_min=1e-4)


def test_samplers_agree_in_distribution_at_tiny_width():
    """At N = 6 the backward pass lives mostly in span(x, x'): the conditioning of W^T g (and V^T g) on the
    forward products is what makes the fast sampler exact. 3000 networks each; |z| <= 4 and KS p >= 1e-4
    per layer and field. (Drawing W^T g and V^T g without the conditioning, as fresh Gaussians, fails this
    test: chi differs at z ~ 6.3, KS p ~ 7e-11; drawing the fresh part without projecting out span(x, x')
    fails at z ~ 14.)
    """
    _two_sample(_tiny("dense"), _tiny("fast"), ("p", "gamma", "e", "chi", "chi_b", "chi_w", "chi_v"), ks_min=1e-4)


# --------------------------------------------------------------------------------- exactness, numerics
def test_same_key_same_numbers_and_checkpointing_is_exact():
    _, spec, width, samples, _ = NAMED["tanh_frn"]
    full = _case("tanh_frn")
    again = networks(spec, width, samples, jax.random.key(7))
    assert spec.depth % 3 != 0  # checkpoints every 3 layers and a remainder segment of depth % 3 layers
    # ... and a memory budget that also splits the networks into chunks (lax.map with a remainder chunk)
    ckpt = networks(spec, width, samples, jax.random.key(7), segment=3, memory_bytes=2 * 10**6)
    assert 1 < plan("fast", "frn", width, spec.depth, 4, samples, 2 * 10**6, 3)[1] < samples
    assert plan("fast", "frn", width, spec.depth, 4, samples, 5 * 10**5)[0] < spec.depth  # chosen by budget
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(full, field), getattr(again, field))
        # the recomputed segments redraw the same numbers; only XLA's fusion choices may differ in rounding
        np.testing.assert_allclose(getattr(ckpt, field), getattr(full, field), rtol=2e-5, atol=1e-6, err_msg=field)


def test_grid_uses_common_random_numbers_and_does_not_recompile():
    _, spec, width, samples, _ = NAMED["relu_frn"]
    _case("relu_frn")
    before = _networks._cache_size()
    other = networks(spec.replace(sw2=0.7), width, samples, jax.random.key(7))
    assert _networks._cache_size() == before  # a new sw2 value reuses the compiled program
    grid = networks(spec.replace(sw2=np.array([1.0, 0.7])), width, samples, jax.random.key(7))
    assert grid.p.shape == (2, samples, spec.depth + 1) and grid.log_R.shape == (2, samples)
    for field in ("p", "gamma", "chi", "chi_w"):
        np.testing.assert_allclose(getattr(grid, field)[0], getattr(_case("relu_frn"), field), rtol=1e-5)
        np.testing.assert_allclose(getattr(grid, field)[1], getattr(other, field), rtol=1e-5)


@functools.lru_cache(maxsize=None)
def _relu_frn64(gamma0: float) -> Trajectory:
    _, spec, width, samples, _ = NAMED["relu_frn"]
    return networks(spec.replace(gamma0=gamma0), width, samples, jax.random.key(7), dtype="float64")


@pytest.mark.parametrize("dtype,one_minus_e0", [("float64", 1e-10), ("float32", 1e-4)])
def test_nearly_parallel_inputs_keep_their_distance(dtype, one_minus_e0):
    """e -> 1: the sum/difference basis keeps s = |x - x'|^2/N to full relative precision."""
    name, spec, width, samples, c = NAMED["relu_frn"]
    spec = spec.replace(gamma0=1.0 - one_minus_e0)
    per = _relu_frn64(1.0 - one_minus_e0) if dtype == "float64" else _case(name, gamma0=1.0 - one_minus_e0)
    mean, se = summarize(per)
    th = theory.trajectory(spec)
    assert np.all(np.isfinite(mean.s)) and np.all(np.isfinite(mean.chi))
    np.testing.assert_allclose(mean.s[0], th.s[0], rtol=1e-3)
    np.testing.assert_array_less(np.abs(mean.s - th.s), 4 * se.s + c / width * th.s)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_identical_inputs(dtype):
    per = _case("relu_frn", gamma0=1.0) if dtype == "float32" else _relu_frn64(1.0)
    np.testing.assert_allclose(per.e, 1.0, rtol=1e-6)
    assert np.all(per.s == 0.0) and np.all(np.isfinite(per.chi_w[:, 1:]))


def test_compare_and_plot_helper():
    _, spec, _, _, _ = NAMED["tanh_frn"]
    mean, se = summarize(_case("tanh_frn"))
    th = theory.trajectory(spec)
    out = compare(th, mean, se)
    assert set(out) == set(FIELDS) | {"log_R"}
    np.testing.assert_allclose(out["p"]["rel_err"], (mean.p - th.p) / th.p)
    np.testing.assert_allclose(out["chi_w"]["z"][1:], ((mean.chi_w - th.chi_w) / se.chi_w)[1:])
    assert np.isnan(out["q"]["z"][0]) and out["chi"]["z"][-1] == 0.0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    line, bars = plot_comparison(ax, np.arange(spec.depth + 1), th.p, mean.p, se.p, "p")
    assert line.get_label() == "p theory" and len(ax.lines) >= 2
    plt.close(fig)


def test_summarize_log_twins():
    per = _case("relu_frn")
    mean, se = summarize(per)
    np.testing.assert_allclose(mean.log_p, np.log(np.mean(per.p, 0)))
    np.testing.assert_allclose(se.log_chi, se.chi / mean.chi)
    np.testing.assert_allclose(mean.log_R, np.log(np.mean(per.chi[:, 0] / per.chi[:, -1])))


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,field", [
    (dict(width=2), "width"), (dict(width=0), "width"), (dict(width=8.0), "width"), (dict(width=True), "width"),
    (dict(samples=1), "samples"), (dict(sampler="exact"), "sampler"), (dict(dtype="float16"), "dtype"),
    (dict(dtype="int32"), "dtype"), (dict(key=3), "key"), (dict(spec="frn"), "spec"),
])
def test_bad_input_raises_value_error_naming_the_field(kwargs, field):
    args = dict(spec=mf.Spec("frn", "tanh", 2, sw2=1.0), width=16, samples=4, key=jax.random.key(0))
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        simulate(**args)


# ---------------------------------------------------------------------------------------------- CLI
def _cli():
    return pytest.importorskip("meanfield.cli")


def test_cli_prints_theory_keys_with_stderr_twins(capsys):
    cli = _cli()
    # the relu_frn case's shapes: the compiled program is shared with the tests above
    code = cli.main(["simulate", "--arch", "frn", "--act", "relu", "--sw2", "1", "--sb2", "0.5", "--sa2", "0.5",
                     "--depth", "20", "--width", "1024", "--samples", "100", "--seed", "1", "--format", "json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    keys = ["l", "p", "q", "gamma", "lambda", "e", "s", "mu", "chi", "log_chi", "chi_a", "chi_b", "chi_w",
            "chi_v", "log_p", "log_s", "log_R"]
    assert set(payload) == set(keys) | {k + "_stderr" for k in keys if k != "l"}
    assert payload["l"] == list(range(21)) and payload["q"][0] is None and payload["chi"][-1] == 1.0
    assert payload["chi_stderr"][-1] == 0.0


@pytest.mark.parametrize("flags,field", [(["--width", "1", "--samples", "3"], "width"),
                                         (["--width", "8", "--samples", "1"], "samples"),
                                         (["--width", "8", "--samples", "3", "--sw2", "-1"], "sw2"),
                                         (["--width", "8", "--samples", "3", "--sw2", "-1,1"],
                                          "argument --sw2: invalid float value: '-1,1'"),
                                         (["--width", "8", "--samples", "3", "--sa2", "1", "--arch", "rrn"],
                                          "--sa2 applies to --arch frn, preact, basic, bottleneck only"),
                                         (["--width", "100000", "--samples", "4", "--sampler", "dense"],
                                          "--width, --depth and --samples too large: the run needs an "
                                          "estimated 40 GB, more than the limit of 10 GB (--max-memory)"),
                                         ])
def test_cli_bad_input_exits_2_with_one_line(capsys, flags, field):
    cli = _cli()
    # a repeated flag (--arch) takes its last value
    argv = ["simulate", "--arch", "frn", "--act", "tanh", "--sw2", "1", "--depth", "3", "--max-memory", "10"] + flags
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err


def test_progress_bar_does_not_change_the_numbers(capsys):
    spec = mf.Spec("frn", "tanh", 6, sw2=np.array([0.5, 1.5]), sb2=0.1)
    key = jax.random.key(3)
    # a budget of one network per chunk: 6 compiled calls with the progress bar, one lax.map without
    kw = dict(memory_bytes=1, dtype="float64")
    plain = networks(spec, 16, 3, key, **kw)
    shown = networks(spec, 16, 3, key, progress=True, **kw)
    for field in FIELDS:
        np.testing.assert_allclose(getattr(shown, field), getattr(plain, field), rtol=1e-12, err_msg=field)
    assert "simulate" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_finite_width_bias_shrinks_like_one_over_n():
    """Mean-tracking ReLU RRN (a large, resolvable finite-width bias): N * (chi_sim^(0) / chi^(0) - 1) is
    one constant C > 0 over N = 128 .. 8192 (chi-square of the four values around their weighted mean
    below the 0.999 quantile, 16.3 for 3 degrees of freedom), while sqrt(N) * bias is not constant (the
    same statistic above it). For tanh FRN the bound of the fast tests holds at every width."""
    spec = mf.Spec("rrn", "relu", 10, sw2=0.5, sb2=0.2)
    th = theory.trajectory(spec)
    widths = np.array([128, 512, 2048, 8192])
    bias, err = [], []
    for n in widths:
        mean, se = simulate(spec, int(n), int(max(200, 800_000 // n)), jax.random.key(int(n)), dtype="float64")
        bias.append(mean.chi[0] / th.chi[0] - 1.0)
        err.append(se.chi[0] / th.chi[0])
    bias, err = np.array(bias), np.array(err)

    def chi2_of_constant(power):
        v, e = bias * widths**power, err * widths**power
        c = np.sum(v / e**2) / np.sum(1 / e**2)
        return np.sum(((v - c) / e) ** 2), c, 1 / np.sqrt(np.sum(1 / e**2))

    chi2, c, c_err = chi2_of_constant(1.0)
    assert chi2 < 16.3 and c > 5 * c_err, (chi2, c, c_err, bias, err)
    assert chi2_of_constant(0.5)[0] > 16.3, (bias, err)

    tanh = NAMED["tanh_frn"][1]
    for n in widths:
        mean, se = simulate(tanh, int(n), 100, jax.random.key(1), dtype="float64")
        _check_against_theory(theory.trajectory(tanh), mean, se, int(n), tanh.depth, f"tanh_frn N={n}")


@pytest.mark.slow
def test_mean_tracking_relu_rrn_leaves_the_theory_at_the_measured_depths():
    """README, limits of the infinite-width theory (measured with experiments/finite_width_limits.py at
    seed 0; here another seed): at N = 512 the typical ReLU rrn (median over 32 networks of sim / theory)
    has s^(l) within 10% of the theory up to l = 10 and off by more than 1.5x at l = 20, and chi^(0)
    within 10% at L = 5 and off by more than 2x at L = 20, while the centred ReLU frn stays within its
    O(L/N) allowance at every layer of the same depth."""
    def median_ratio(spec, field):
        per = networks(spec, 512, 32, jax.random.key(11), dtype="float64")
        return np.median(np.asarray(getattr(per, field)) / np.asarray(getattr(theory.trajectory(spec), field)), 0)

    rrn = mf.Spec("rrn", "relu", 20, sw2=1.0, sb2=0.5, p0=1.0, gamma0=0.5)
    s = median_ratio(rrn, "s")
    assert np.all(np.abs(s[:11] - 1) < 0.1) and s[20] > 1.5, s
    assert abs(median_ratio(rrn.replace(depth=5), "chi")[0] - 1) < 0.1
    assert median_ratio(rrn, "chi")[0] > 2.0
    frn = mf.Spec("frn", "relu", 20, sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5, p0=1.0, gamma0=0.5)
    for field in ("s", "chi"):
        assert np.all(np.abs(median_ratio(frn, field) - 1) < 2 * 20 / 512 + 0.1), field
