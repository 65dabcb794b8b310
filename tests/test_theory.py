"""The theory engine against the reference values of docs/theory.md, exact identities and an independent referee."""

import json
import math
import os
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from scipy import integrate

import meanfield as mf
from meanfield import reference as ref
from meanfield.cli import main
from meanfield.theory import _batched, trajectory

warnings.filterwarnings("ignore", category=integrate.IntegrationWarning)
ARCHS = ("frn", "rrn", "ff")
ACTS = ("tanh", "relu", "alpha_relu", "erf")


def _net(arch, act, depth, **kw):
    """A Spec from one set of values for every network: fields the network does not have are dropped."""
    drop = ({"sv2", "sa2"} if arch != "frn" else set()) | ({"alpha"} if act != "alpha_relu" else set())
    return mf.Spec(arch, act, depth, **{k: v for k, v in kw.items() if k not in drop})


def test_relu_frn_reference_values():
    t = trajectory(mf.Spec("frn", "relu", 10, sw2=1, sv2=1, sb2=0.5, sa2=0.5, p0=1, gamma0=0.5))
    np.testing.assert_allclose(t.p, 2.5 * 1.5 ** np.arange(11) - 1.5, rtol=1e-14)
    assert t.gamma[1] == pytest.approx(1.544080399454, rel=1e-11)
    assert t.e[1] == pytest.approx(0.686257955313, rel=1e-11)
    assert t.gamma[10] == pytest.approx(124.240885631677, rel=1e-12)
    assert t.e[10] == pytest.approx(0.870872167427, rel=1e-11)
    assert t.log_R == pytest.approx(10 * math.log(1.5), rel=1e-14)


def test_tanh_frn_reference_values():
    t = trajectory(mf.Spec("frn", "tanh", 10, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5, p0=1, gamma0=0.5))
    assert t.p[1] == pytest.approx(2.3027038921, rel=1e-10)
    assert t.gamma[1] == pytest.approx(1.4498038601, rel=1e-10)
    assert t.p[10] == pytest.approx(17.3386466509, rel=1e-10)
    assert t.gamma[10] == pytest.approx(12.1009409423, rel=1e-10)
    assert t.log_R == pytest.approx(3.48648160, rel=1e-8)


def test_relu_frn_exact_identities():
    rng = np.random.default_rng(0)
    for _ in range(5):
        sw2, sv2, sb2, sa2 = rng.uniform(0.05, 3, 4)
        p0 = rng.uniform(0.2, 3)
        L = 60
        t = trajectory(mf.Spec("frn", "relu", L, sw2=sw2, sv2=sv2, sb2=sb2, sa2=sa2, p0=p0, gamma0=0.3 * p0))
        B, K = 1 + sv2 * sw2 / 2, sv2 * sb2 / 2 + sa2
        l = np.arange(L + 1)
        np.testing.assert_allclose(t.p, B**l * (p0 + K / (B - 1)) - K / (B - 1), rtol=1e-12)
        np.testing.assert_allclose(t.chi[:-1] / t.chi[1:], B, rtol=1e-13)  # chi factor = B
        assert t.log_R == pytest.approx(L * math.log(B), rel=1e-13)


def test_relu_frn_depth_100000_stays_finite_and_exact():
    L = 100_000
    sw2, sv2 = 1.3, 0.9
    t = trajectory(mf.Spec("frn", "relu", L, sw2=sw2, sv2=sv2, sb2=0.5, sa2=0.5))
    assert np.all(np.isfinite(t.log_p)) and np.all(np.isfinite(t.log_s)) and np.all(np.isfinite(t.log_chi))
    assert np.all(np.isfinite(t.e)) and not np.any(np.isnan(t.p))
    assert t.log_R == pytest.approx(L * math.log(1 + sv2 * sw2 / 2), rel=1e-9)
    B = 1 + sv2 * sw2 / 2
    assert t.log_p[-1] == pytest.approx(L * math.log(B), rel=1e-4)
    assert np.isinf(t.p[-1])  # overflows float64: the log twin carries it


@pytest.mark.parametrize("act", ["tanh", "erf"])
def test_frn_with_unit_v_and_no_a_equals_rrn_for_odd_phi(act):
    kw = dict(sw2=1.1, sb2=0.2, p0=1.3, gamma0=-0.4)
    frn = trajectory(mf.Spec("frn", act, 15, sv2=1.0, sa2=0.0, **kw))
    rrn = trajectory(mf.Spec("rrn", act, 15, **kw))
    for f in ("p", "q", "gamma", "lam", "e", "s", "chi", "chi_b", "chi_w", "log_R"):
        np.testing.assert_allclose(getattr(frn, f), getattr(rrn, f), rtol=1e-13)


# by default each activation once and each architecture at least once; the other eight pairs with -m slow
_INVARIANT_DEFAULT = {("frn", "tanh"), ("ff", "relu"), ("rrn", "erf"), ("frn", "alpha_relu")}


@pytest.mark.parametrize("arch, act", [pytest.param(arch, act, marks=[] if (arch, act) in _INVARIANT_DEFAULT
                                                    else [pytest.mark.slow])
                                       for act in ACTS for arch in ARCHS])
def test_equal_inputs_stay_equal_and_cauchy_schwarz(arch, act):
    same = trajectory(_net(arch, act, 30, sw2=1.4, sv2=0.8, sb2=0.3, sa2=0.2, alpha=0.7, p0=2.0, gamma0=2.0))
    np.testing.assert_array_equal(same.e, 1.0)
    np.testing.assert_array_equal(same.s, 0.0)
    diff = trajectory(_net(arch, act, 30, sw2=1.4, sv2=0.8, sb2=0.3, sa2=0.2, alpha=0.7, p0=2.0, gamma0=-1.5))
    assert np.all(np.abs(diff.gamma) <= diff.p * (1 + 1e-14))
    assert np.all(diff.s >= 0)


def _assert_matches_reference(arch, act, depth, seed, rtol):
    rng = np.random.default_rng(seed)
    sw2, sv2, sb2, sa2 = rng.uniform(0.05, 3, 4)
    alpha = rng.uniform(0.55, 1.0)
    p0 = rng.uniform(0.5, 2.0)
    gamma0 = rng.uniform(-0.9, 0.9) * p0
    t = trajectory(_net(arch, act, depth, sw2=sw2, sv2=sv2, sb2=sb2, sa2=sa2, alpha=alpha, p0=p0, gamma0=gamma0))
    r = ref.trajectory(arch, act, depth, sw2, sv2, sb2, sa2, alpha, p0, gamma0)
    for field in mf.FIELDS:
        name = "lambda" if field == "lam" else field
        if name not in r:
            continue
        got, want = np.asarray(getattr(t, field)), r[name]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=field)
        ok = ~np.isnan(want)
        # mu is exactly 0 for odd phi while quadrature returns ~1e-17: compare on the scale sqrt(p)
        atol = 1e-12 * float(np.sqrt(np.max(r["p"]))) if field == "mu" else 0.0
        np.testing.assert_allclose(got[ok], want[ok], rtol=rtol, atol=atol, err_msg=f"{arch} {act} {field}")
    assert float(t.log_R) == pytest.approx(r["log_R"], rel=rtol)


def _reference_cases():
    # alpha-ReLU's reference integrates a power law per layer (about 10 s a case): its cases run with
    # -m slow (the alpha-ReLU laws and simulations are checked by default); erf, whose transforms are closed
    # forms like ReLU's, runs on frn by default and on rrn and ff with -m slow
    for act in ACTS:
        for arch in ARCHS:
            marks = [pytest.mark.slow] if act == "alpha_relu" or (act == "erf" and arch != "frn") else []
            yield pytest.param(arch, act, marks=marks, id=f"{act}-{arch}")


@pytest.mark.parametrize("arch, act", list(_reference_cases()))
def test_matches_independent_reference(arch, act):
    _assert_matches_reference(arch, act, depth=6, seed=zlib.crc32(f"{arch}{act}".encode()), rtol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("act", ACTS)
def test_cli_json_matches_independent_reference_depth_50(arch, act, capsys):
    # `meanfield theory --format json` at depth 50, random variances in [0.05, 3], against
    # meanfield.reference, forward and backward, to 1e-8 relative; only the flags the network has
    rng = np.random.default_rng(7 + zlib.crc32(f"{arch}{act}".encode()))
    sw2, sv2, sb2, sa2 = (float(v) for v in rng.uniform(0.05, 3, 4))
    alpha = float(rng.uniform(0.55, 1.0)) if act == "alpha_relu" else 1.0
    depth, p0, gamma0 = 50, 1.0, 0.5
    argv = ["theory", "--arch", arch, "--act", act, "--sw2", repr(sw2), "--sb2", repr(sb2), "--depth", str(depth),
            "--format", "json"]
    argv += ["--alpha", repr(alpha)] if act == "alpha_relu" else []
    argv += ["--sv2", repr(sv2), "--sa2", repr(sa2)] if arch == "frn" else []
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    r = ref.trajectory(arch, act, depth, sw2, sv2, sb2, sa2, alpha, p0, gamma0)
    for name, want in r.items():
        if name == "log_R":
            assert out["log_R"] == pytest.approx(want, rel=1e-8)
            continue
        got = np.array([np.nan if v is None else v for v in out[name]])
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        ok = ~np.isnan(want)
        atol = 1e-12 * float(np.sqrt(np.max(r["p"]))) if name == "mu" else 0.0
        np.testing.assert_allclose(got[ok], want[ok], rtol=1e-8, atol=atol, err_msg=f"{arch} {act} {name}")


def test_sweep_equals_loop_of_single_calls_and_never_recompiles():
    sw2 = np.linspace(0.2, 2.5, 5)[:, None]
    sa2 = np.array([0.0, 0.5, 1.0])[None, :]
    grid = mf.Spec("frn", "tanh", 12, sw2=sw2, sv2=1.5, sb2=0.3, sa2=sa2)
    swept = trajectory(grid, chunk_size=4)  # 15 points in chunks of 4: padding exercised
    assert swept.p.shape == (5, 3, 13) and swept.log_R.shape == (5, 3)
    size_after_sweep = _batched._cache_size()
    for i in range(5):
        for j in range(3):
            single = trajectory(mf.Spec("frn", "tanh", 12, sw2=float(sw2[i, 0]), sv2=1.5, sb2=0.3, sa2=float(sa2[0, j])))
            for f in mf.Trajectory._fields:
                np.testing.assert_allclose(getattr(swept, f)[i, j], getattr(single, f), rtol=1e-13, atol=0, err_msg=f)
    # new values of the same shape reuse the compiled program
    before = _batched._cache_size()
    trajectory(mf.Spec("frn", "tanh", 12, sw2=0.777, sv2=1.1, sb2=0.9, sa2=0.01))
    trajectory(mf.Spec("frn", "tanh", 12, sw2=0.333, sv2=2.2, sb2=0.1, sa2=0.3, p0=2.0, gamma0=1.0))
    assert _batched._cache_size() == before
    assert size_after_sweep >= 1


def test_sharded_over_four_devices_equals_single_device(tmp_path):
    code = (
        "import json, numpy as np, jax, meanfield as mf\n"
        "assert len(jax.devices()) == 4\n"
        "t = mf.theory.trajectory(mf.Spec('frn', 'tanh', 9, sw2=np.linspace(0.1, 2, 10), sv2=1.5, sb2=0.2, sa2=0.5), chunk_size=6)\n"
        "print(json.dumps({'p': t.p.tolist(), 'logR': t.log_R.tolist()}))\n"
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    local = trajectory(mf.Spec("frn", "tanh", 9, sw2=np.linspace(0.1, 2, 10), sv2=1.5, sb2=0.2, sa2=0.5))
    np.testing.assert_allclose(got["p"], local.p, rtol=1e-13)
    np.testing.assert_allclose(got["logR"], local.log_R, rtol=1e-13)


@pytest.mark.parametrize("kwargs, message", [
    (dict(arch="cnn"), "arch must be one of"),
    (dict(act="swish"), "act must be one of"),
    (dict(depth=0), "depth must be an integer >= 1"),
    (dict(depth=2.5), "depth must be an integer >= 1"),
    (dict(sw2=-0.1), "sw2 must be >= 0"),
    (dict(sv2=float("nan")), "sv2 must be >= 0, got nan"),
    (dict(sb2=[0.1, -1.0]), "sb2 must be >= 0"),
    (dict(sa2="x"), r"sa2 must be >= 0 \(a number or an array of numbers\), got 'x'"),
    (dict(act="alpha_relu", alpha=0.5), r"alpha must be in \(0.5, 1\]"),
    (dict(act="alpha_relu", alpha=1.2), r"alpha must be in \(0.5, 1\], got 1.2$"),
    (dict(act="tanh", alpha=-3), "alpha applies to alpha_relu only: leave it at 1 for act tanh, got -3.0"),
    (dict(arch="rrn", sv2=7.0), "sv2 applies to arch frn, preact, basic, bottleneck only: leave it at 1 for arch rrn, got 7.0"),
    (dict(arch="ff", sa2=[0.0, 3.0]), "sa2 applies to arch frn, preact, basic, bottleneck only: leave it at 0 for arch ff, got 3.0"),
    (dict(sw2=None), r"sw2 must be >= 0 \(a number or an array of numbers\), got None"),
    (dict(act="gelu"), "act must be one of tanh, relu, alpha_relu, erf"),
    (dict(p0=0.0), "p0 must be > 0"),
    (dict(gamma0=1.5), r"\|gamma0\| <= p0"),
    (dict(sw2=np.ones(3), sb2=np.ones(4)), "do not broadcast"),
])
def test_bad_spec_raises_clear_error(kwargs, message):
    base = dict(arch="frn", act="tanh", depth=3, sw2=1.0)
    with pytest.raises(ValueError, match=message):
        mf.Spec(**{**base, **kwargs})


def test_cli_json_keys(capsys):
    assert main(["theory", "--arch", "rrn", "--act", "relu", "--sw2", "1.2", "--sb2", "0.1",
                 "--depth", "4", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    keys = ["p", "q", "gamma", "lambda", "e", "s", "mu", "chi", "log_chi", "chi_a", "chi_b", "chi_w",
            "chi_v", "log_p", "log_s"]
    assert set(out) == {"l", "log_R", *keys}
    assert out["l"] == [0, 1, 2, 3, 4]
    assert all(len(out[k]) == 5 for k in keys)
    assert out["q"][0] is None and out["q"][1] == pytest.approx(1.3)
    assert out["chi_a"] == [None] * 5 and out["chi_v"] == [None] * 5  # the rrn has no a and no V
    assert out["chi"][-1] == 1.0


@pytest.mark.parametrize("argv, message", [
    (["--sw2", "-1"], "sw2 must be >= 0"),
    (["--sw2", "1", "--act", "alpha_relu", "--alpha", "0.2"], "alpha must be in"),
    (["--sw2", "1", "--depth", "0"], "depth must be an integer >= 1"),
    (["--sw2", "1", "--act", "gelu"], "invalid choice"),
    (["--sw2", "1", "--p0", "1", "--gamma0", "3"], "gamma0"),
    (["--sw2", "-1e-3"], "sw2 must be >= 0, got -0.001"),  # argparse alone reads -1e-3 as a flag
    (["--sw2", "1", "--alpha", "0.2"], "--alpha applies to --act alpha_relu only, not tanh"),
    (["--sw2", "1", "--alpha", "1"], "--alpha applies to --act alpha_relu only, not tanh"),
    (["--sw2", "1", "--arch", "rrn", "--sv2", "2"], "--sv2 applies to --arch frn, preact, basic, bottleneck only"),
    (["--sw2", "1", "--arch", "ff", "--sv2", "1", "--sa2", "0"], "--sv2 and --sa2 apply to --arch frn, preact, basic, bottleneck only"),
    (["--sw2", "1", "--depth", "1000000000", "--max-memory", "100"],
     "--depth too large: the run needs an estimated 384 GB, more than the limit of 100 GB (--max-memory)"),
    (["--sw2", "1", "--depth", "1000000", "--max-memory", "0.1"],
     "more than the limit of 0.1 GB (--max-memory); lower --depth, or raise the limit with --max-memory GB"),
])
def test_cli_bad_input_exits_2_with_one_line(argv, message, capsys):
    base = {"--arch": "frn", "--act": "tanh", "--depth": "3"}
    args = ["theory"]
    for k, v in base.items():
        if k not in argv:
            args += [k, v]
    with pytest.raises(SystemExit) as exc:
        main(args + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("chunk_size", [0, -1, 2.5, True])
def test_bad_chunk_size_names_the_field(chunk_size):
    with pytest.raises(ValueError, match=r"chunk_size must be an integer >= 1 \(or None for 4096\)"):
        trajectory(mf.Spec("frn", "relu", 3), chunk_size=chunk_size)


def test_size_guard_uses_the_available_memory(monkeypatch, capsys):
    from meanfield.cli import common

    monkeypatch.setattr(common, "available_memory", lambda: 10 * 10**9)
    with pytest.raises(SystemExit) as exc:
        main(["theory", "--arch", "frn", "--act", "relu", "--sw2", "1", "--depth", "100000000"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "needs an estimated 38.4 GB, more than the limit of 8 GB (80% of the available memory)" in err


def test_memory_estimate_bounds_the_measured_peak():
    # one ReLU FRN of depth 1e7 measured 2.46 GB above a bare jax import (see meanfield/_plan.py)
    from meanfield._plan import trajectory_bytes

    assert 2.46e9 < trajectory_bytes(10**7) < 2 * 2.46e9
