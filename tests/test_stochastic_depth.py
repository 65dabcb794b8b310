"""Stochastic depth: the theory's expectation over the masks against brute-force enumeration, closed forms
and the identities of survival 0 and 1; the samplers and the trained model draw the masks.

The simulation side (theory against sampled networks with random masks) is in tests/test_simulate.py,
with the other architectures' cases.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meanfield as mf
from meanfield.cli import main
from meanfield.simulate import networks
from meanfield.stochastic_depth import log_binomial
from meanfield.theory import trajectory

KW = dict(sw2=1.3, sv2=0.8, sb2=0.4, sa2=0.2, p0=1.2, gamma0=0.4)


def _enumerated(plain: mf.Trajectory, s: float) -> dict:
    """The expectation over all 2^L masks, one mask at a time, from the plain trajectory of depth L: given
    the mask, layer l's state is the plain state after the number of kept layers, chi^(l) is the product
    of the plain factors of the kept layers above l, and a dropped layer's parameters have gradient 0."""
    depth = plain.depth
    factor = np.exp(plain.log_chi[:-1] - plain.log_chi[1:])  # F of the layer reading plain state a
    gain = {f: getattr(plain, f)[1:] / plain.chi[1:] for f in ("chi_w", "chi_b", "chi_v", "chi_a")}
    keys = ("p", "gamma", "e", "s", "mu", "q", "lam", "chi", "chi_w", "chi_b", "chi_v", "chi_a")
    total = {k: np.zeros(depth + 1) for k in keys}
    for mask in itertools.product((0, 1), repeat=depth):
        weight = s ** sum(mask) * (1 - s) ** (depth - sum(mask))
        if weight == 0:
            continue
        k = np.concatenate([[0], np.cumsum(mask)])  # kept layers up to l
        for f in ("p", "gamma", "e", "s", "mu"):
            total[f] += weight * getattr(plain, f)[k]
        for f in ("q", "lam"):  # the branch of layer l reads state k[l - 1], kept or not
            total[f][1:] += weight * getattr(plain, f)[k[:-1] + 1]
        chi = np.ones(depth + 1)
        for l in range(depth, 0, -1):
            chi[l - 1] = chi[l] * (factor[k[l - 1]] if mask[l - 1] else 1.0)
        total["chi"] += weight * chi
        for f, g in gain.items():
            total[f][1:] += weight * np.array(mask) * chi[1:] * g[k[:-1]]
    for f in ("q", "lam", "chi_w", "chi_b", "chi_v", "chi_a"):
        total[f][0] = np.nan
    return total


@pytest.mark.parametrize("arch, act, s", [("frn", "tanh", 0.35), pytest.param("basic", "relu", 0.8, marks=pytest.mark.slow),
                                         ("rrn", "relu", 0.5)])
def test_expectation_is_the_average_over_every_mask(arch, act, s):
    kw = KW if arch != "rrn" else {k: v for k, v in KW.items() if k not in ("sv2", "sa2")}
    depth = 9
    plain = trajectory(mf.Spec(arch, act, depth, **kw))
    got = trajectory(mf.Spec(arch, act, depth, survival=s, **kw))
    want = _enumerated(plain, s)
    for f, v in want.items():
        if f.startswith("chi_") and np.all(np.isnan(getattr(plain, f))):
            continue  # a parameter the block does not have
        np.testing.assert_allclose(getattr(got, f), v, rtol=1e-12, atol=1e-14, err_msg=f)
    assert got.log_R == pytest.approx(np.log(want["chi"][0]), rel=1e-12)


def test_relu_frn_mask_average_is_the_survival_weighted_linear_recursion():
    """For ReLU the FRN's p recursion is linear and chi's factor constant, so their expectations follow the
    recursion with the branch weighted by s; e (and tanh's p and s) do not: the s-weighted recursion is off
    by 0.5% or more in ReLU's e at depth 40 and by 0.28% in tanh's s at depth 10 (asserted > 0.1%)."""
    sw2, sv2, sb2, sa2, s, depth = 1.3, 0.8, 0.4, 0.2, 0.7, 40
    t = trajectory(mf.Spec("frn", "relu", depth, sw2=sw2, sv2=sv2, sb2=sb2, sa2=sa2, survival=s))
    p = [1.0]
    for _ in range(depth):
        p.append(p[-1] * (1 + s * sv2 * sw2 / 2) + s * (sv2 * sb2 / 2 + sa2))
    np.testing.assert_allclose(t.p, p, rtol=1e-13)
    np.testing.assert_allclose(t.chi, (1 + s * sv2 * sw2 / 2) ** (depth - np.arange(depth + 1)), rtol=1e-13)
    weighted = trajectory(mf.Spec("frn", "relu", depth, sw2=sw2, sv2=s * sv2, sb2=sb2, sa2=s * sa2))
    np.testing.assert_allclose(weighted.p, t.p, rtol=1e-13)  # the same linear recursion
    assert np.max(np.abs(weighted.e[1:] / t.e[1:] - 1)) > 5e-3  # but e is not linear in the mask
    tanh = trajectory(mf.Spec("frn", "tanh", 10, sw2=sw2, sv2=sv2, sb2=sb2, sa2=sa2, survival=s))
    tanh_weighted = trajectory(mf.Spec("frn", "tanh", 10, sw2=sw2, sv2=s * sv2, sb2=sb2, sa2=s * sa2))
    assert np.max(np.abs(tanh_weighted.s[1:] / tanh.s[1:] - 1)) > 1e-3


@pytest.mark.parametrize("act", [pytest.param("tanh", marks=pytest.mark.slow), "relu"])
def test_survival_one_is_the_plain_block_and_zero_the_identity(act):
    spec = mf.Spec("preact", act, 12, **KW)
    plain = trajectory(spec)
    both = trajectory(spec.replace(survival=np.array([1.0, 0.0])))  # the expectation's program at s = 1
    for f in plain._fields:
        np.testing.assert_allclose(getattr(both, f)[0], getattr(plain, f), rtol=1e-14, atol=0, err_msg=f)
    for f in ("p", "gamma", "e", "s", "mu"):
        np.testing.assert_array_equal(getattr(both, f)[1], np.full(13, getattr(plain, f)[0]), err_msg=f)
    assert np.all(both.chi[1] == 1.0) and np.all(both.chi_b[1, 1:] == 0) and both.log_R[1] == 0.0
    if act != "relu":
        return
    # sampled networks (one program: survival is traced): survival 1 draws no zero, survival 0 keeps no
    # branch (x is x, bit for bit)
    key = jax.random.key(3)
    per_plain = networks(spec, 16, 2, key)
    per_one = networks(spec.replace(survival=1.0), 16, 2, key)
    for f in ("p", "s", "chi", "chi_w"):
        np.testing.assert_array_equal(getattr(per_one, f), getattr(per_plain, f), err_msg=f)
    per_zero = networks(spec.replace(survival=0.0), 16, 2, key)
    np.testing.assert_array_equal(per_zero.p, np.repeat(per_zero.p[:, :1], 13, axis=1))
    np.testing.assert_array_equal(per_zero.chi, 1.0)


def test_log_binomial_is_the_binomial_distribution():
    from scipy.stats import binom

    from meanfield._x64 import float64

    k = np.arange(-1, 12)
    for n, s in ((10, 0.3), (10, 0.0), (10, 1.0), (0, 0.4)):
        with float64():
            got = np.exp(np.asarray(log_binomial(float(n), jnp.asarray(k, jnp.float64), s)))
        np.testing.assert_allclose(got, binom.pmf(k, n, s), rtol=1e-12, atol=1e-300)


def test_sampled_masks_keep_each_layer_with_probability_survival():
    """Over 256 networks the fraction of layers whose branch changed the stream is s within 4 SE, and the
    draws differ between layers and networks."""
    s, depth, samples = 0.3, 16, 256
    per = networks(mf.Spec("frn", "relu", depth, sw2=1.0, survival=s), 8, samples, jax.random.key(5))
    kept = np.diff(per.p, axis=-1) != 0
    frac = kept.mean()
    assert abs(frac - s) <= 4 * np.sqrt(s * (1 - s) / kept.size)
    assert 0 < kept[:, 0].mean() < 1 and 0 < kept[0].mean() < 1


def test_sweep_over_survival_never_recompiles():
    from meanfield import simulate, theory

    trajectory(mf.Spec("frn", "tanh", 6, sw2=1.2, survival=np.array([0.2, 0.5])))
    networks(mf.Spec("frn", "tanh", 6, sw2=1.2, survival=0.5), 8, 2, jax.random.key(0))
    sizes = theory._batched._cache_size(), simulate._networks._cache_size()
    trajectory(mf.Spec("frn", "tanh", 6, sw2=1.2, survival=np.array([0.7, 0.9])))
    networks(mf.Spec("frn", "tanh", 6, sw2=1.2, survival=0.8), 8, 2, jax.random.key(0))
    assert (theory._batched._cache_size(), simulate._networks._cache_size()) == sizes


def test_validation_and_cli(capsys):
    with pytest.raises(ValueError, match=r"survival must be in \[0, 1\], got 1.5"):
        mf.Spec("frn", "tanh", 4, survival=1.5)
    with pytest.raises(ValueError, match="survival applies to arch frn, rrn, preact, basic, bottleneck only"):
        mf.Spec("ff", "tanh", 4, survival=0.5)
    with pytest.raises(ValueError, match="cannot be combined with a variance decay"):
        mf.Spec("frn", "tanh", 4, survival=0.5, decay_w=1.0)
    for argv, message in ((["--arch", "frn", "--survival", "-0.1"], "survival must be in [0, 1]"),
                          (["--arch", "ff", "--survival", "0.5"], "--survival applies to --arch frn")):
        with pytest.raises(SystemExit) as err:
            main(["theory", "--act", "tanh", "--sw2", "1", "--depth", "3", *argv])
        assert err.value.code == 2 and message in capsys.readouterr().err
    assert main(["theory", "--arch", "rrn", "--act", "relu", "--sw2", "1", "--depth", "3", "--survival", "0.5",
                 "--format", "json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    want = trajectory(mf.Spec("rrn", "relu", 3, sw2=1.0, survival=0.5))
    np.testing.assert_allclose(out["p"], want.p, rtol=1e-12)


@pytest.mark.slow  # trains four small grids (about 25 s); the sampled masks are checked by default above
def test_training_draws_masks_and_evaluates_the_expected_branch():
    """survival 0 trains the embedding and readout alone (the same numbers at depth 2 and 3, as for branch
    scale 0); survival 0.5 draws masks and trains the blocks (the programs of the branch-scale-0 training
    test: a grid of 2, rrn, tanh, depths 2 and 3). The evaluation pass scales each branch by s: at s = 0.5
    it is the forward pass with branch scale 0.5; a mask drops exactly the layers it zeroes."""
    from test_train import LR, TINY, synthetic_mnist

    from meanfield.train.data import subset
    from meanfield.train.model import NetworkSettings, apply, init_params
    from meanfield.train.trainer import train_grid

    tanh = mf.get_activation("tanh")
    data = subset(synthetic_mnist(), None, None, 16)
    var = NetworkSettings(1.5, 1.0, 0.1, 0.0, 1.0, LR, survival=np.array([0.0, 0.5]))
    two, three = (train_grid(var, [3, 3], data, arch="rrn", act=tanh, depth=depth, cfg=TINY) for depth in (2, 3))
    for field in ("train_loss", "test_loss", "val_acc"):
        assert getattr(two, field)[0] == getattr(three, field)[0], field
    assert abs(three.train_loss[1] - three.train_loss[0]) > 1e-4
    assert abs(three.train_loss[1] - two.train_loss[1]) > 1e-4
    x = jax.random.normal(jax.random.PRNGKey(2), (5, 784), jnp.float32)
    p = init_params(jax.random.PRNGKey(1), NetworkSettings(2.0, 2.0, 0.5, 0.5), arch="frn", width=16, depth=4)
    relu = mf.get_activation("relu")
    np.testing.assert_array_equal(apply(p, 1.0, x, arch="frn", act=relu, layer_scale=0.5),
                                  apply(p, 1.0, x, arch="frn", act=relu, branch_scale=0.5))
    xi = jnp.array([1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(apply(p, 1.0, x, arch="frn", act=relu, layer_scale=xi),
                                  apply({**p, "blocks": jax.tree.map(lambda a: a[::2], p["blocks"])}, 1.0, x,
                                        arch="frn", act=relu))
