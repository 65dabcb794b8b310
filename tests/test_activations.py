"""Gaussian transforms against docs/theory.md's reference values, closed forms and adaptive quadrature."""

import math
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special

import meanfield as mf
from meanfield import reference as ref
from meanfield._x64 import float64
from meanfield.activations import J_alpha

warnings.filterwarnings("ignore", category=integrate.IntegrationWarning)


@pytest.fixture(autouse=True)
def _in_float64():
    # the log-domain transforms and J_alpha are engine internals: they run in the engines' float64 scope
    with float64():
        yield


@pytest.mark.parametrize("value, expected", [
    (lambda: mf.relu.W(1.0, 0.5), 0.304498890522),
    (lambda: mf.relu.W(1.0, -0.5), 0.054498890522),
    (lambda: mf.relu.W(1.0, 0.0), 1 / (2 * math.pi)),
    (lambda: mf.tanh.V(1.0), 0.3942944904),
    (lambda: mf.tanh.V(100.0), 0.9205368634),
    (lambda: mf.tanh.V(1e4), 0.9920214825),
    (lambda: mf.tanh.Vp(1.0), 0.4644029024),
    (lambda: mf.tanh.Vp(100.0), 0.0531067877),
    (lambda: mf.tanh.W(1.0, 0.5), 0.1863244132),
    (lambda: mf.tanh.W(100.0, 50.0), 0.3303470284),
])
def test_theory_md_reference_values(value, expected):
    # docs/theory.md, section 7 quotes 10 decimal places: agree to half a unit in the last one
    assert float(value()) == pytest.approx(expected, rel=0, abs=5.1e-11)


# tanh: the dedicated rule against nested adaptive quadrature, over the whole (q, c) range.
FAST_Q = [1e-6, 1.0, 1e8]
FAST_C = [-0.999, 0.9999]
FULL_Q = [1e-6, 1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]
FULL_C = [-1.0, -0.999, -0.5, 0.01, 0.3, 0.9, 0.99, 0.9999, 1.0]


def _check_tanh(qs, cs):
    for q in qs:
        assert float(mf.tanh.V(q)) == pytest.approx(ref.V("tanh", q), rel=1e-8, abs=0)
        assert float(mf.tanh.Vp(q)) == pytest.approx(ref.Vp("tanh", q), rel=1e-8, abs=0)
        for c in cs:
            assert float(mf.tanh.W(q, c * q)) == pytest.approx(ref.W("tanh", q, c * q), rel=1e-8, abs=0), (q, c)


def test_tanh_quadrature_relative_error_fast():
    _check_tanh(FAST_Q, FAST_C)


@pytest.mark.slow
def test_tanh_quadrature_relative_error_full_range():
    _check_tanh(FULL_Q, FULL_C)


def test_tanh_large_q_limits():
    # docs/theory.md, section 4: Vtanh(q) = 1 - sqrt(2/pi) q^-1/2 + O(q^-3/2); W -> (2/pi) arcsin c
    q = 1e8
    assert float(mf.tanh.V(q)) == pytest.approx(1 - math.sqrt(2 / math.pi) / math.sqrt(q), rel=1e-11)
    assert float(mf.tanh.Vp(q)) * math.sqrt(q) == pytest.approx(2 / 3 * math.sqrt(2 / math.pi), rel=1e-6)
    assert float(mf.tanh.W(q, 0.5 * q)) == pytest.approx(2 / math.pi * math.asin(0.5), rel=1e-4)


def test_tanh_odd_symmetries():
    q = jnp.array([0.3, 30.0, 3e5])
    assert np.all(np.abs(np.asarray(mf.tanh.W(q, 0.0 * q))) < 1e-16)  # zero up to node-symmetry rounding
    np.testing.assert_allclose(mf.tanh.W(q, -0.4 * q), -np.asarray(mf.tanh.W(q, 0.4 * q)), rtol=1e-14)
    np.testing.assert_allclose(mf.tanh.W(q, q), mf.tanh.V(q), rtol=1e-14)
    assert np.all(np.asarray(mf.tanh.M(q)) == 0.0)


@pytest.mark.parametrize("q", [1e-4, 0.7, 50.0])
def test_relu_closed_forms_against_quadrature(q):
    for c in (-0.9, 0.0, 0.6):
        assert float(mf.relu.W(q, c * q)) == pytest.approx(ref.W("relu", q, c * q), rel=1e-9)
    assert float(mf.relu.V(q)) == pytest.approx(ref.V("relu", q), rel=1e-10)
    assert float(mf.relu.M(q)) == pytest.approx(ref.M("relu", q), rel=1e-10)
    assert float(mf.relu.Vp(q)) == 0.5


@pytest.mark.parametrize("alpha", [0.6, 0.75, 0.9])
@pytest.mark.parametrize("q", [0.01, 2.0, 400.0])
def test_alpha_relu_transforms_against_quadrature(alpha, q):
    a = mf.alpha_relu
    assert float(a.V(q, alpha)) == pytest.approx(ref.V("alpha_relu", q, alpha), rel=1e-9)
    assert float(a.Vp(q, alpha)) == pytest.approx(ref.Vp("alpha_relu", q, alpha), rel=1e-9)
    assert float(a.M(q, alpha)) == pytest.approx(ref.M("alpha_relu", q, alpha), rel=1e-9)
    for c in (-0.7, 0.2, 0.95):
        assert float(a.W(q, c * q, alpha)) == pytest.approx(ref.W("alpha_relu", q, c * q, alpha), rel=1e-8)


def _J_theory_md(c, a):
    """docs/theory.md's integral form of E[psi(u) psi(u')] / c_alpha, by adaptive quadrature."""
    f = lambda eta: math.cos(eta) ** a / (1 - c * math.cos(eta)) ** (a + 1)  # noqa: E731
    integral = integrate.quad(f, 0, math.pi / 2, epsabs=0, epsrel=1e-13, limit=500)[0]
    return special.gamma(a + 1) * (1 - c * c) ** (a + 0.5) / (2 * math.pi) * integral / ref.c_alpha(a)


@pytest.mark.parametrize("alpha", [0.55, 0.75, 1.0])
def test_J_alpha(alpha):
    for c in (-0.95, -0.3, 0.0, 0.5, 0.9):
        assert float(J_alpha(c, alpha)) == pytest.approx(_J_theory_md(c, alpha), rel=1e-10)
    assert float(J_alpha(1.0, alpha)) == 1.0
    assert float(J_alpha(-1.0, alpha)) == 0.0
    # derivative identity J_a'(c) = a^2 / (2a - 1) J_(a-1)(c)
    c, h = 0.4, 1e-5
    deriv = (float(J_alpha(c + h, alpha)) - float(J_alpha(c - h, alpha))) / (2 * h)
    assert deriv == pytest.approx(alpha**2 / (2 * alpha - 1) * float(J_alpha(c, alpha - 1)), rel=1e-8)


def test_J_1_is_the_arc_cosine_kernel():
    c = np.linspace(-1, 1, 41)
    np.testing.assert_allclose(J_alpha(c, 1.0), [2 * ref.relu_kernel(x) for x in c], rtol=1e-12, atol=1e-15)


def test_relu_one_minus_corr_keeps_precision_near_one():
    lq = jnp.array(0.0)
    # moderate delta: agrees with the plain difference
    assert float(mf.relu.one_minus_corr(lq, 1e-2)) == pytest.approx(1 - float(mf.relu.corr(lq, 1 - 1e-2)), rel=1e-12)
    # tiny delta: 1 - J_1(1 - d) = d - (2 sqrt 2 / (3 pi)) d^(3/2) + O(d^2)
    d = 1e-12
    expected = d - 2 * math.sqrt(2) / (3 * math.pi) * d**1.5
    assert float(mf.relu.one_minus_corr(lq, d)) == pytest.approx(expected, rel=1e-11)


@pytest.mark.parametrize("q", [0.05, 1.0, 40.0])
def test_erf_closed_forms_against_quadrature(q):
    e = mf.erf_act
    assert float(e.V(q)) == pytest.approx(ref.V("erf", q), rel=1e-10)
    assert float(e.Vp(q)) == pytest.approx(ref.Vp("erf", q), rel=1e-10)
    assert float(e.W(q, 0.35 * q)) == pytest.approx(ref.W("erf", q, 0.35 * q), rel=1e-9)


@pytest.mark.slow
def test_custom_activation_rules_match_builtins():
    # the quadrature rules behind custom tables (tabulate=False: the rules alone), over the whole range
    mytanh = mf.custom(jnp.tanh, odd=True, name="mytanh", tabulate=False)
    myerf = mf.custom(jax_erf := (lambda x: __import__("jax").scipy.special.erf(x)), tabulate=False)
    for q in (1e-3, 0.5, 3.0, 1e4, 1e8):
        assert float(mytanh.V(q)) == pytest.approx(float(mf.tanh.V(q)), rel=1e-10)
        assert float(mytanh.Vp(q)) == pytest.approx(float(mf.tanh.Vp(q)), rel=1e-10)  # autodiff phi'
        assert float(mytanh.W(q, 0.6 * q)) == pytest.approx(float(mf.tanh.W(q, 0.6 * q)), rel=1e-9)
        assert float(myerf.W(q, -0.3 * q)) == pytest.approx(float(mf.erf_act.W(q, -0.3 * q)), rel=1e-10)
        assert abs(float(myerf.M(q))) < 1e-15
        # 1 - rho without cancellation on both sides of the switch between its two rules (q delta = 1/8)
        for d in (1e-30, 0.05 / q, 0.5 / q, 1e-2):
            got = float(myerf.one_minus_corr(jnp.log(q), d))
            assert got == pytest.approx(float(mf.erf_act.one_minus_corr(jnp.log(q), d)), rel=1e-9), (q, d)
    assert callable(jax_erf)


def test_custom_activation_in_a_trajectory():
    act = mf.custom(lambda x: jnp.maximum(x, 0.0) - 0.1, name="shifted_relu", tabulate=False)
    t = mf.theory.trajectory(mf.Spec("rrn", act, 6, sw2=0.8, sb2=0.1))
    assert np.all(np.isfinite(t.p)) and np.all(np.isfinite(t.mu))
    assert float(t.mu[1]) == pytest.approx(float(mf.relu.M(0.8 + 0.1)) - 0.1, rel=1e-10)


def test_bad_activation_names():
    with pytest.raises(ValueError, match="act must be one of"):
        mf.get_activation("sigmoid")
    with pytest.raises(ValueError, match="phi must be callable"):
        mf.custom(3.0)


@pytest.mark.parametrize("act", [mf.tanh, mf.erf_act])
@pytest.mark.parametrize("q", [1e-3, pytest.param(5.0, marks=pytest.mark.slow), pytest.param(1e3, marks=pytest.mark.slow),
                               1e8])
def test_one_minus_corr_is_exact_near_one(act, q):
    # Price's theorem: 1 - W(q, (1 - d) q) / V(q) -> d q V'(q) / V(q) as q d -> 0 (the correction grows
    # with q d: the kink of tanh is resolved once sigma^2 = q d (2 - d) is small); no cancellation left
    lq = jnp.log(q)
    limit = q * float(act.Vp(q)) / float(act.V(q))
    for d in (1e-24 / max(q, 1.0), 1e-100):
        assert float(act.one_minus_corr(lq, d)) / d == pytest.approx(limit, rel=1e-9)
    assert float(act.one_minus_corr(lq, 0.0)) == 0.0


def test_deep_ordered_feedforward_tanh_keeps_s_positive():
    # chi_1 < 1: inputs converge geometrically; s must decay smoothly, never hit 0 or go negative
    t = mf.theory.trajectory(mf.Spec("ff", "tanh", 400, sw2=0.5, sb2=0.05, p0=1.0, gamma0=0.2))
    assert np.all(t.s > 0) and np.all(np.isfinite(t.log_s))
    rate = np.diff(t.log_s[200:])  # settles to log chi_c, constant
    assert np.ptp(rate) < 1e-6 * np.abs(rate).mean()
