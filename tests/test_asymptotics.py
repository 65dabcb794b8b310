"""Predicted laws (docs/theory.md, section 5) against their own equations and against long theory trajectories."""

import json
import math

import numpy as np
import pytest
from scipy import integrate

import meanfield as mf
from meanfield import asymptotics as asy
from meanfield.activations import J_alpha
from meanfield.blocks import BLOCKS
from meanfield.cli import main
from meanfield.theory import trajectory

TANH_FRN = dict(sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5)
RESNET = dict(sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5)


# ------------------------------------------------------------------------------------- fixed points
@pytest.mark.parametrize("sv2, sa2", [(1.5, 0.5), (1.0, 0.1), (0.5, 2.0)])
def test_tanh_e_star_solves_its_equation(sv2, sa2):
    e = asy.saturating_e_star(sv2, sa2)
    assert 0.0 < e < 1.0
    assert sv2 * (2 / math.pi) * math.asin(e) + sa2 == pytest.approx((sv2 + sa2) * e, abs=1e-13)
    # stable: the right side grows faster than the left at e*
    assert sv2 * (2 / math.pi) / math.sqrt(1 - e * e) < sv2 + sa2


def test_tanh_e_star_closed_form_point_and_limits():
    # sv2 = 1.5, sa2 = 0.5: (3/pi) arcsin(1/2) + 1/2 = 1 = 2 * (1/2), so e* = 1/2 exactly
    assert asy.saturating_e_star(1.5, 0.5) == pytest.approx(0.5, abs=1e-14)
    assert asy.saturating_e_star(1.0, 0.0) == 0.0
    assert asy.saturating_delta_star(1.0, 0.0) == pytest.approx(1 - 2 / math.pi)
    with pytest.raises(ValueError, match="sa2"):
        asy.saturating_e_star(1.0, -0.1)


def test_J_alpha_prime_identity_against_finite_differences():
    c = np.array([-0.5, 0.0, 0.3, 0.8, 0.95])
    for a in (0.6, 0.75, 0.9):
        h = 1e-5
        fd = (np.asarray(J_alpha(c + h, a)) - np.asarray(J_alpha(c - h, a))) / (2 * h)
        np.testing.assert_allclose(asy.J_alpha_prime(c, a), fd, rtol=1e-6)


@pytest.mark.parametrize("alpha", [0.6, 0.75, 0.9])
def test_alpha_relu_e_star_is_the_stable_root(alpha):
    e = asy.alpha_relu_e_star(alpha)
    assert 0.0 < e < 1.0
    assert float(J_alpha(e, alpha)) == pytest.approx(e, abs=1e-13)
    assert float(asy.J_alpha_prime(e, alpha)) < 1.0  # stable
    assert float(asy.J_alpha_prime(1.0, alpha)) == pytest.approx(alpha**2 / (2 * alpha - 1), rel=1e-10)


def test_alpha_relu_R_exponent_formula():
    assert asy.alpha_relu_R_exponent(0.75) == pytest.approx(0.5625 / (0.25 * 0.5))
    with pytest.raises(ValueError, match="alpha"):
        asy.alpha_relu_R_exponent(0.5)


# ------------------------------------------------------------------------------------- feedforward
def test_ff_relu_critical_point():
    assert float(asy.ff_chi_1("relu", 2.0, 0.0)) == pytest.approx(1.0, abs=1e-14)
    assert float(asy.ff_chi_1("relu", 1.5, 0.3)) == pytest.approx(0.75)
    assert asy.ff_critical_sw2("relu", 0.0) == pytest.approx(2.0, abs=1e-10)
    # linear length map q = sw2 q / 2 + sb2
    assert float(asy.ff_q_star("relu", 1.5, 0.1)) == pytest.approx(0.1 / (1 - 0.75), rel=1e-12)


def test_ff_tanh_critical_line_and_fixed_points():
    assert float(asy.ff_chi_1("tanh", 1.0, 0.0)) == pytest.approx(1.0, abs=1e-9)  # q* = 0, V'(0) = 1
    sw2 = asy.ff_critical_sw2("tanh", 0.05)
    assert 1.0 < sw2 < 3.0
    q = float(asy.ff_q_star("tanh", sw2, 0.05))
    tanh = mf.tanh
    assert sw2 * float(tanh.V(q)) + 0.05 == pytest.approx(q, rel=1e-12)
    assert sw2 * float(tanh.Vp(q)) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.slow
def test_ff_depth_scales_against_direct_integrals():
    sw2, sb2 = 4.0, 0.1  # chaotic tanh
    d = asy.ff_depth_scales("tanh", sw2, sb2)
    q, c = d["q_star"], d["c_star"]
    assert d["chi_1"] > 1 and 0 < c < 1
    dens = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    sech2 = lambda x: 1.0 / math.cosh(x) ** 2  # noqa: E731
    # xi_q (Schoenholz et al. 2017, eq. 5): chi_1 + sw2 E[phi'' phi], phi'' = -2 tanh sech^2
    e_pp = integrate.quad(lambda z: -2 * math.tanh(math.sqrt(q) * z) ** 2 * sech2(math.sqrt(q) * z)
                          * dens(z), -12, 12, limit=200)[0]
    assert d["xi_q"] == pytest.approx(-1 / math.log(d["chi_1"] + sw2 * e_pp), rel=1e-6)
    # xi_c (eq. 9): sw2 E[phi'(u1) phi'(u2)] at c*
    s = math.sqrt(1 - c * c)
    inner = lambda z1: integrate.quad(  # noqa: E731
        lambda z2: sech2(math.sqrt(q) * (c * z1 + s * z2)) * dens(z2), -12, 12, limit=200)[0]
    e_dd = integrate.quad(lambda z1: sech2(math.sqrt(q) * z1) * inner(z1) * dens(z1), -12, 12, limit=200)[0]
    assert d["xi_c"] == pytest.approx(-1 / math.log(sw2 * e_dd), rel=1e-6)
    # c* is the fixed point of the correlation map
    w = float(mf.tanh.W(q, c * q))
    assert (sw2 * w + sb2) / q == pytest.approx(c, abs=1e-10)


def test_ff_ordered_phase_has_unit_correlation():
    d = asy.ff_depth_scales("tanh", 0.8, 0.1)
    assert d["c_star"] == 1.0 and d["xi_c"] == pytest.approx(-1 / math.log(d["chi_1"]))


# ---------------------------------------------------------------------- laws against trajectories
def test_relu_frn_one_minus_e_law_at_depth_1e4():
    laws = asy.predict("frn", "relu", **RESNET)
    t = trajectory(mf.Spec("frn", "relu", 10_000, **RESNET))
    l = 10_000
    assert (1 - t.e[l]) * l * l == pytest.approx(laws.one_minus_e_coef, rel=0.02)
    assert t.log_R == pytest.approx(l * laws.log_B, rel=1e-12)  # R = B^L exactly


def test_alpha_relu_gradient_exponent_at_depth_1e5():
    for a in (0.6, 0.75):
        laws = asy.predict("frn", "alpha_relu", alpha=a, **RESNET)
        m = asy.measure(trajectory(mf.Spec("frn", "alpha_relu", 100_000, alpha=a, **RESNET)), laws)
        assert m["R_exponent"]["value"] == pytest.approx(laws.R_exponent, rel=0.01)
        assert m["p_exponent"]["value"] == pytest.approx(laws.p_exponent, rel=0.01)


def test_alpha_relu_R_exponent_independent_of_variances():
    m = asy.measure(trajectory(mf.Spec("frn", "alpha_relu", 100_000, alpha=0.75, sw2=2.0, sv2=0.3,
                                       sb2=0.0, sa2=1.0)), asy.predict("frn", "alpha_relu", alpha=0.75, sw2=1))
    assert m["R_exponent"]["value"] == pytest.approx(4.5, rel=0.01)


def test_tanh_frn_A_by_local_slope_at_depth_1e4():
    laws = asy.predict("frn", "tanh", **TANH_FRN)
    assert laws.A == pytest.approx(1.4669, abs=1e-4)  # docs/theory.md, section 6
    t = trajectory(mf.Spec("frn", "tanh", 10_000, **TANH_FRN))
    m = asy.measure(t, laws)
    assert m["A"]["value"] == pytest.approx(laws.A, rel=0.03)
    assert m["p_exponent"]["value"] == pytest.approx(1.0, rel=0.01)
    # the slow approach of e: the plain local slope is far from delta*, the corrected one is not
    assert m["delta_star_corrected"]["value"] == pytest.approx(laws.delta_star, rel=0.02)
    assert m["delta_reduced"]["value"] == pytest.approx(laws.delta_star, rel=0.02)


@pytest.mark.slow
def test_tanh_rrn_laws_at_depth_1e4():
    laws = asy.predict("rrn", "tanh", sw2=1.0, sb2=0.5)
    assert laws.A == pytest.approx(4 / 3 * math.sqrt(2 / math.pi))
    assert laws.delta_star == pytest.approx(1 - 2 / math.pi)
    m = asy.measure(trajectory(mf.Spec("rrn", "tanh", 10_000, sw2=1.0, sb2=0.5)), laws)
    assert m["A"]["value"] == pytest.approx(laws.A, rel=0.03)
    assert m["delta_star"]["value"] == pytest.approx(laws.delta_star, rel=0.03)


def test_local_slope_recovers_exact_laws():
    l = np.arange(1, 4097, dtype=float)
    x, s = asy.local_slope(l, 3.0 * l**1.7)
    np.testing.assert_allclose(s, 1.7, rtol=1e-12)
    assert x[0] == 2.0
    _, s = asy.local_slope(l, np.exp(1.3 * np.sqrt(l)), scale="sqrt")
    np.testing.assert_allclose(s, 1.3, rtol=1e-12)
    _, s = asy.local_slope(l, log_y=0.4 * l, scale="linear")  # B^l with log B = 0.4, past overflow
    np.testing.assert_allclose(s, 0.4, rtol=1e-12)
    value, drift = asy.tail_slope(np.arange(4097.0), np.log(np.maximum(np.arange(4097.0), 1)) * 2.5)
    assert value == pytest.approx(2.5) and drift < 1e-12
    with pytest.raises(ValueError, match="scale"):
        asy.local_slope(l, l, scale="cubic")


def test_predict_unsupported_and_bad_input():
    laws = asy.predict("rrn", "relu", sw2=1.0)
    assert all(getattr(laws, k) is None for k in asy.LAW_KEYS)
    with pytest.raises(ValueError, match="sw2"):
        asy.predict("frn", "tanh", sw2=-1.0)
    with pytest.raises(ValueError, match="arch"):
        asy.predict("cnn", "tanh", sw2=1.0)


# ------------------------------------------------------------------------------------------- CLI
def _laws_json(capsys, *argv):
    assert main(["laws", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_laws_keys_for_every_network(capsys):
    nets = [
        (["--arch", "rrn", "--act", "tanh", "--sw2", "1"], ("A", "e_star", "delta_star", "p_exponent")),
        (["--arch", "frn", "--act", "tanh", "--sw2", "1.69", "--sv2", "1.5", "--sb2", "0.49", "--sa2", "0.5"],
         ("A", "e_star", "delta_star", "p_exponent")),
        (["--arch", "frn", "--act", "relu", "--sw2", "1", "--sb2", "0.5", "--sa2", "0.5"],
         ("log_B", "e_star", "delta_star")),
        (["--arch", "frn", "--act", "alpha_relu", "--alpha", "0.75", "--sw2", "1"],
         ("R_exponent", "e_star", "delta_star", "p_exponent")),
    ]
    for argv, present in nets:
        out = _laws_json(capsys, *argv)
        for k in asy.LAW_KEYS:
            assert k in out
            assert (out[k] is not None) == (k in present), (argv, k)
    out = _laws_json(capsys, "--arch", "frn", "--act", "tanh", "--sw2", "1.69", "--sv2", "1.5", "--sa2", "0.5")
    assert out["A"] == pytest.approx(1.4669, abs=1e-4)


def test_cli_laws_measure(capsys):
    out = _laws_json(capsys, "--arch", "frn", "--act", "relu", "--sw2", "1", "--sb2", "0.5", "--sa2", "0.5",
                     "--measure", "--depth", "2000")
    assert out["depth"] == 2000
    assert out["measured"]["log_B"]["value"] == pytest.approx(out["log_B"], rel=1e-10)
    assert set(out["measured"]["delta_star"]) == {"value", "drift"}


@pytest.mark.parametrize("argv", [
    ["--arch", "frn", "--act", "tanh", "--sw2", "-1"],
    ["--arch", "frn", "--act", "alpha_relu", "--alpha", "0.4", "--sw2", "1"],
    ["--arch", "frn", "--act", "tanh", "--sw2", "1", "--measure"],
    ["--arch", "frn", "--act", "tanh", "--sw2", "1", "--measure", "--depth", "3"],
    ["--arch", "frn", "--act", "sigmoid", "--sw2", "1"],
    ["--arch", "frn", "--act", "tanh"],
])
def test_cli_laws_bad_input(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["laws", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err


@pytest.mark.slow
def test_erf_frn_shares_the_saturating_laws():
    laws = asy.predict("frn", "erf", **TANH_FRN)
    assert laws.A == pytest.approx(2 * (2 / math.pi) * 1.5 * 1.3 / math.sqrt(2.0))
    m = asy.measure(trajectory(mf.Spec("frn", "erf", 10_000, **TANH_FRN)), laws)
    assert m["A"]["value"] == pytest.approx(laws.A, rel=0.01)
    assert m["delta_star_corrected"]["value"] == pytest.approx(laws.delta_star, rel=0.02)


@pytest.mark.parametrize("act", ["tanh", "erf", "relu", "alpha_relu"])
@pytest.mark.parametrize("sa2", [0.0, 0.5])
def test_frn_without_residual_branch_has_flat_laws(act, sa2):
    # sv2 = 0: x^(l) = x^(l-1) + a^(l); p grows by sa2 per layer and no gradient explodes (R = 1)
    laws = asy.predict("frn", act, sw2=1.0, sv2=0.0, sa2=sa2, alpha=0.8 if act == "alpha_relu" else 1.0)
    assert laws.p_exponent == (1.0 if sa2 else 0.0) and laws.laws["R"] == "R = 1"
    t = trajectory(mf.Spec("frn", act, 50, sw2=1.0, sv2=0.0, sa2=sa2, **({"alpha": 0.8} if act == "alpha_relu" else {})))
    np.testing.assert_allclose(t.p, 1.0 + sa2 * np.arange(51), rtol=1e-13)
    assert float(t.log_R) == 0.0


@pytest.mark.parametrize("argv, message", [
    (["--p0", "2"], "--p0 applies with --measure only"),
    (["--depth", "100"], "--depth applies with --measure only"),
    (["--act", "relu", "--alpha", "0.7"], "--alpha applies to --act alpha_relu only, not relu"),
    (["--arch", "rrn", "--sa2", "1"],
     f"--sa2 applies to --arch {', '.join(n for n, b in BLOCKS.items() if 'sa2' in b.fields)} only"),
    (["--arch", "ff", "--measure", "--depth", "100"],
     f"--measure applies to residual networks ({', '.join(n for n, b in BLOCKS.items() if b.residual)}): "
     "feedforward laws are fixed points"),
])
def test_cli_laws_inapplicable_flags_exit_2(argv, message, capsys):
    base = {"--arch": "frn", "--act": "tanh", "--sw2": "1"}
    args = ["laws"] + [x for k, v in base.items() if k not in argv for x in (k, v)] + argv
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_laws_with_sv2_zero(capsys):
    assert main(["laws", "--arch", "frn", "--act", "tanh", "--sw2", "1", "--sv2", "0", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["A"] == 0.0 and out["p_exponent"] == 0.0


# ------------------------------------------------------------------ laws read off any block's own map
BLOCK_VARS = dict(sw2=1.3, sv2=0.8, sb2=0.3, sa2=0.2)


@pytest.mark.parametrize("arch, act", [("frn", "tanh"), ("frn", "erf"), ("rrn", "tanh"), ("frn", "relu")])
def test_block_limits_reproduce_the_closed_forms(arch, act):
    kw = BLOCK_VARS if arch == "frn" else dict(sw2=1.3, sb2=0.3)
    lim = asy.block_limits(mf.Spec(arch, act, 1, **kw))
    closed = asy.predict(arch, act, **kw)
    if act == "relu":  # p -> B p + K with B = 1 + sv2 sw2 / 2, K = sv2 sb2 / 2 + sa2, R = B^L
        assert lim["B"] == pytest.approx(1 + 0.8 * 1.3 / 2, rel=1e-13)
        assert lim["K"] == pytest.approx(0.8 * 0.3 / 2 + 0.2, rel=1e-12)
        assert lim["log_B"] == pytest.approx(closed.log_B, rel=1e-13)
    else:
        assert lim["k"] == pytest.approx(closed.p_prefactor, rel=1e-8)
        assert lim["A"] == pytest.approx(closed.A, rel=1e-8)


@pytest.mark.parametrize("act", [pytest.param("tanh", marks=pytest.mark.slow), "erf", "relu"])
def test_preact_and_basic_limits_against_hand_derived_forms(act):
    # preact: q = sw2 V(p) + sb2 -> q* = sw2 + sb2 (V -> 1), chi factor 1 + sv2 sw2 V'(q) E[phi'(u)^2], u ~ N(0, p);
    # basic: q1 = sw2 p + sb2, q2 = sw2 V(q1) + sb2 -> q*, chi factor 1 + sv2 sw2^2 V'(q2) V'(q1)
    sw2, sv2, sb2, sa2 = BLOCK_VARS.values()
    pre = asy.block_limits(mf.Spec("preact", act, 1, **BLOCK_VARS))
    basic = asy.block_limits(mf.Spec("basic", act, 1, **BLOCK_VARS))
    if act == "relu":  # V(q) = q / 2, V' = 1 / 2
        assert (pre["B"], pre["K"]) == pytest.approx((1 + sv2 * sw2 / 4, sv2 * sb2 / 2 + sa2), rel=1e-12)
        assert (basic["B"], basic["K"]) == pytest.approx(
            (1 + sv2 * sw2**2 / 4, sv2 * (sw2 * sb2 / 2 + sb2) / 2 + sa2), rel=1e-12)
        assert pre["log_B"] == pytest.approx(math.log(pre["B"]), rel=1e-13)
        assert basic["log_B"] == pytest.approx(math.log(basic["B"]), rel=1e-13)
        return
    phi = mf.get_activation(act)
    q_star = sw2 + sb2
    k = sv2 * float(phi.V(q_star)) + sa2
    tail = asy.KAPPA[act] * 2 * sv2 * sw2 * float(phi.Vp(q_star)) / math.sqrt(k)  # sqrt(p) E[phi'^2] -> kappa
    assert pre["k"] == pytest.approx(k, rel=1e-8) and basic["k"] == pytest.approx(k, rel=1e-8)
    assert pre["A"] == pytest.approx(tail, rel=1e-8)
    assert basic["A"] == pytest.approx(tail * math.sqrt(sw2), rel=1e-8)


@pytest.mark.parametrize("arch, act, depth", [("preact", "relu", 200), ("basic", "relu", 200),
                                               pytest.param("preact", "tanh", 20_000, marks=pytest.mark.slow),
                                               ("basic", "erf", 20_000)])
def test_block_laws_hold_on_long_trajectories(arch, act, depth):
    spec = mf.Spec(arch, act, depth, **BLOCK_VARS)
    laws = asy.predict(arch, act, **BLOCK_VARS)
    t = trajectory(spec)
    if act == "relu":  # exact at every depth: p = B^l (p0 + K/(B-1)) - K/(B-1), R = B^L
        lim = asy.block_limits(mf.Spec(arch, act, 1, **BLOCK_VARS))
        B, K, l = lim["B"], lim["K"], np.arange(depth + 1)
        np.testing.assert_allclose(t.log_p, np.log(B**l * (1 + K / (B - 1)) - K / (B - 1)), rtol=1e-12, atol=1e-12)
        assert float(t.log_R) == pytest.approx(depth * laws.log_B, rel=1e-12)
        return
    got = asy.measure(t, laws)
    assert got["p_exponent"]["value"] == pytest.approx(1.0, abs=5 * got["p_exponent"]["drift"] + 1e-3)
    # o(sqrt L) corrections: the last octave is 0.2-0.4% above A at L = 2e4, within three drifts
    assert abs(got["A"]["value"] - laws.A) < 3 * got["A"]["drift"]
    assert t.p[-1] / depth == pytest.approx(laws.p_prefactor, rel=0.02)


def test_constant_branch_scale_laws_are_the_scaled_frn(capsys):
    # x <- x + kappa (V phi(W x + b) + a) is the FRN with kappa^2 sv2 and kappa^2 sa2
    kappa = 0.5
    scaled = asy.predict("frn", "tanh", branch_scale=kappa, **BLOCK_VARS)
    same = asy.predict("frn", "tanh", **{**BLOCK_VARS, "sv2": kappa**2 * 0.8, "sa2": kappa**2 * 0.2})
    assert scaled.A == pytest.approx(same.A, rel=1e-8)
    assert scaled.p_prefactor == pytest.approx(same.p_prefactor, rel=1e-8)
    out = _laws_json(capsys, "--arch", "preact", "--act", "relu", "--sw2", "1.3", "--sv2", "0.8", "--branch-scale",
                     "0.5", "--measure", "--depth", "100")
    assert out["log_B"] == pytest.approx(math.log(1 + 0.25 * 0.8 * 1.3 / 4), rel=1e-12)
    assert out["measured"]["log_B"]["value"] == pytest.approx(out["log_B"], rel=1e-10)
    with pytest.raises(SystemExit) as exc:
        main(["laws", "--arch", "frn", "--act", "tanh", "--sw2", "1", "--branch-scale", "1/sqrt(L)"])
    assert exc.value.code == 2 and "constant branch scale" in capsys.readouterr().err


@pytest.mark.parametrize("arch, act", [("frn", "relu"), ("frn", "tanh"), ("basic", "relu")])
def test_depth_scaled_branches_have_a_finite_limit(arch, act):
    # kappa = L^-1/2: p^(L) and log R(L) converge (like 1/L) to the solution of dp/dt = p r(p),
    # d log R/dt = G(p) on t in [0, 1]; for ReLU FRN that is p = e^c (p0 + K/c) - K/c, log R = c, c = sv2 sw2 / 2
    kw = dict(sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5)
    lim = asy.depth_scaled_limit(mf.Spec(arch, act, 1, **kw), t=[0.0, 1.0])
    if (arch, act) == ("frn", "relu"):
        c, K = 0.5, 0.75
        assert lim["p"][-1] == pytest.approx(math.exp(c) * (1 + K / c) - K / c, rel=1e-9)
        assert lim["log_R"][-1] == pytest.approx(c, rel=1e-9)
    errors = []
    for L in (100, 1000):
        t = trajectory(mf.Spec(arch, act, L, **kw, branch_scale="1/sqrt(L)"))
        errors.append((abs(t.p[-1] / lim["p"][-1] - 1), abs(float(t.log_R) / lim["log_R"][-1] - 1)))
    (p100, r100), (p1000, r1000) = errors
    assert p1000 < 2e-3 and r1000 < 2e-3
    assert 5 < p100 / p1000 < 20 and 5 < r100 / r1000 < 20  # O(1/L)
