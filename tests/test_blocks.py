"""Block definitions against the equations of docs/theory.md, section 3, written out by hand.

Every engine interprets the definitions of meanfield.blocks, and meanfield.reference interprets them on
its own with scipy quadrature. A definition that drifts (a primitive dropped, reordered or given the wrong
variance) moves all engines together, so the reference is checked here against the recursions of the
paper for the full and reduced residual networks and the feedforward network, written out without the
block layer, with the same transforms. Both sides are plain-domain float64 with the same adaptive
quadrature, so they agree to rounding (asserted 1e-13 relative; measured 4e-16).
"""

import math

import numpy as np
import pytest

import meanfield as mf
from meanfield import blocks
from meanfield import reference as ref
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
    worst = 0.0
    for name, w in want.items():
        g = np.asarray(got[name], float)
        w = np.asarray(w, float)
        if not np.array_equal(np.isnan(g), np.isnan(w)):
            return math.inf
        ok = ~np.isnan(w) & (w != 0)
        worst = max(worst, float(np.max(np.abs(g[ok] / w[ok] - 1), initial=0.0)))
        if np.any(g[w == 0] != 0):
            worst = max(worst, float(np.max(np.abs(g[w == 0]))))
    return worst


@pytest.mark.parametrize("arch", ["frn", "rrn", "ff"])
@pytest.mark.parametrize("act,depth", [("relu", 6), ("erf", 6), ("tanh", 3)])
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
    assert frn.variance_fields == {"sw2", "sv2", "sb2", "sa2"}
    assert rrn.variance_fields == ff.variance_fields == {"sw2", "sb2"}
    assert (frn.tape_rows("fast"), rrn.tape_rows("fast"), frn.tape_rows("dense")) == (9, 5, 1)
    # the reduced networks take their keys like the frn, so a seed draws the same W and b
    assert rrn.dense_key_slots() == ff.dense_key_slots() == frn.dense_key_slots() == (("w", "v"), ("b", "a"))
    with pytest.raises(ValueError, match="arch must be one of frn, rrn, ff"):
        blocks.get_block("resnet")
    with pytest.raises(ValueError, match="parameter names must be unique"):
        blocks.Block("twice", (blocks.Dense("w", "sw2"), blocks.Act(), blocks.Dense("w", "sw2")))


def test_activation_of_a_signal_with_a_mean_is_refused():
    # relu x + phi(x) without a dense layer in front: no transform for a non-centred input
    block = blocks.Block("bad", (blocks.Residual((blocks.Act(),)), blocks.Act()))
    h = mf.Spec("rrn", "relu", 1).hyper()
    import jax.numpy as jnp

    hj = type(h)(*(jnp.atleast_1d(jnp.asarray(v)) for v in h))
    state = (jnp.zeros(1), jnp.full(1, 0.5), jnp.zeros(1))
    with pytest.raises(NotImplementedError, match="non-zero mean"):
        blocks.theory_step(block, mf.get_activation("relu"), hj, state)


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
