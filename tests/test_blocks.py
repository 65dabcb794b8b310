"""Block definitions against the equations of docs/theory.md, section 3, written out by hand.

Every engine interprets the definitions of meanfield.blocks, and meanfield.reference interprets them on
its own with scipy quadrature. A definition that drifts (a primitive dropped, reordered or given the wrong
variance) moves all engines together, so the reference is checked here against the recursions of the
paper for the full and reduced residual networks and the feedforward network, written out without the
block layer, with the same transforms. Both sides are plain-domain float64 with the same adaptive
quadrature, so they agree to rounding (asserted 1e-13 relative; measured 4e-16).
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meanfield as mf
from meanfield import blocks
from meanfield import reference as ref
from meanfield.cli import main
from meanfield.simulate import networks
from meanfield.theory import trajectory

pytestmark = pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")


def paper_recursion(arch, act, depth, sw2, sv2, sb2, sa2, alpha, p0, gamma0):
    """docs/theory.md, section 3 for frn / rrn / ff with the reference's transforms, no block layer."""
    if arch != "frn":
        sv2, sa2 = 1.0, 0.0
    nan = float("nan")
    out = {k: np.full(depth + 1, nan) for k in ("p", "q", "gamma", "lambda", "s", "mu", "chi_a", "chi_b",
                                                "chi_w", "chi_v")}
    p, g, mu, s = p0, gamma0, 0.0, 2.0 * (p0 - gamma0)
    out["p"][0], out["gamma"][0], out["mu"][0], out["s"][0] = p, g, mu, s
    vps, vs = [nan], [nan]
    for l in range(1, depth + 1):
        q, lam = sw2 * p + sb2, sw2 * g + sb2
        v, w = ref.V_(act, q, alpha), ref.W_(act, q, lam, alpha)
        vp, m = ref.Vp_(act, q, alpha), ref.M_(act, q, alpha)
        dsq = ref.half_sq_diff_(act, q, sw2 * s / 2 / q, alpha)
        if arch == "ff":
            p, g, mu, s = v, w, m, 2 * dsq
        elif arch == "frn":
            p, g, mu, s = sv2 * v + sa2 + p, sv2 * w + sa2 + g, 0.0, s + 2 * sv2 * dsq
        else:
            p, g, mu, s = v + 2 * m * mu + p, w + 2 * m * mu + g, mu + m, s + 2 * dsq
        out["q"][l], out["lambda"][l] = q, lam
        out["p"][l], out["gamma"][l], out["mu"][l], out["s"][l] = p, g, mu, s
        vps.append(vp)
        vs.append(v)
    chi = np.ones(depth + 1)
    for l in range(depth, 0, -1):
        chi[l - 1] = chi[l] * (sw2 * vps[l] if arch == "ff" else 1.0 + sv2 * sw2 * vps[l])
    for l in range(1, depth + 1):
        out["chi_b"][l] = sv2 * chi[l] * vps[l]
        out["chi_w"][l] = out["chi_b"][l] * out["p"][l - 1]
        if arch == "frn":
            out["chi_a"][l], out["chi_v"][l] = chi[l], chi[l] * vs[l]
    out["chi"], out["log_R"] = chi, float(np.sum(np.log(chi[:-1] / chi[1:])))
    return out


HYPER = dict(sw2=1.3, sv2=0.7, sb2=0.2, sa2=0.1, alpha=1.0, p0=1.2, gamma0=0.4)


def _max_rel_diff(got, want):
    """Largest relative difference over every field; mu on the scale sqrt(p) (odd phi: exactly 0 in the
    engine, ~1e-17 from quadrature)."""
    worst = 0.0
    for name, w in want.items():
        g = np.asarray(got[name], float)
        w = np.asarray(w, float)
        if not np.array_equal(np.isnan(g), np.isnan(w)):
            return math.inf
        if name == "mu":
            worst = max(worst, float(np.max(np.abs(g - w) / np.sqrt(np.asarray(want["p"], float)))))
            continue
        ok = ~np.isnan(w) & (w != 0)
        worst = max(worst, float(np.max(np.abs(g[ok] / w[ok] - 1), initial=0.0)))
        if np.any(g[w == 0] != 0):
            worst = max(worst, float(np.max(np.abs(g[w == 0]))))
    return worst


@pytest.mark.parametrize("arch, act, depth", [  # every architecture with tanh, ReLU on frn; the rest with -m slow
    pytest.param(arch, act, depth, id=f"{act}-{depth}-{arch}",
                 marks=[pytest.mark.slow] if act == "erf" or (act == "relu" and arch != "frn") else [])
    for act, depth in [("relu", 6), ("erf", 6), ("tanh", 3)] for arch in ("frn", "rrn", "ff")])
def test_block_definitions_match_the_paper_recursions(arch, act, depth):
    args = (arch, act, depth, *(HYPER[k] for k in ("sw2", "sv2", "sb2", "sa2", "alpha", "p0", "gamma0")))
    assert _max_rel_diff(ref.trajectory(*args), paper_recursion(*args)) < 1e-13


def test_a_drifted_definition_is_caught():
    # the frn without its output bias a: the check above must see the difference
    body = (blocks.Residual(blocks.BLOCKS["frn"].body[0].branch[:-1]),)
    drifted = blocks.Block("drifted", body)
    args = ("relu", 4, *(HYPER[k] for k in ("sw2", "sv2", "sb2", "sa2", "alpha", "p0", "gamma0")))
    assert _max_rel_diff(ref.trajectory(drifted, *args), paper_recursion("frn", *args)) > 1e-3


def test_registry_fields_and_memory_rows():
    frn, rrn, ff = (blocks.get_block(a) for a in ("frn", "rrn", "ff"))
    assert frn.fields == {"sw2", "sv2", "sb2", "sa2", "branch_scale", "survival"}
    assert rrn.fields == {"sw2", "sb2", "branch_scale", "survival"} and ff.fields == {"sw2", "sb2"}
    assert (frn.tape_rows("fast"), rrn.tape_rows("fast"), frn.tape_rows("dense")) == (9, 5, 1)
    # the reduced networks take their keys like the frn, so a seed draws the same W and b
    assert rrn.dense_key_slots() == ff.dense_key_slots() == frn.dense_key_slots() == (("w", "v"), ("b", "a"))
    with pytest.raises(ValueError, match="arch must be one of frn, rrn, ff, preact, basic"):
        blocks.get_block("resnet")
    with pytest.raises(ValueError, match="parameter names must be unique"):
        blocks.Block("twice", (blocks.Dense("w", "sw2"), blocks.Act(), blocks.Dense("w", "sw2")))


def test_activation_of_a_signal_with_a_mean_is_refused():
    # relu x + phi(x) without a dense layer in front: no transform for a non-centred input
    block = blocks.Block("bad", (blocks.Residual((blocks.Act(),)), blocks.Act()))
    h = mf.Spec("rrn", "relu", 1).hyper()
    hj = type(h)(*(jnp.atleast_1d(jnp.asarray(v)) for v in h))
    state = (jnp.zeros(1), jnp.full(1, 0.5), jnp.zeros(1))
    with pytest.raises(NotImplementedError, match="non-zero mean"):
        blocks.theory_step(block, mf.get_activation("relu"), hj, state)


@pytest.mark.slow  # the depth-6 referee cases above and test_new_blocks_match_block_reference run by default
@pytest.mark.parametrize("arch", ["frn", "rrn", "ff"])
def test_engine_matches_block_reference_at_depth_30(arch):
    # the log-domain engine against the plain-domain interpretation of the same definition; the
    # reference's quadrature (epsrel 1e-13 per transform) compounds over 30 layers: measured 2.5e-11
    kw = dict(HYPER)
    args = (arch, "relu", 30, *(kw[k] for k in ("sw2", "sv2", "sb2", "sa2", "alpha", "p0", "gamma0")))
    if arch != "frn":
        kw.pop("sv2"), kw.pop("sa2")
    kw.pop("alpha")
    t = trajectory(mf.Spec(arch, "relu", 30, **kw))
    want = ref.trajectory(*args)
    got = {("lambda" if f == "lam" else f): getattr(t, f) for f in mf.FIELDS if ("lambda" if f == "lam" else f) in want}
    got["log_R"] = t.log_R
    assert _max_rel_diff(got, want) < 1e-9


# ------------------------------------------------------------------------- pre-activation, basic, kappa
NEW = ("preact", "basic")


def _spec(arch, act, depth, **kw):
    return mf.Spec(arch, act, depth, **{k: v for k, v in kw.items() if k != "alpha"})


@pytest.mark.parametrize("arch, kappa, act", [  # each block with one activation by default, the other with -m slow
    pytest.param(arch, kappa, act, id=f"{act}-{arch}-{kappa}",
                 marks=[pytest.mark.slow] if (act == "tanh") == (arch in ("basic", "rrn")) else [])
    for act in ("tanh", "relu")
    for arch, kappa in [("preact", 1.0), ("basic", 1.0), ("frn", 0.3), ("preact", 0.6), ("rrn", 0.5)]])
def test_new_blocks_match_block_reference(arch, kappa, act):
    kw = {k: HYPER[k] for k in ("sw2", "sb2", "p0", "gamma0")}
    if arch != "rrn":
        kw.update(sv2=HYPER["sv2"], sa2=HYPER["sa2"])
    t = trajectory(_spec(arch, act, 6, branch_scale=kappa, **kw))
    want = ref.trajectory(arch, act, 6, kw["sw2"], kw.get("sv2", 1.0), kw["sb2"], kw.get("sa2", 0.0), 1.0,
                          kw["p0"], kw["gamma0"], branch_scale=kappa)
    got = {("lambda" if f == "lam" else f): getattr(t, f) for f in mf.FIELDS}
    got["log_R"] = t.log_R
    assert _max_rel_diff(got, {k: v for k, v in want.items()}) < 1e-8


@pytest.mark.parametrize("arch, act", [
    pytest.param(arch, act, id=f"{act}-{arch}",
                 marks=[] if (arch, act) in {("frn", "tanh"), ("basic", "relu")} else [pytest.mark.slow])
    for act in ("tanh", "relu") for arch in ("frn", "rrn", "preact", "basic")])
def test_branch_scale_zero_is_the_identity(arch, act):
    kw = dict(sw2=1.4, sb2=0.3, p0=1.3, gamma0=0.5)
    if arch != "rrn":
        kw.update(sv2=0.9, sa2=0.2)
    spec = mf.Spec(arch, act, 12, branch_scale=0.0, **kw)
    t = trajectory(spec)
    for f in ("p", "gamma", "e", "s", "mu", "chi", "log_p"):
        np.testing.assert_array_equal(getattr(t, f), np.full(13, getattr(t, f)[0]), err_msg=f)
    assert t.log_R == 0.0 and np.all(t.chi_b[1:] == 0)
    # the finite network too: x + 0 * branch is x, bit for bit
    per = networks(spec, 16, 2, jax.random.key(0))
    np.testing.assert_array_equal(per.p, np.repeat(per.p[:, :1], 13, axis=1))
    np.testing.assert_array_equal(per.chi, 1.0)


@pytest.mark.parametrize("arch", blocks.ARCHS)
def test_centred_and_residual_properties_match_the_networks(arch):
    """``centred``: the ReLU stream's mean stays 0 (no mean tracking) exactly for those blocks;
    ``residual``: exactly the blocks that take a branch scale. (The trajectories of the test above.)"""
    block = blocks.get_block(arch)
    kw = dict(sw2=1.4, sb2=0.3, p0=1.3, gamma0=0.5)
    if "sv2" in block.fields:
        kw.update(sv2=0.9, sa2=0.2)
    t = trajectory(mf.Spec(arch, "relu", 12, **kw))
    assert bool(np.all(t.mu == 0)) == block.centred
    assert np.all(np.abs(t.mu[1:]) > 0.1) != block.centred
    assert block.residual == ("branch_scale" in block.fields)
    # no residual sum at the top level
    assert [a for a in blocks.ARCHS if not blocks.get_block(a).residual] == ["ff", "densenet", "highway"]


def test_branch_scale_is_the_frn_with_scaled_output_variances():
    # x + kappa (V phi + a) has the forward map and chi of the frn with sv2, sa2 -> kappa^2 sv2, kappa^2 sa2;
    # the gradients of V and a carry the factor kappa^2 that the rescaled frn's do not
    kappa = 0.4
    kw = dict(sw2=1.5, sb2=0.2, p0=1.1, gamma0=0.3)
    for act in ("tanh", "relu"):
        scaled = trajectory(mf.Spec("frn", act, 25, sv2=1.2, sa2=0.3, branch_scale=kappa, **kw))
        plain = trajectory(mf.Spec("frn", act, 25, sv2=1.2 * kappa**2, sa2=0.3 * kappa**2, **kw))
        for f in ("p", "q", "gamma", "lam", "e", "s", "chi", "chi_b", "chi_w", "log_R"):
            np.testing.assert_allclose(getattr(scaled, f), getattr(plain, f), rtol=1e-13, err_msg=f)
        for f in ("chi_a", "chi_v"):
            np.testing.assert_allclose(getattr(scaled, f), kappa**2 * getattr(plain, f), rtol=1e-13, err_msg=f)


@pytest.mark.parametrize("arch", NEW)
def test_relu_preact_and_basic_closed_forms(arch):
    # ReLU: V(q) = q / 2 and V'(q) = 1/2 exactly, so p^(l) = B^l (p0 + K/(B-1)) - K/(B-1) and chi's
    # factor is B: preact B = 1 + sv2 sw2 / 4, K = sv2 sb2 / 2 + sa2; basic B = 1 + sv2 sw2^2 / 4,
    # K = sv2 (sw2 sb2 / 2 + sb2) / 2 + sa2
    sw2, sv2, sb2, sa2, p0, L = 1.3, 0.8, 0.4, 0.2, 1.5, 40
    t = trajectory(mf.Spec(arch, "relu", L, sw2=sw2, sv2=sv2, sb2=sb2, sa2=sa2, p0=p0, gamma0=0.5))
    if arch == "preact":
        B, K = 1 + sv2 * sw2 / 4, sv2 * sb2 / 2 + sa2
    else:
        B, K = 1 + sv2 * sw2**2 / 4, sv2 * (sw2 * sb2 / 2 + sb2) / 2 + sa2
    l = np.arange(L + 1)
    np.testing.assert_allclose(t.p, B**l * (p0 + K / (B - 1)) - K / (B - 1), rtol=1e-12)
    np.testing.assert_allclose(t.chi[:-1] / t.chi[1:], B, rtol=1e-13)
    assert t.log_R == pytest.approx(L * math.log(B), rel=1e-13)


def test_branch_scale_strings_and_validation():
    assert float(mf.Spec("frn", "tanh", 16, branch_scale="1/sqrt(L)").branch_scale) == 0.25
    assert float(mf.Spec("preact", "relu", 16, branch_scale="1 / L").branch_scale) == 1 / 16
    with pytest.raises(ValueError, match=r"branch_scale must be a number >= 0 or one of 1/sqrt\(L\), 1/L"):
        mf.Spec("frn", "tanh", 16, branch_scale="1/L^2")
    with pytest.raises(ValueError, match="branch_scale must be >= 0"):
        mf.Spec("frn", "tanh", 16, branch_scale=-0.1)
    with pytest.raises(ValueError, match="branch_scale applies to arch frn, rrn, preact, basic, bottleneck only"):
        mf.Spec("ff", "tanh", 16, branch_scale=0.5)


def test_sweep_over_branch_scale_never_recompiles():
    from meanfield.simulate import _networks
    from meanfield.theory import _batched

    trajectory(mf.Spec("basic", "tanh", 8, sw2=1.2, branch_scale=np.array([0.1, 0.5])))
    networks(mf.Spec("basic", "tanh", 8, sw2=1.2, branch_scale=0.5), 8, 2, jax.random.key(0))
    before = _batched._cache_size(), _networks._cache_size()
    trajectory(mf.Spec("basic", "tanh", 8, sw2=1.2, branch_scale=np.array([0.3, 0.9])))
    networks(mf.Spec("basic", "tanh", 8, sw2=1.2, branch_scale=0.7), 8, 2, jax.random.key(0))
    assert (_batched._cache_size(), _networks._cache_size()) == before


def test_model_applies_the_block_definition():
    from meanfield.train.model import NetworkSettings, apply, init_params

    act = mf.get_activation("tanh")
    var = NetworkSettings(1.2, 0.8, 0.1, 0.1, 1.0)
    p = init_params(jax.random.PRNGKey(3), var, arch="basic", width=16, depth=3)
    assert set(p["blocks"]) == {"w", "b", "w2", "b2", "v", "a"}
    x = jax.random.normal(jax.random.PRNGKey(4), (5, 784), jnp.float32)
    got = apply(p, 1.0, x, arch="basic", act=act, branch_scale=0.5)
    h = x @ p["embed_w"] + p["embed_b"]
    for l in range(3):
        k = {name: v[l] for name, v in p["blocks"].items()}
        branch = jnp.tanh(jnp.tanh(h @ k["w"] + k["b"]) @ k["w2"] + k["b2"]) @ k["v"] + k["a"]
        h = h + 0.5 * branch
    np.testing.assert_allclose(got, h @ p["out_w"] + p["out_b"], rtol=2e-5, atol=2e-5)


def test_cli_theory_and_simulate_reach_the_new_blocks(capsys):
    flags = ["--act", "relu", "--sw2", "1.3", "--sv2", "0.8", "--sb2", "0.4", "--sa2", "0.2", "--format", "json"]
    assert main(["theory", "--arch", "basic", "--depth", "5", "--branch-scale", "1/sqrt(L)"] + flags) == 0
    out = json.loads(capsys.readouterr().out)
    t = trajectory(mf.Spec("basic", "relu", 5, sw2=1.3, sv2=0.8, sb2=0.4, sa2=0.2, branch_scale=5**-0.5))
    np.testing.assert_array_equal(out["p"], t.p)
    assert main(["simulate", "--arch", "preact", "--depth", "3", "--width", "8", "--samples", "2",
                 "--no-progress"] + flags) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["p"]) == 4 and len(out["chi_w_stderr"]) == 4


@pytest.mark.parametrize("argv,message", [
    (["--arch", "ff", "--branch-scale", "0.5"],
     "--branch-scale applies to --arch frn, rrn, preact, basic, bottleneck only: the ff has no residual branch"),
    (["--arch", "rrn", "--sv2", "2"], "--sv2 applies to --arch frn, preact, basic, bottleneck only: the rrn has no V"),
    (["--arch", "frn", "--branch-scale", "1/L^2"], "branch_scale must be a number >= 0 or one of 1/sqrt(L), 1/L"),
    (["--arch", "bottleneck", "--bottleneck", "0"], "bottleneck must be a single number > 0"),
    (["--arch", "basic", "--bottleneck", "0.5"], "bottleneck applies to arch bottleneck only"),
    (["--arch", "rrn", "--decay-a", "1"], "--decay-a applies to --arch frn, preact, basic, bottleneck only"),
    (["--arch", "frn", "--decay-w", "nan"], "decay_w must be a finite number"),
])
def test_cli_refuses_what_the_block_does_not_have(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["theory", "--act", "tanh", "--sw2", "1", "--depth", "3"] + argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_relu_frn_with_inverse_sqrt_depth_branches_has_a_depth_independent_limit():
    # kappa = L^-1/2: B = 1 + sv2 sw2 / (2 L), K = (sv2 sb2 / 2 + sa2) / L, so p^(L) = B^L (p0 + K/(B-1))
    # - K/(B-1) -> e^c (p0 + k/c) - k/c and log R = L log B -> c, with c = sv2 sw2 / 2, k = sv2 sb2 / 2 + sa2;
    # the approach is O(1/L) (log R - c = -c^2 / (2 L) + ...)
    sw2, sv2, sb2, sa2, p0 = 1.4, 1.1, 0.3, 0.2, 1.0
    c, k = sv2 * sw2 / 2, sv2 * sb2 / 2 + sa2
    for L in (100, 10_000):
        t = trajectory(mf.Spec("frn", "relu", L, sw2=sw2, sv2=sv2, sb2=sb2, sa2=sa2, p0=p0, branch_scale="1/sqrt(L)"))
        log_b_l = L * math.log1p(c / L)  # L log B, with K / (B - 1) = k / c
        assert t.p[-1] == pytest.approx(math.exp(log_b_l) * (p0 + k / c) - k / c, rel=1e-12)
        assert t.log_R == pytest.approx(log_b_l, rel=1e-13)
        assert abs(t.log_R - c) <= c * c / L and abs(t.p[-1] / (math.exp(c) * (p0 + k / c) - k / c) - 1) <= 2 / L


def test_laws_are_not_predicted_for_blocks_or_scales_they_were_not_derived_for():
    from meanfield import asymptotics as asy

    laws = asy.predict("preact", "alpha_relu", sw2=1.5, sv2=1.0, alpha=0.8)
    assert laws.R_exponent is None and laws.p_exponent is None and "no asymptotic law" in laws.laws["note"]
    with pytest.raises(ValueError, match="decay"):
        asy.measured_laws(mf.Spec("frn", "tanh", 16, sw2=1.5, decay_w=0.5))
    with pytest.raises(ValueError, match="norm"):
        asy.block_limits(mf.Spec("frn", "relu", 1, sw2=1.5, norm="layer"))


# ------------------------------------------------------------------------------- bottleneck, variance decay
_BN = dict(sw2=1.3, sv2=0.8, sb2=0.2, sa2=0.1, p0=1.2, gamma0=0.4)


@pytest.mark.parametrize("act", [pytest.param("tanh", marks=pytest.mark.slow), "relu"])
def test_bottleneck_has_the_basic_blocks_mean_field_limit(act):
    """The forward map and chi of a bottleneck are the basic block's bit for bit (a dense layer's output
    variance does not depend on its width); the inner layers' per-unit gradients are 1/r of basic's
    (V^T spreads chi over r N units), chi_v and chi_a are basic's."""
    basic = trajectory(mf.Spec("basic", act, 8, **_BN))
    for r in (0.25, 3.0):
        t = trajectory(mf.Spec("bottleneck", act, 8, bottleneck=r, **_BN))
        for f in ("p", "q", "gamma", "lam", "e", "s", "mu", "log_p", "log_s"):
            np.testing.assert_array_equal(getattr(t, f), getattr(basic, f), err_msg=f)
        for f in ("chi", "log_chi", "chi_a", "chi_v", "log_R"):
            np.testing.assert_allclose(getattr(t, f), getattr(basic, f), rtol=1e-14, atol=1e-15, err_msg=f)
        for f in ("chi_b", "chi_w"):
            np.testing.assert_allclose(getattr(t, f), getattr(basic, f) / r, rtol=1e-14, err_msg=f)


def test_bottleneck_and_decay_match_block_reference():
    decay = dict(sw2=0.5, sv2=0.3, sb2=1.0, sa2=2.0)
    spec = mf.Spec("bottleneck", "tanh", 5, bottleneck=0.5, decay_w=0.5, decay_v=0.3, decay_b=1.0, decay_a=2.0,
                   branch_scale=0.7, **_BN)
    t = trajectory(spec)
    want = ref.trajectory(spec.block, "tanh", 5, _BN["sw2"], _BN["sv2"], _BN["sb2"], _BN["sa2"], 1.0, _BN["p0"],
                          _BN["gamma0"], branch_scale=0.7, decay=decay)
    got = {("lambda" if f == "lam" else f): getattr(t, f) for f in mf.FIELDS}
    got["log_R"] = t.log_R
    assert _max_rel_diff(got, want) < 1e-8


def relu_frn_with_decay(depth, sw2, sv2, sb2, sa2, p0, gamma0, bw, bv, bb, ba):
    """The ReLU frn with layer-l variances, written out with the closed forms V(q) = q / 2,
    W(q, lam) = q k(lam / q) (arc-cosine kernel) and V'(q) = 1/2: no quadrature, no block layer."""
    p, g = [p0], [gamma0]
    factors = []
    for l in range(1, depth + 1):
        w, v, b, a = sw2 * l**-bw, sv2 * l**-bv, sb2 * l**-bb, sa2 * l**-ba
        q, lam = w * p[-1] + b, w * g[-1] + b
        p.append(p[-1] + v * q / 2 + a)
        g.append(g[-1] + v * q * ref.relu_kernel(lam / q) + a)
        factors.append(1 + v * w / 2)
    chi = np.cumprod(factors[::-1])[::-1]
    return np.array(p), np.array(g), np.append(chi, 1.0)


def test_variance_decay_is_the_relu_closed_form_recursion():
    kw = dict(sw2=1.5, sv2=1.2, sb2=0.4, sa2=0.3, p0=1.1, gamma0=0.3)
    bw, bv, bb, ba = 0.5, 0.8, 1.0, 1.5
    t = trajectory(mf.Spec("frn", "relu", 30, decay_w=bw, decay_v=bv, decay_b=bb, decay_a=ba, **kw))
    p, g, chi = relu_frn_with_decay(30, *kw.values(), bw, bv, bb, ba)
    np.testing.assert_allclose(t.p, p, rtol=1e-13)
    np.testing.assert_allclose(t.gamma, g, rtol=1e-12)
    np.testing.assert_allclose(t.chi, chi, rtol=1e-13)
    # the decay is seen: the plain frn differs
    assert abs(trajectory(mf.Spec("frn", "relu", 30, **kw)).p[-1] / p[-1] - 1) > 0.1


def test_decay_zero_is_the_plain_block_bit_for_bit():
    # a grid over decay_w: its point 0 is the plain (scalar) spec's theory and sampled networks exactly
    spec = mf.Spec("frn", "relu", 6, **_BN)
    grid = spec.replace(decay_w=np.array([0.0, 0.7]), decay_b=np.array([0.0, 1.0]))
    t, t0 = trajectory(grid), trajectory(spec)
    for f in mf.FIELDS:
        np.testing.assert_array_equal(getattr(t, f)[0], getattr(t0, f), err_msg=f)
    assert not np.allclose(t.p[1], t0.p)


@pytest.mark.slow
def test_decay_zero_samples_the_plain_block_bit_for_bit():
    spec = mf.Spec("frn", "relu", 6, **_BN)
    grid = spec.replace(decay_w=np.array([0.0, 0.7]), decay_b=np.array([0.0, 1.0]))
    per, per0 = networks(grid, 16, 2, jax.random.key(3)), networks(spec, 16, 2, jax.random.key(3))
    for f in ("p", "s", "chi", "chi_w"):
        np.testing.assert_array_equal(getattr(per, f)[0], getattr(per0, f), err_msg=f)


def test_sweep_over_decay_never_recompiles():
    from meanfield.simulate import _networks
    from meanfield.theory import _batched

    spec = mf.Spec("frn", "relu", 8, sw2=1.2)
    trajectory(spec.replace(decay_w=np.array([0.1, 0.5]), decay_a=0.2))
    networks(spec.replace(decay_v=0.5), 8, 2, jax.random.key(0))
    before = _batched._cache_size(), _networks._cache_size()
    trajectory(spec.replace(decay_w=np.array([0.3, 0.9]), decay_a=1.0))
    networks(spec.replace(decay_v=0.9, decay_b=2.0), 8, 2, jax.random.key(0))
    assert (_batched._cache_size(), _networks._cache_size()) == before


def test_bottleneck_model_and_samplers_use_the_inner_width():
    from meanfield.train.model import NetworkSettings, apply, init_params

    block = mf.Spec("bottleneck", "tanh", 2, bottleneck=0.5).block
    assert block.shapes(16) == {"w": (16, 8), "b": (8,), "w2": (8, 8), "b2": (8,), "v": (8, 16), "a": (16,)}
    assert block.shapes(5)["w"] == (5, 3)  # round(2.5) half up
    assert (block.tape_rows("fast"), block.tape_rows("dense")) == (9, 1)  # 3 + 0.5 + 2 + 0.5 + 3 rows of N
    with pytest.raises(ValueError, match=r"round\(r N\) must be >= 1"):
        mf.Spec("bottleneck", "tanh", 2, bottleneck=0.1).block.shapes(4)
    var = NetworkSettings(1.2, 0.8, 0.1, 0.1, 1.0)
    p = init_params(jax.random.PRNGKey(3), var, arch=block, width=16, depth=3)
    assert p["blocks"]["w"].shape == (3, 16, 8) and p["blocks"]["v"].shape == (3, 8, 16)
    x = jax.random.normal(jax.random.PRNGKey(4), (5, 784), jnp.float32)
    got = apply(p, 1.0, x, arch=block, act=mf.get_activation("tanh"))
    h = x @ p["embed_w"] + p["embed_b"]
    for l in range(3):
        k = {name: v[l] for name, v in p["blocks"].items()}
        h = h + jnp.tanh(jnp.tanh(h @ k["w"] + k["b"]) @ k["w2"] + k["b2"]) @ k["v"] + k["a"]
    np.testing.assert_allclose(got, h @ p["out_w"] + p["out_b"], rtol=2e-5, atol=2e-5)


def test_model_variances_decay_with_depth():
    from meanfield.train.model import NetworkSettings, init_params

    var = NetworkSettings(2.0, 1.0, 1.0, 1.0, 1.0, decay_w=1.0, decay_b=0.5)
    p = init_params(jax.random.PRNGKey(0), var, arch="frn", width=256, depth=4)["blocks"]
    l = np.arange(1, 5)
    np.testing.assert_allclose(np.mean(np.asarray(p["w"]) ** 2, axis=(1, 2)) * 256, 2.0 / l, rtol=0.05)
    np.testing.assert_allclose(np.mean(np.asarray(p["b"]) ** 2, axis=1), l**-0.5, rtol=0.3)


def test_cli_simulate_refuses_an_inner_width_without_units(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--arch", "bottleneck", "--bottleneck", "0.05", "--act", "tanh", "--sw2", "1",
              "--depth", "3", "--width", "8", "--samples", "2"])
    assert exc.value.code == 2 and "round(r N) must be >= 1" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ pre-LayerNorm
@pytest.mark.parametrize("arch, act", [  # each block with one activation by default, the other with -m slow
    pytest.param(arch, act, id=f"{act}-{arch}",
                 marks=[pytest.mark.slow] if (act == "tanh") == (arch in ("preact", "basic")) else [])
    for act in ("tanh", "relu") for arch in ("frn", "rrn", "preact", "basic")])
def test_pre_layer_norm_matches_block_reference(arch, act):
    kw = {k: HYPER[k] for k in ("sw2", "sb2", "p0", "gamma0")}
    if arch != "rrn":
        kw.update(sv2=HYPER["sv2"], sa2=HYPER["sa2"])
    spec = mf.Spec(arch, act, 4, norm="layer", branch_scale=0.8, **kw)
    t = trajectory(spec)
    want = ref.trajectory(spec.block, act, 4, kw["sw2"], kw.get("sv2", 1.0), kw["sb2"], kw.get("sa2", 0.0), 1.0,
                          kw["p0"], kw["gamma0"], branch_scale=0.8)
    got = {("lambda" if f == "lam" else f): getattr(t, f) for f in mf.FIELDS}
    got["log_R"] = t.log_R
    assert _max_rel_diff(got, want) < 1e-8


def test_pre_layer_norm_relu_frn_closed_form():
    # the branch sees p = 1: q = sw2 + sb2 at every layer, p grows linearly, p^(l) = p0 + l (sv2 q / 2 + sa2),
    # and chi's factor is 1 + sv2 sw2 / (2 p^(l-1)) (the normalization divides chi by the variance p)
    sw2, sv2, sb2, sa2, p0, L = 1.3, 0.8, 0.4, 0.2, 1.5, 50
    t = trajectory(mf.Spec("frn", "relu", L, sw2=sw2, sv2=sv2, sb2=sb2, sa2=sa2, p0=p0, norm="layer"))
    l = np.arange(L + 1)
    p = p0 + l * (sv2 * (sw2 + sb2) / 2 + sa2)
    np.testing.assert_allclose(t.p, p, rtol=1e-13)
    np.testing.assert_allclose(t.q[1:], sw2 + sb2, rtol=1e-14)
    np.testing.assert_allclose(t.chi[:-1] / t.chi[1:], 1 + sv2 * sw2 / (2 * p[:-1]), rtol=1e-13)
    assert t.log_R == pytest.approx(np.sum(np.log1p(sv2 * sw2 / (2 * p[:-1]))), rel=1e-13)


def test_pre_layer_norm_validation_and_cli(capsys):
    with pytest.raises(ValueError, match="norm must be one of layer"):
        mf.Spec("frn", "tanh", 3, norm="batch")
    with pytest.raises(ValueError, match="norm applies to arch frn, rrn, preact, basic, bottleneck only"):
        mf.Spec("ff", "tanh", 3, norm="layer")
    with pytest.raises(SystemExit) as exc:
        main(["theory", "--arch", "ff", "--act", "tanh", "--sw2", "1", "--depth", "3", "--norm", "layer"])
    assert exc.value.code == 2 and "norm applies to arch" in capsys.readouterr().err
    block = mf.Spec("basic", "tanh", 3, norm="layer").block
    assert isinstance(block.body[0].branch[0], blocks.Norm) and block.centred
    assert (block.tape_rows("fast"), block.tape_rows("dense")) == (15, 3)


def test_pre_layer_norm_model_normalizes_the_branch_input():
    from meanfield.train.model import NetworkSettings, apply, init_params

    block = mf.Spec("frn", "relu", 2, norm="layer").block
    p = init_params(jax.random.PRNGKey(0), NetworkSettings(1.2, 0.8, 0.1, 0.1), arch=block, width=16, depth=2)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 784), jnp.float32)
    got = apply(p, 1.0, x, arch=block, act=mf.get_activation("relu"))
    h = x @ p["embed_w"] + p["embed_b"]
    for l in range(2):
        k = {name: v[l] for name, v in p["blocks"].items()}
        u = (h - h.mean(-1, keepdims=True)) / h.std(-1, keepdims=True)
        h = h + jax.nn.relu(u @ k["w"] + k["b"]) @ k["v"] + k["a"]
    np.testing.assert_allclose(got, h @ p["out_w"] + p["out_b"], rtol=2e-5, atol=2e-5)
