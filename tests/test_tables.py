"""Tables of the Gaussian transforms (meanfield.tables): accuracy, error control, the disk cache, and the
theory engine's fallback when q leaves a table's range.

Speed is measured by experiments/bench_theory.py, not here.
"""

import math
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import meanfield as mf
from meanfield import reference as ref
from meanfield import tables
from meanfield._x64 import float64
from meanfield.theory import trajectory

warnings.filterwarnings("ignore", category=integrate.IntegrationWarning)


@pytest.fixture(autouse=True)
def _in_float64():
    with float64():
        yield


def _random_points(n, seed, q_lo=1e-6, q_hi=1e8):
    """q log-uniform; 1 - c log-uniform from 1e-40 to 1 on either side of c = 0, and c uniform."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(math.log(q_lo), math.log(q_hi), n)
    kind = rng.integers(0, 3, n)
    near = np.exp(rng.uniform(math.log(1e-40), 0.0, n))
    c = np.where(kind == 0, 1.0 - near, np.where(kind == 1, -1.0 + near, rng.uniform(-1, 1, n)))
    delta = np.where(kind == 0, near, 1.0 - c)  # exact where it is small
    return u, c, delta


def test_tanh_table_matches_the_rules_it_was_built_from():
    # the table's own contract (TOLERANCE = 1e-10) at points it was not fitted on; the build rules are
    # the 24-panel quadrature (2e-12 against meanfield.reference)
    u, c, delta = _random_points(400, seed=1)
    rules = mf.tanh.table.rules
    lv, lvp = np.asarray(mf.tanh.log_V(u)), np.asarray(mf.tanh.log_Vp(u))
    np.testing.assert_allclose(lv, rules.log_V(jnp.asarray(u)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(lvp, rules.log_Vp(jnp.asarray(u)), rtol=0, atol=1e-12)
    omr = np.asarray(mf.tanh.one_minus_corr(u, delta))
    np.testing.assert_allclose(omr, rules.decorr(jnp.asarray(u), jnp.asarray(delta)), rtol=tables.TOLERANCE)
    rho = np.asarray(mf.tanh.corr(u, c))
    want = np.asarray(rules.corr(jnp.asarray(u), jnp.asarray(c)))
    np.testing.assert_allclose(rho, want, rtol=tables.TOLERANCE, atol=1e-300)


def test_tanh_table_recorded_errors():
    t = mf.tanh.table.get()
    assert t is not None, "the tanh table failed its own check"
    assert set(t.errors) == {"log_V", "log_Vp", "near: 1 - rho", "mid: rho"}
    assert max(t.errors.values()) <= tables.TOLERANCE


# 1 - rho against the independent referee, without cancellation: (1/2) E[(tanh x - tanh y)^2] / V
# (the referee's sinh overflows once q delta >~ 2000; there 1 - W/V has no cancellation to fear)
# by default five points spread over q and delta; the other six with -m slow
@pytest.mark.parametrize("q, delta", [
    (1e-6, 1e-30), (1.0, 1e-20), (30.0, 0.02), (1e4, 3e-4), (1e8, 1e-40),
    *(pytest.param(q, d, marks=pytest.mark.slow)
      for q, d in ((1e-6, 0.3), (0.01, 1e-12), (1.0, 1e-3), (1e3, 1e-5), (1e6, 1e-9), (1e8, 1e-8))),
])
def test_tanh_one_minus_rho_against_reference(q, delta):
    want = ref.half_sq_diff("tanh", q, delta) / ref.V("tanh", q)
    got = float(mf.tanh.one_minus_corr(math.log(q), delta))
    assert got == pytest.approx(want, rel=1e-8, abs=0)


@pytest.mark.slow
def test_tanh_rho_away_from_one_against_reference():
    for q in (1e-6, 2.0, 5e4, 1e8):
        for c in (1e-3, -0.02, 0.6, -0.75, -0.999999):
            want = ref.W("tanh", q, c * q) / ref.V("tanh", q)
            assert float(mf.tanh.corr(math.log(q), c)) == pytest.approx(want, rel=1e-8, abs=0), (q, c)


# --------------------------------------------------------------------------- build, check and cache
def _small_layout(degree=16):
    return tables.Layout(math.log(0.5), math.log(8.0), odd=True, degree=degree)


def _load(layout, key="test tanh"):
    tables._MEMO.clear()
    return tables.load_or_build("tanh-test", key, layout, mf.tanh.table.rules)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(tables.CACHE_ENV, str(tmp_path / "cache"))
    yield tmp_path / "cache"
    tables._MEMO.clear()


def test_error_control_rejects_a_table_that_misses_its_tolerance(cache):
    # degree 5 patches are far too coarse for 1e-10: the check must see it and refuse the table
    with pytest.warns(RuntimeWarning, match="using the exact rules instead"):
        assert _load(_small_layout(degree=5)) is None


def test_cache_is_written_then_read(cache):
    layout = _small_layout()
    built = _load(layout)
    assert built is not None and built.source == "built"
    files = list(cache.glob("tanh-test-*.npz"))
    assert len(files) == 1
    read = _load(layout)
    assert read.source == str(files[0])
    np.testing.assert_array_equal(read.two_d, built.two_d)
    assert read.errors == built.errors
    # another key (activation or rules' version) is another file
    _load(layout, key="test tanh, other rules")
    assert len(list(cache.glob("tanh-test-*.npz"))) == 2


def test_damaged_cache_file_is_rebuilt(cache):
    layout = _small_layout()
    _load(layout)
    (path,) = cache.glob("tanh-test-*.npz")
    path.write_bytes(b"not a table")
    again = _load(layout)
    assert again is not None and again.source == "built"


def test_unwritable_cache_dir_still_works(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv(tables.CACHE_ENV, str(blocker / "cache"))  # a directory cannot be made here
    t = _load(_small_layout())
    assert t is not None and t.source == "built"
    tables._MEMO.clear()


def test_cache_dir_default_and_override(monkeypatch):
    monkeypatch.delenv(tables.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/some/cache")
    assert str(tables.cache_dir()) == os.path.join("/some/cache", "meanfield")
    monkeypatch.setenv(tables.CACHE_ENV, "")
    assert tables.cache_dir() is None


# ------------------------------------------------------------------------ the engine outside a table
def test_trajectory_leaving_the_table_reruns_with_the_quadrature():
    # ordered feedforward tanh with sb2 = 0: q -> 0 geometrically, far below the table's 1e-6
    spec = mf.Spec("ff", "tanh", 60, sw2=0.5, sb2=0.0, p0=1.0, gamma0=0.3)
    t = trajectory(spec)
    assert np.nanmin(t.q) < 1e-12 and not mf.tanh.table.covers(t.q)
    exact = trajectory(spec.replace(act=mf.tanh.exact))
    for field in ("p", "e", "s", "chi"):
        np.testing.assert_allclose(getattr(t, field), getattr(exact, field), rtol=1e-9, err_msg=field)


def test_trajectory_inside_the_table_agrees_with_the_quadrature():
    spec = mf.Spec("frn", "tanh", 300, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5, p0=1.0, gamma0=0.5)
    t = trajectory(spec)
    assert mf.tanh.table.covers(t.q)
    exact = trajectory(spec.replace(act=mf.tanh.exact))
    for field in ("p", "e", "s", "chi", "chi_w"):
        np.testing.assert_allclose(getattr(t, field), getattr(exact, field), rtol=2e-9, err_msg=field)


# ------------------------------------------------------------------------------ custom activations
SHIFT = 0.3


def _shifted_erf(x):
    return jax.scipy.special.erf(x) + SHIFT


@pytest.mark.slow
def test_custom_table_of_a_non_odd_activation_against_closed_forms():
    # erf + a: V = V_erf + a^2, W = W_erf + a^2, V' = V'_erf, M = a; all four table pieces are used
    act = mf.custom(_shifted_erf, name="erf_plus_shift", q_range=(0.5, 2.0))
    t = act.table.get()
    assert t is not None and set(t.errors) == {"log_V", "log_Vp", "M/sqrt(V)", "near: 1 - rho", "mid: rho",
                                               "far: rho"}
    assert max(t.errors.values()) <= tables.TOLERANCE
    u, c, delta = _random_points(300, seed=2, q_lo=0.5, q_hi=2.0)
    v_erf = np.exp(np.asarray(mf.erf_act.log_V(u)))
    a2 = SHIFT**2
    np.testing.assert_allclose(act.log_V(u), np.log(v_erf + a2), rtol=0, atol=1e-10)
    np.testing.assert_allclose(act.log_Vp(u), mf.erf_act.log_Vp(u), rtol=0, atol=1e-10)
    np.testing.assert_allclose(act.M_scaled(u, 0.0), SHIFT, rtol=1e-10)
    rho_erf = np.asarray(mf.erf_act.corr(u, c))
    np.testing.assert_allclose(act.corr(u, c), (v_erf * rho_erf + a2) / (v_erf + a2), rtol=1e-10)
    omr_erf = np.asarray(mf.erf_act.one_minus_corr(u, delta))
    np.testing.assert_allclose(act.one_minus_corr(u, delta), v_erf * omr_erf / (v_erf + a2), rtol=1e-10)


def test_custom_table_in_trajectories_against_erf():
    myerf = mf.custom(jax.scipy.special.erf, odd=True, name="erf_odd", q_range=(0.1, 30.0))
    spec = mf.Spec("frn", myerf, 40, sw2=0.3, sv2=0.5, sb2=0.1, sa2=0.1, gamma0=0.9)
    t = trajectory(spec)
    assert myerf.table.get() is not None and myerf.table.covers(t.q)
    want = trajectory(spec.replace(act="erf"))
    for field in ("p", "e", "s", "chi"):
        np.testing.assert_allclose(getattr(t, field), getattr(want, field), rtol=1e-9, err_msg=field)
    # deeper, q leaves the table's range: the engine reruns with the checked transforms
    deep = spec.replace(depth=300)
    t = trajectory(deep)
    assert not myerf.table.covers(t.q)
    want = trajectory(deep.replace(act="erf"))
    for field in ("p", "e", "s", "chi"):
        np.testing.assert_allclose(getattr(t, field), getattr(want, field), rtol=1e-9, err_msg=field)


def test_custom_tables_are_keyed_by_phi():
    from meanfield.activations import _fingerprint

    assert _fingerprint(jnp.tanh) == _fingerprint(lambda x: jnp.tanh(x))
    assert _fingerprint(jnp.tanh) != _fingerprint(lambda x: jnp.tanh(1.0000001 * x))
    scale = np.float64(2.0)
    assert _fingerprint(lambda x: jnp.tanh(scale * x)) != _fingerprint(jnp.tanh)
    # phi' is part of the key too (a user-given derivative changes the transforms)
    assert _fingerprint(jnp.tanh, lambda x: 1 - jnp.tanh(x) ** 2) != _fingerprint(jnp.tanh, jnp.cos)
