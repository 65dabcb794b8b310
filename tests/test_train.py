"""MNIST sweeps: data readers, model at initialization, grid trainer, sweeps, CLI, analysis, figures.

Training tests use a tiny synthetic MNIST-shaped set and tiny widths so the whole file runs in about a
minute on two cores; they share one static training configuration to share compilations.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meanfield
from meanfield.cli import main
from meanfield.spec import Spec
from meanfield.theory import trajectory
from meanfield.train import data as data_mod
from meanfield.train import analysis, heatmap, sweep, trainer
from meanfield.train.data import MNIST, DataError, load_mnist, read_idx, subset
from meanfield.train.config import COLUMNS, SweepConfig, SweepError, TrainConfig, effective, parse_list, settings
from meanfield.train.model import NetworkSettings, apply, init_params, residual_stream
from meanfield.train.sweep import output_lock, run_sweep
from meanfield.train.trainer import train_grid

TINY = TrainConfig(width=8, epochs=2, batch=16)
LR = 0.01


def synthetic_mnist(n_train=64, n_test=32, seed=0) -> MNIST:
    """Learnable MNIST-shaped data: the label is carried by which block of pixels is bright."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, n)
        x = rng.normal(0, 1, (n, 784)).astype(np.float32)
        for k in range(10):
            x[y == k, 78 * k:78 * k + 78] += 2.0
        return x, y.astype(np.int32)

    return MNIST(*make(n_train), *make(n_test))


@pytest.fixture(scope="module")
def tiny_data():
    return synthetic_mnist()


# ------------------------------------------------------------------------------------------- data
def _write_idx(path, array, gz=False):
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    raw = header + array.tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(raw)


def _write_idx_dir(directory, n_train=20, n_test=10, gz=False):
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, arr in arrays.items():
        _write_idx(os.path.join(directory, name + (".gz" if gz else "")), arr, gz=gz)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_directory_reads_and_standardizes(tmp_path, gz):
    arrays = _write_idx_dir(tmp_path, gz=gz)
    d = load_mnist(str(tmp_path))
    assert d.x_train.shape == (20, 784) and d.x_test.shape == (10, 784)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
    np.testing.assert_array_equal(d.y_train, arrays["train-labels-idx1-ubyte"])
    # standardized with the training pixels' mean and std (test set uses the same affine map)
    assert abs(d.x_train.mean()) < 1e-5 and abs(d.x_train.std() - 1) < 1e-5
    raw = arrays["train-images-idx3-ubyte"].reshape(20, 784).astype(np.float64)
    expect = (arrays["t10k-images-idx3-ubyte"].reshape(10, 784) - raw.mean()) / raw.std()
    np.testing.assert_allclose(d.x_test, expect, rtol=1e-5, atol=1e-5)


def test_npz_reads(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "m.npz"
    np.savez(path, x_train=rng.integers(0, 256, (12, 784)), y_train=rng.integers(0, 10, 12),
             x_test=rng.integers(0, 256, (5, 28, 28)), y_test=rng.integers(0, 10, 5))
    d = load_mnist(str(path))
    assert d.x_train.shape == (12, 784) and d.x_test.shape == (5, 784)


def test_missing_and_malformed_files_name_the_file(tmp_path):
    _write_idx_dir(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist(str(tmp_path))
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(b"\x12\x34\x08\x01junk")
    with pytest.raises(DataError, match=str(bad).replace("\\", "\\\\") + ".*magic"):
        load_mnist(str(tmp_path))
    _write_idx(bad, np.zeros(10))
    bad.write_bytes(bad.read_bytes()[:-3])  # truncated data
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.*promises"):
        read_idx(str(bad))
    with pytest.raises(DataError, match="not found.*nowhere"):
        load_mnist(str(tmp_path / "nowhere"))
    npz = tmp_path / "m.npz"
    np.savez(npz, x_train=np.zeros((3, 784)), y_train=np.zeros(3))
    with pytest.raises(DataError, match="m.npz.*x_test"):
        load_mnist(str(npz))
    np.savez(npz, x_train=np.zeros((3, 784)), y_train=np.array([0, 1, 12]), x_test=np.zeros((1, 784)),
             y_test=np.zeros(1))
    with pytest.raises(DataError, match="labels outside"):
        load_mnist(str(npz))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        load_mnist(str(junk))


def test_packaged_mnist_is_full_and_standardized():
    d = load_mnist()
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert set(np.unique(d.y_train)) == set(range(10))
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-4
    p0, gamma0 = d.input_stats(n_pairs=2000)
    assert abs(p0 - 1) < 1e-6 and 0 < gamma0 < p0


def test_subsets_are_deterministic_and_nested(tiny_data):
    a, b = subset(tiny_data, 40, 10), subset(tiny_data, 40, 10)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    small = subset(tiny_data, 20)
    np.testing.assert_array_equal(small.x_train, a.x_train[:20])
    assert len(small.x_test) == len(tiny_data.x_test)
    with pytest.raises(ValueError, match="train_subset"):
        subset(tiny_data, 0)


# ------------------------------------------------------------------------------------------ model
def test_init_variances_and_structure():
    var = NetworkSettings(1.7, 0.6, 0.3, 0.2, 1.0)
    n, depth = 128, 6
    p = init_params(jax.random.PRNGKey(0), var, arch="frn", width=n, depth=depth)
    b = p["blocks"]
    assert b["w"].shape == (depth, n, n) and b["w"].dtype == jnp.float32
    np.testing.assert_allclose(np.var(b["w"]) * n, 1.7, rtol=0.02)
    np.testing.assert_allclose(np.var(b["v"]) * n, 0.6, rtol=0.02)
    np.testing.assert_allclose(np.var(b["b"]), 0.3, rtol=0.15)
    np.testing.assert_allclose(np.var(b["a"]), 0.2, rtol=0.15)
    np.testing.assert_allclose(np.var(p["embed_w"]) * 784, 1.0, rtol=0.02)
    rrn = init_params(jax.random.PRNGKey(0), var, arch="rrn", width=n, depth=depth)
    assert set(rrn["blocks"]) == {"w", "b"}
    # common random numbers: the variances only scale the same draws
    p2 = init_params(jax.random.PRNGKey(0), var._replace(sw2=0.425), arch="frn", width=n, depth=depth)
    np.testing.assert_allclose(p2["blocks"]["w"] * 2, b["w"], rtol=1e-6)


def test_scan_matches_layer_by_layer():
    act = meanfield.get_activation("alpha_relu")
    var = NetworkSettings(1.2, 0.8, 0.1, 0.1, 0.75)
    p = init_params(jax.random.PRNGKey(3), var, arch="frn", width=16, depth=4)
    x = jax.random.normal(jax.random.PRNGKey(4), (5, 784), jnp.float32)
    got = jax.jit(apply, static_argnames=("arch", "act"))(p, 0.75, x, arch="frn", act=act)
    h = x @ p["embed_w"] + p["embed_b"]
    for l in range(4):
        blk = {k: v[l] for k, v in p["blocks"].items()}
        z = h @ blk["w"] + blk["b"]
        h = act.phi(z, 0.75) @ blk["v"] + h + blk["a"]
    np.testing.assert_allclose(got, h @ p["out_w"] + p["out_b"], rtol=2e-5, atol=2e-5)
    assert got.dtype == jnp.float32


def test_relu_frn_forward_length_matches_exact_law():
    """docs/theory.md, section 5: ReLU FRN p^(l) = B^l (p0 + K/(B-1)) - K/(B-1), measured at width 1024."""
    act = meanfield.get_activation("relu")
    sw2, sv2, sb2, sa2, depth, n = 1.0, 1.0, 0.5, 0.5, 8, 1024
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 784), jnp.float32)

    @jax.jit
    def lengths(key):
        p = init_params(key, NetworkSettings(sw2, sv2, sb2, sa2, 1.0), arch="frn", width=n, depth=depth)
        xl = residual_stream(p, 1.0, x, arch="frn", act=act)
        return jnp.mean((x @ p["embed_w"]) ** 2), jnp.mean(xl**2)

    ps = [tuple(map(float, lengths(jax.random.PRNGKey(seed)))) for seed in range(4)]
    p0 = np.mean([a for a, _ in ps])
    B, K = 1 + sv2 * sw2 / 2, sv2 * sb2 / 2 + sa2
    theory = B**depth * (p0 + K / (B - 1)) - K / (B - 1)
    measured = np.mean([b for _, b in ps])
    assert abs(measured / theory - 1) < 0.08, (measured, theory)


# ---------------------------------------------------------------------------------------- trainer
def test_grid_learns_and_divergence_is_isolated(tiny_data):
    """Networks whose loss turns non-finite are recorded as diverged, keep finite parameters, and do
    not touch the others: those end exactly as in a grid without them."""
    relu = meanfield.get_activation("relu")
    kw = dict(arch="frn", act=relu, depth=2, cfg=TINY)
    # third member: variances so large that the first forward pass overflows (diverged in epoch 1)
    a = train_grid(NetworkSettings(np.array([0.5, 1.0, 1e30]), np.array([1.0, 1.0, 1e30]), 0.1, 0.1, 1.0, LR),
                   [0, 1, 2], tiny_data, **kw)
    # third member: finite at initialization, but its first updates are astronomically large
    b = train_grid(NetworkSettings(np.array([0.5, 1.0, 1e12]), np.array([1.0, 1.0, 1e12]), 0.1, 0.1, 1.0, LR),
                   [0, 1, 2], tiny_data, **kw)
    np.testing.assert_array_equal(a.diverged_epoch, [0, 0, 1])
    assert b.diverged_epoch[2] >= 1 and np.isfinite(b.test_acc[2]) and np.isfinite(a.test_acc[2])
    assert a.test_acc[2] < 0.2  # scored with its (overflowing) initial parameters: no valid prediction
    np.testing.assert_array_equal(b.diverged_epoch[:2], [0, 0])
    np.testing.assert_allclose(a.test_acc[:2], b.test_acc[:2], atol=1e-6)
    np.testing.assert_allclose(a.train_loss[:2], b.train_loss[:2], rtol=1e-5)
    assert np.all(a.train_acc[:2] > 0.3), a.train_acc  # learnable data: far above chance after 2 epochs


@pytest.mark.slow
def test_learning_rate_is_per_network_and_validation_is_scored(tiny_data):
    """Two copies of one network at two learning rates in one grid end exactly as each alone; the
    validation split is scored (NaN without one)."""
    tanh = meanfield.get_activation("tanh")
    kw = dict(arch="frn", act=tanh, depth=2, cfg=TINY)
    data = subset(tiny_data, None, None, 16)
    var = NetworkSettings(0.8, 1.0, 0.1, 0.1, 1.0, np.array([1e-3, 5e-2]))
    both = train_grid(var, [5, 5], data, **kw)
    alone = [train_grid(var._replace(lr=lr), [5], data, **kw) for lr in (1e-3, 5e-2)]
    assert abs(both.train_loss[0] - both.train_loss[1]) > 1e-3
    np.testing.assert_allclose(both.train_loss, [a.train_loss[0] for a in alone], rtol=1e-5)
    assert np.all((both.val_acc >= 0) & (both.val_acc <= 1))
    assert np.all(np.isnan(train_grid(var, [5, 5], tiny_data, **kw).val_acc))
    with pytest.raises(ValueError, match="lr must be given"):
        train_grid(var._replace(lr=None), [5, 5], tiny_data, **kw)


def test_no_recompilation_for_new_variances(tiny_data):
    tanh = meanfield.get_activation("tanh")
    kw = dict(arch="rrn", act=tanh, depth=3, cfg=TINY)
    train_grid(NetworkSettings(np.array([0.5, 1.0]), 1.0, 0.0, 0.0, 1.0, LR), [0, 0], tiny_data, **kw)
    sizes = (trainer.init_grid._cache_size(), trainer.train_epoch_grid._cache_size(),
             trainer.evaluate_grid._cache_size())
    train_grid(NetworkSettings(np.array([1.5, 0.1]), 1.0, 0.3, 0.0, 1.0, np.array([0.02, 0.003])), [3, 4], tiny_data, **kw)
    assert (trainer.init_grid._cache_size(), trainer.train_epoch_grid._cache_size(),
            trainer.evaluate_grid._cache_size()) == sizes


@pytest.mark.slow  # sharding is covered by tests/test_parallel.py; this runs a training grid twice
def test_sharded_grid_matches_single_device(tmp_path):
    """With 4 (forced host) devices a grid of 3 is padded to 4, sharded, and gives the same results."""
    script = textwrap.dedent("""
        import numpy as np, jax, meanfield, sys
        sys.path.insert(0, %r)
        from test_train import synthetic_mnist, TINY
        from meanfield.train.trainer import train_grid
        from meanfield.train.model import NetworkSettings
        LR = %r
        assert len(jax.devices()) == 4
        d = synthetic_mnist()
        var = NetworkSettings(np.array([0.3, 0.9, 1.6]), 1.0, 0.1, 0.1, 1.0, LR)
        kw = dict(arch="frn", act=meanfield.get_activation("tanh"), depth=2, cfg=TINY)
        seen = []
        many = train_grid(var, [0, 1, 2], d, on_epoch=lambda e, s: seen.append(
            len(s.params["blocks"]["w"].sharding.device_set)), **kw)
        one = train_grid(var, [0, 1, 2], d, devices=jax.devices()[:1], **kw)
        assert seen == [4, 4], seen
        np.testing.assert_allclose(many.test_acc, one.test_acc, atol=1e-6)
        np.testing.assert_allclose(many.train_loss, one.train_loss, rtol=1e-4)
        print("OK")
    """ % (os.path.dirname(__file__), LR))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


# ----------------------------------------------------------------------------------------- sweeps
def test_parse_list():
    assert parse_list("0.1:2:3", "sw2") == (0.1, 1.05, 2.0)
    assert parse_list("1.5", "sw2") == (1.5,)
    assert parse_list("0.5,1,2", "sw2") == (0.5, 1.0, 2.0)
    assert parse_list("10:30:3", "depth", integer=True) == (10, 20, 30)
    assert parse_list("10:11:4", "depth", integer=True) == (10, 11)
    for bad in ("1:0:x", "1:0:3", "a,b", "1:2", "1:2:0", "1:2:1", "", "nan", "1,inf"):
        with pytest.raises(SweepError, match="--sw2"):
            parse_list(bad, "sw2")
    with pytest.raises(SweepError, match="integers"):
        parse_list("1.5", "depth", integer=True)


def _tiny_sweep(**kw) -> SweepConfig:
    base = dict(arch="frn", act="tanh", depth=(2, 3), sw2=(0.5, 1.5), sv2=(1.0,), sb2=(0.1,), sa2=(0.1,),
                seeds=1, train=TINY, lr=(LR,), val_subset=16)
    base.update(kw)
    return SweepConfig(**base)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_writes_rows_and_resumes(tmp_path, tiny_data, monkeypatch, capsys):
    out = str(tmp_path / "run")
    cfg = _tiny_sweep()
    run_sweep(cfg, out, data=tiny_data)
    rows = _rows(os.path.join(out, "results.csv"))
    assert len(rows) == 4 and tuple(rows[0]) == COLUMNS
    assert {(r["sw2"], r["depth"]) for r in rows} == {("0.5", "2"), ("1.5", "2"), ("0.5", "3"), ("1.5", "3")}
    assert all(r["diverged"] == "0" and 0 <= float(r["test_acc"]) <= 1 for r in rows)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["sweep"]["sw2"] == [0.5, 1.5] and "p0" in config["input_stats"]
    assert "4/4 done" in capsys.readouterr().err

    # interrupted during the second group: its rows are missing and a row is half written
    path = os.path.join(out, "results.csv")
    lines = open(path).read().splitlines(keepends=True)
    with open(path, "w") as f:
        f.writelines(lines[:3])
        f.write(lines[3][:10])
    calls = []
    real = trainer.train_grid
    monkeypatch.setattr(trainer, "train_grid", lambda var, seeds, *a, **k: calls.append(len(seeds)) or real(
        var, seeds, *a, **k))
    with pytest.raises(SweepError, match="--resume"):
        run_sweep(cfg, out, data=tiny_data)
    run_sweep(cfg, out, data=tiny_data, resume=True, progress=False)
    assert calls == [2]  # only the unfinished group (depth 3) was trained
    rows2 = _rows(path)
    assert len(rows2) == 4 and rows2[:2] == rows[:2]
    np.testing.assert_allclose([float(r["test_acc"]) for r in rows2[2:]], [float(r["test_acc"]) for r in rows[2:]])
    run_sweep(cfg, out, data=tiny_data, resume=True, progress=False)
    assert calls == [2] and len(_rows(path)) == 4
    with pytest.raises(SweepError, match="cannot resume.*sw2"):
        run_sweep(_tiny_sweep(sw2=(0.5, 1.4)), out, data=tiny_data, resume=True)


def test_zip_pairs_axes_and_presets():
    cfg = _tiny_sweep(sv2=(1.0, 2.0), sa2=(0.5, 1.0), zip=("sv2", "sa2"))
    grid = settings(effective(cfg))
    assert len(grid) == 4 and {(g["sv2"], g["sa2"]) for g in grid} == {(1.0, 0.5), (2.0, 1.0)}
    he = effective(_tiny_sweep(init="he"))
    assert (he.sw2, he.sv2, he.sb2, he.sa2) == ((2.0,), (2.0,), (0.0,), (0.0,))
    rrn = effective(_tiny_sweep(arch="rrn", sv2=(3.0,)))
    assert rrn.sv2 == (1.0,) and rrn.sa2 == (0.0,) and rrn.alpha == (1.0,)
    with pytest.raises(SweepError, match="equal lengths"):
        sweep.validate(_tiny_sweep(sv2=(1.0, 2.0), sa2=(0.5,), zip=("sv2", "sa2")))


# -------------------------------------------------------------------------------------------- CLI
@pytest.fixture
def no_training(monkeypatch):
    """Fail loudly if a bad-input test gets as far as loading data or compiling anything."""
    def boom(*a, **k):
        raise AssertionError("reached data loading or training")
    monkeypatch.setattr(trainer, "train_grid", boom)
    monkeypatch.setattr(sweep, "load_mnist", boom)
    monkeypatch.setattr(data_mod, "load_mnist", boom)
    monkeypatch.setattr("meanfield.train.data.load_mnist", boom)
    return boom


BASE = ["train", "--arch", "frn", "--act", "tanh", "--sw2", "1", "--depth", "2", "--width", "8"]


@pytest.mark.parametrize("flags, message", [
    (["--sw2", "1:0:x"], "count n"),
    (["--sw2", "1:0:3"], "a <= b"),
    (["--sw2=-1,1"], "sw2 must be >= 0"),
    (["--sb2", "0:1:3,"], "sb2"),
    (["--depth", "0"], "depth"),
    (["--depth", "2.5"], "integers"),
    (["--width", "0"], "width"),
    (["--lr", "-1"], "lr"),
    (["--seeds", "0"], "seeds"),
    (["--train-subset", "10", "--batch", "64"], "batch"),
    (["--init", "he"], "--init he sets"),
    (["--alpha", "0.7"], "alpha_relu only"),
    (["--zip", "sv2,sa2", "--sv2", "1,2", "--sa2", "0"], "equal lengths"),
    (["--branch-scale", "1/sqrtL"], "branch_scale must be a number >= 0 or one of 1/sqrt(L), 1/L"),
    (["--branch-scale=-0.5"], "branch_scale must be >= 0"),
    (["--branch-scale", "inf"], "branch_scale must be >= 0"),
    (["--arch", "ff", "--branch-scale", "1/L"], "--branch-scale applies to --arch frn, rrn, preact, basic, bottleneck only"),
    (["--arch", "rrn", "--sa2", "0.1"], "--sa2 applies to --arch frn, preact, basic, bottleneck only"),
])
def test_cli_bad_grid_exits_2_before_compiling(flags, message, tmp_path, capsys, no_training):
    argv = BASE + ["--out", str(tmp_path / "o")] + flags
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("meanfield: error:") and message in err[0], err


def test_cli_bad_alpha_and_missing_data(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--arch", "frn", "--act", "alpha_relu", "--alpha", "0.3", "--depth", "2",
              "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "alpha must be in (0.5, 1]" in capsys.readouterr().err
    monkeypatch.setattr(trainer, "train_grid", lambda *a, **k: pytest.fail("trained despite bad data"))
    missing = tmp_path / "idx"
    missing.mkdir()
    with pytest.raises(SystemExit) as exc:
        main(BASE + ["--out", str(tmp_path / "o"), "--data", str(missing)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "train-images-idx3-ubyte" in err[0]


def test_cli_end_to_end_on_user_npz(tmp_path, tiny_data, capsys):
    npz = tmp_path / "tiny.npz"
    np.savez(npz, **tiny_data._asdict())
    out = tmp_path / "run"
    argv = ["train", "--arch", "rrn", "--act", "tanh", "--sw2", "0.5,1.5", "--depth", "2,3", "--width", "8",
            "--epochs", "2", "--batch", "16", "--val-subset", "16", "--lr", "0.01", "--data", str(npz), "--out",
            str(out), "--no-plots",
            "--no-progress"]
    assert main(argv) == 0
    rows = _rows(out / "results.csv")
    assert len(rows) == 4 and {r["sv2"] for r in rows} == {"1.0"} and {r["width"] for r in rows} == {"8"}
    assert main(argv + ["--resume"]) == 0
    assert len(_rows(out / "results.csv")) == 4
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and "--resume" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(argv[:-4] + ["--epochs", "3", "--out", str(out), "--no-plots", "--resume"])
    assert exc.value.code == 2 and "cannot resume" in capsys.readouterr().err


def _npz(tmp_path, tiny_data):
    npz = tmp_path / "tiny.npz"
    np.savez(npz, **tiny_data._asdict())
    return str(npz)


def _recording_train_grid(monkeypatch, fake=False):
    """Record (depth, branch scales, readout factors) of every trained group; ``fake``: skip training
    (results 0.5)."""
    calls = []
    real = trainer.train_grid

    def record(var, seeds, data, **kw):
        calls.append((kw["depth"], *(np.broadcast_to(np.asarray(v, np.float64), np.shape(seeds))
                                     for v in (var.branch_scale, var.out_scale))))
        if not fake:
            return real(var, seeds, data, **kw)
        half = np.full(len(seeds), 0.5)
        return trainer.GridResult(half, half, half, half, np.zeros(len(seeds), np.int64), half)

    monkeypatch.setattr(trainer, "train_grid", record)
    return calls


def test_cli_trains_preact_at_a_depth_scaled_branch(tmp_path, tiny_data, monkeypatch):
    """A registered block beyond frn / rrn trains through the command line, with kappa = L^-1/2 resolved
    at the group's depth and handed to the trainer."""
    calls = _recording_train_grid(monkeypatch)
    out = tmp_path / "run"
    argv = ["train", "--arch", "preact", "--act", "relu", "--sw2", "0.5", "--sv2", "0.5", "--depth", "3",
            "--width", "8", "--epochs", "1", "--batch", "16", "--val-subset", "16", "--lr", "0.01",
            "--branch-scale", "1/sqrt(L)", "--data", _npz(tmp_path, tiny_data),
            "--out", str(out), "--no-plots", "--no-progress"]
    assert main(argv) == 0
    rows = _rows(out / "results.csv")
    assert len(rows) == 1 and rows[0]["arch"] == "preact" and tuple(rows[0]) == COLUMNS
    assert 0 <= float(rows[0]["test_acc"]) <= 1 and rows[0]["diverged"] == "0"
    assert [(d, k.tolist()) for d, k, _ in calls] == [(3, [3 ** -0.5])]
    config = json.load(open(out / "config.json"))
    assert config["sweep"]["branch_scale"] == config["effective"]["branch_scale"] == "1/sqrt(L)"


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["basic", "ff", "bottleneck"])
def test_cli_trains_every_block(arch, tmp_path, tiny_data):
    out = tmp_path / arch
    argv = ["train", "--arch", arch, "--act", "tanh", "--sw2", "0.5", "--depth", "2", "--width", "8",
            "--epochs", "1", "--batch", "16", "--val-subset", "16", "--lr", "0.01", "--data",
            _npz(tmp_path, tiny_data), "--out", str(out), "--no-plots", "--no-progress"]
    assert main(argv) == 0
    rows = _rows(out / "results.csv")
    assert len(rows) == 1 and rows[0]["arch"] == arch and 0 <= float(rows[0]["test_acc"]) <= 1


def test_sweep_resolves_the_branch_scale_per_depth(tmp_path, tiny_data, monkeypatch):
    """Each depth group gets its own kappa (1/L here), and the mean-field readout the theory's p^(L) at
    that kappa; a numeric scale is the same at every depth."""
    from meanfield.train.predictors import readout_scale

    calls = _recording_train_grid(monkeypatch, fake=True)
    cfg = _tiny_sweep(arch="rrn", act="relu", depth=(2, 5), sv2=(1.0,), sa2=(0.0,), branch_scale="1/L",
                      readout="meanfield")
    run_sweep(cfg, str(tmp_path / "a"), data=tiny_data, progress=False)
    assert [(d, k.tolist()) for d, k, _ in calls] == [(2, [0.5, 0.5]), (5, [0.2, 0.2])]
    points = {"alpha": np.ones(2), "sw2": np.array(cfg.sw2), "sv2": np.ones(2), "sb2": np.full(2, 0.1),
              "sa2": np.zeros(2)}
    want = readout_scale("rrn", "relu", points, [5, 5], *tiny_data.input_stats(), 0.2)
    np.testing.assert_allclose(calls[1][2], want, rtol=1e-6)
    plain = readout_scale("rrn", "relu", points, [5, 5], *tiny_data.input_stats())
    assert np.all(np.abs(calls[1][2] / plain - 1) > 0.1)  # kappa = 1 would be far off
    calls.clear()
    run_sweep(_tiny_sweep(arch="basic", depth=(2, 5), branch_scale=" 0.25 "), str(tmp_path / "b"),
              data=tiny_data, progress=False)
    assert [(d, k.tolist()) for d, k, _ in calls] == [(2, [0.25, 0.25]), (5, [0.25, 0.25])]


def test_branch_scale_zero_trains_the_depth_independent_model(tiny_data):
    """At kappa = 0 every block is the identity and receives no gradient, so the trained network is the
    embedding and readout alone: the same numbers at any depth (same seed). At kappa = 1 depth matters.
    (Same compiled programs as the end-to-end CLI test: rrn, tanh, depths 2 and 3, 48 training examples.)"""
    tanh = meanfield.get_activation("tanh")
    data = subset(tiny_data, None, None, 16)
    var = NetworkSettings(1.5, 1.0, 0.1, 0.0, 1.0, LR, branch_scale=np.array([0.0, 1.0]))
    two, three = (train_grid(var, [3, 3], data, arch="rrn", act=tanh, depth=depth, cfg=TINY) for depth in (2, 3))
    for field in ("train_loss", "test_loss", "val_acc"):
        assert getattr(two, field)[0] == getattr(three, field)[0], field
    assert abs(two.train_loss[1] - three.train_loss[1]) > 1e-4
    assert abs(two.train_loss[1] - two.train_loss[0]) > 1e-4


def test_model_at_branch_scale_zero_is_the_input_only_model():
    """x^(L) = embedding(x) for every residual block at kappa = 0, whatever the block parameters."""
    x = jax.random.normal(jax.random.PRNGKey(2), (5, 784), jnp.float32)
    act = meanfield.get_activation("relu")
    for arch in ("frn", "rrn", "preact", "basic"):  # the shapes of test_scan_matches_layer_by_layer's network
        p = init_params(jax.random.PRNGKey(1), NetworkSettings(2.0, 2.0, 0.5, 0.5), arch=arch, width=16, depth=4)
        embedded = x @ p["embed_w"] + p["embed_b"]
        np.testing.assert_array_equal(residual_stream(p, 1.0, x, arch=arch, act=act, branch_scale=0.0), embedded)
        assert np.max(np.abs(residual_stream(p, 1.0, x, arch=arch, act=act) - embedded)) > 0.1, arch


def test_resume_accepts_a_config_written_before_the_branch_scale(tmp_path):
    """A sweep directory whose config.json predates the branch_scale field resumes at kappa = 1 only."""
    out = tmp_path / "old"
    out.mkdir()
    cfg = _tiny_sweep()
    old = {k: v for k, v in cfg.to_json().items() if k != "branch_scale"}
    (out / "config.json").write_text(json.dumps({"sweep": old}))
    (out / "results.csv").write_text(",".join(COLUMNS) + "\n")
    assert sweep.prepare(cfg, str(out), resume=True) == set()
    with pytest.raises(SweepError, match="cannot resume.*branch_scale"):
        sweep.prepare(_tiny_sweep(branch_scale=0.5), str(out), resume=True)


def test_depth_scaled_predictors_read_each_depth_at_its_own_kappa():
    from meanfield.train.predictors import theory_at

    points = {"alpha": np.ones(2), "sw2": np.array([0.5, 2.0]), "sv2": np.ones(2), "sb2": np.full(2, 0.1),
              "sa2": np.full(2, 0.1)}
    got = theory_at("frn", "relu", points, 6, 1.0, 0.5, "1/sqrt(L)")
    for L in (1, 4, 6):
        want = theory_at("frn", "relu", points, 6, 1.0, 0.5, L ** -0.5)
        for k in ("log_R", "log_s", "log_p"):
            np.testing.assert_allclose(got[k][:, L], want[k][:, L], rtol=1e-13)
            np.testing.assert_allclose(got[k][:, 0], want[k][:, 0], rtol=1e-13)
    assert np.all(np.abs(got["log_p"][:, 6] - theory_at("frn", "relu", points, 6, 1.0, 0.5)["log_p"][:, 6]) > 0.1)


# -------------------------------------------------------------------------------------- analysis
def test_ridge_fit_recovers_sw2_L_const():
    sw2 = np.exp(np.linspace(np.log(0.05), np.log(20), 25))
    depths = np.array([20, 40, 80, 160, 320])
    X, L = np.meshgrid(sw2, depths)
    acc = np.exp(-np.log(X * L / 150.0) ** 2)
    r = analysis.fit_ridge(X.ravel(), L.ravel(), acc.ravel())
    assert r["n_fit"] == 5 and r["n_edge"] == 5
    assert abs(r["slope_b"] + 1) < 0.05 and 130 < r["C_sw2_L"] < 170
    # the edge (accuracy halfway to chance) of exp(-u^2) lies at u = 0.77 above the peak
    assert abs(r["edge_slope_b"] + 1) < 0.05 and 130 * 2.0 < r["edge_C_sw2_L"] < 170 * 2.4
    # a flat row (no peak inside the grid) is not used for the fit
    flat = analysis.fit_ridge(np.array([0.1, 1.0, 2.0] * 2), np.array([10] * 3 + [20] * 3),
                              np.array([0.9, 0.91, 0.9, 0.5, 0.9, 0.6]))
    assert [p["resolved"] for p in flat["points"]] == [False, True] and flat["slope_b"] is None
    # a row where every network diverged (NaN) has no centre and no edge, not the middle of the grid
    failed = analysis.fit_ridge(np.array([0.1, 1.0, 2.0] * 2), np.array([10] * 3 + [20] * 3),
                                np.array([0.9, 0.5, 0.2, np.nan, np.nan, np.nan]))
    assert [(p["sw2"], p["resolved"], p["edge"]) for p in failed["points"]][1] == (None, False, None)
    assert failed["points"][0]["sw2"] == pytest.approx(0.1) and failed["points"][0]["edge"] is not None


def test_partial_rank_correlation_removes_depth():
    rng = np.random.default_rng(0)
    depth = np.repeat([10.0, 50, 100, 200], 25)
    x = np.tile(np.linspace(0.1, 2, 25), 4)
    noise = rng.normal(size=100)
    # a predictor that only restates depth: strong plain correlation, none at fixed depth
    acc = -depth + 5 * noise
    pred = depth + 1e-3 * rng.normal(size=100)
    assert analysis._spearman(pred, acc) < -0.8
    assert abs(analysis.partial_spearman(pred, acc, depth)) < 0.25
    # a predictor that carries what depth does not: the partial correlation keeps it
    acc2 = -x + 0.1 * noise
    assert analysis.partial_spearman(x + depth, acc2, depth) < -0.9


def _write_sweep(directory, act, rows, sw2, depths, lrs=(1e-3, 1e-2), seeds=3, init="spec", pairs=None):
    """A sweep directory with hand-made results: rows maps (sw2, depth, lr, seed) -> (val, test, diverged).
    With an ``init`` preset the preset's variances replace sw2 = sw2, sv2 = 1, sb2 = sa2 = 0.5. With
    ``pairs`` ((sv2, sa2), ...), swept as zipped axes, the keys are (sw2, depth, lr, seed, sv2, sa2)."""
    os.makedirs(directory, exist_ok=True)
    sv2, sa2 = zip(*pairs) if pairs else ((1.0,), (0.5,))
    cfg = _tiny_sweep(act=act, sw2=tuple(sw2), depth=tuple(depths), sv2=sv2, sb2=(0.5,), sa2=sa2,
                      lr=tuple(lrs), seeds=seeds, init=init, zip=("sv2", "sa2") if pairs else ())
    eff = effective(cfg)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"sweep": cfg.to_json(), "effective": eff.to_json(),
                   "input_stats": {"p0": 1.0, "gamma0": 0.3}, "n_train": 64, "n_test": 32, "n_val": 16}, f)
    with open(os.path.join(directory, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for (s, L, lr, seed, *pair), (val, test, div) in rows.items():
            v, a = pair or (1.0, 0.5)
            variances = [s, v, 0.5, a] if init == "spec" else [eff.sw2[0], eff.sv2[0], eff.sb2[0], eff.sa2[0]]
            w.writerow(["frn", act, "linear", 1.0, *variances, lr, L, 8, seed, 1, test, val, test, 1.0,
                        int(div), 0.1])


def test_learning_rate_is_selected_on_validation_never_on_test(tmp_path):
    """Cell A: validation prefers lr 1e-3, test prefers 1e-2 -> 1e-3 and its test accuracy are reported.
    Cell B: lr 1e-2 has the better validation accuracy but one seed diverged -> 1e-3.
    Cell C: two of three seeds diverge at every rate -> a diverged cell (NaN), never accuracy 0.
    Cell D: one seed of three diverged at both rates -> the mean of the other two."""
    rows = {}
    for seed in range(3):
        rows[(0.5, 10, 1e-3, seed)] = (0.90, 0.80, 0)
        rows[(0.5, 10, 1e-2, seed)] = (0.85, 0.95, 0)
        rows[(1.0, 10, 1e-3, seed)] = (0.70, 0.70, 0)
        rows[(1.0, 10, 1e-2, seed)] = (0.90, 0.90, seed == 2)
        rows[(0.5, 20, 1e-3, seed)] = (0.60, 0.60, seed > 0)
        rows[(0.5, 20, 1e-2, seed)] = (0.60, 0.60, seed > 0)
        rows[(1.0, 20, 1e-3, seed)] = (0.50, [0.4, 0.6, 0.1][seed], seed == 2)
        rows[(1.0, 20, 1e-2, seed)] = (0.40, 0.40, seed == 2)
    d = str(tmp_path / "sel")
    _write_sweep(d, "tanh", rows, (0.5, 1.0), (10, 20))
    config, runs = analysis.load(d)
    out = runs.outcome("best")
    # cells are keyed by (alpha, sw2, sv2, sb2, sa2, sg2, gate_bias, depth); the gate's at its neutral 1, 0
    order = [runs.cell_keys.index((1.0, s, 1.0, 0.5, 0.5, 1.0, 0.0, L)) for s, L in ((0.5, 10), (1.0, 10), (0.5, 20),
                                                                              (1.0, 20))]
    np.testing.assert_allclose(out["lr"][order], [1e-3, 1e-3, 1e-3, 1e-3])
    acc = out["acc"][order]
    np.testing.assert_allclose(acc[[0, 1, 3]], [0.80, 0.70, 0.5])
    assert np.isnan(acc[2]) and out["diverged"][order].tolist() == [False, False, True, False]
    fixed = runs.outcome("lr=0.01")
    np.testing.assert_allclose(fixed["acc"][order][[0, 1]], [0.95, 0.90])
    with pytest.raises(ValueError, match="no networks at that learning rate"):
        runs.outcome("lr=0.5")
    summary = analysis.analyze(d, bootstrap=50)
    assert summary["protocols"]["best"]["n_cells_diverged"] == 1
    assert summary["protocols"]["best"]["lr_counts"] == {"0.001": 4, "0.01": 0}
    # the mean accuracy leaves the diverged cell out, never counts it as 0, and is printed
    assert summary["protocols"]["best"]["mean_acc"]["value"] == pytest.approx((0.80 + 0.70 + 0.5) / 3)
    assert any(f"mean {(0.80 + 0.70 + 0.5) / 3:.3f} [" in line for line in analysis.summary_lines(summary))


def test_tanh_analysis_recovers_ridge_with_interval(tmp_path):
    """Accuracy peaked on sw2 L = 150 with seed noise: the ridge slope's bootstrap interval covers -1
    and excludes 0; the summary, CLI --analyze and the figures come from results.csv alone."""
    rng = np.random.default_rng(1)
    sw2 = tuple(np.round(np.geomspace(0.02, 20, 16), 4))
    depths = (25, 50, 100, 200, 400)
    rows = {}
    for s in sw2:
        for L in depths:
            for lr in (1e-3, 1e-2):
                for seed in range(3):
                    a = 0.1 + 0.85 * math.exp(-math.log(s * L / 150.0) ** 2) + rng.normal(0, 0.01)
                    rows[(s, L, lr, seed)] = (a, a, 0)
    d = str(tmp_path / "tanh")
    _write_sweep(d, "tanh", rows, sw2, depths)
    summary = analysis.write_summary(d, bootstrap=100)
    best = summary["protocols"]["best"]
    lo, hi = best["ridge_b"]["ci95"]
    assert lo < -1 < hi and hi < -0.5, best["ridge_b"]
    assert 100 < best["ridge_C"]["value"] < 220
    assert best["rho_predictor"]["value"] is not None and best["ridge_band"] is not None
    assert json.load(open(os.path.join(d, "summary.json")))["protocols"]["best"]["ridge_b"] == best["ridge_b"]
    assert f"sw2 L = {best['ridge_C']['value']:.0f} [" in "\n".join(analysis.summary_lines(summary))  # tanh's law
    paths = heatmap.write_figures(d, summary, figures_dir=str(tmp_path / "figs"))
    assert [os.path.basename(p) for p in paths] == ["heatmap.png", "lr_map.png", "scatter.png"]
    assert os.path.exists(tmp_path / "figs" / "mnist_tanh_heatmap.png")


def test_relu_edge_at_a_planted_log_p_level_is_found_with_its_theory_values(tmp_path):
    """ReLU accuracy 0.95 wherever the theory's log p^(L) < 40 and chance beyond (seed noise 0.005): at every
    depth the edge lies between the two grid cells around log p^(L) = 40, its interval contains it, and the
    theory's log p^(L) and log s^(L) reported at the edge are the theory's values there; the edge fit and
    the per-depth table reach the summary lines."""
    from meanfield.train.predictors import theory_at

    rng = np.random.default_rng(5)
    sw2 = tuple(np.round(np.geomspace(0.1, 4.0, 24), 4))
    depths = (50, 100, 200)
    ones = np.ones(len(sw2))
    grid = {"alpha": ones, "sw2": np.array(sw2), "sv2": ones, "sb2": 0.5 * ones, "sa2": 0.5 * ones}
    th = theory_at("frn", "relu", grid, max(depths), 1.0, 0.3)
    rows = {}
    for i, s in enumerate(sw2):
        for L in depths:
            for lr in (1e-3, 1e-2):
                for seed in range(3):
                    a = (0.95 if th["log_p"][i, L] < 40 else 0.1) + rng.normal(0, 0.005)
                    rows[(s, L, lr, seed)] = (a, a, 0)
    d = str(tmp_path / "relu")
    _write_sweep(d, "relu", rows, sw2, depths)
    summary = analysis.analyze(d, bootstrap=100)
    best = summary["protocols"]["best"]
    points = {p["depth"]: p for p in best["ridge"]["points"]}
    for L in depths:
        p = points[L]
        below = th["log_p"][:, L] < 40
        j = int(np.argmin(below))  # first grid cell beyond the level
        assert sw2[j - 1] < p["edge"] < sw2[j] and p["edge_ci95"][0] <= p["edge"] <= p["edge_ci95"][1]
        assert th["log_p"][j - 1, L] < p["edge_log_p"] < th["log_p"][j, L]
        lo, hi = p["edge_log_p_ci95"]
        assert lo <= p["edge_log_p"] <= hi and th["log_p"][j - 1, L] - 1e-9 <= lo and hi <= th["log_p"][j, L] + 1e-9
        at_edge = theory_at("frn", "relu", {**{k: v[:1] for k, v in grid.items()}, "sw2": np.array([p["edge"]])},
                            L, 1.0, 0.3)
        np.testing.assert_allclose([p["edge_log_p"], p["edge_log_s"]],
                                   [at_edge["log_p"][0, L], at_edge["log_s"][0, L]], rtol=1e-10)
    # log p^(L) ~ L log(1 + sw2 / 2): the edge moves faster than 1 / L at small depth
    assert best["edge_b"]["value"] < -1 and best["edge_band"] is not None
    text = "\n".join(analysis.summary_lines(summary))
    assert "log p^(L) at edge" in text and f"{points[100]['edge']:.3f}" in text
    # no law sw2 L = const for ReLU: the edge fit is reported by its intercept a, not by a mean of sw2 L
    assert f"a = {best['edge_a']['value']:.2f} [" in text and "sw2 L =" not in text


def test_paired_axes_get_a_ridge_per_facet_equal_to_the_facet_alone(tmp_path):
    """A tanh sweep over paired (sv2, sa2) -- the variant sweep's layout -- with accuracy planted to peak
    at sw2 = C / L, C = 5 in one facet and 10 in the other: each facet's statistics are exactly those of
    a sweep of its rows alone (same bootstrap draws), each recovers its own ridge (slope -1, the ratio
    of the constants 2), the printed report has every facet's ridge, and the heatmap has its panels."""
    rng = np.random.default_rng(5)
    sw2 = 0.1 * 20 ** (np.arange(10) / 9)
    pairs, const = ((1.125, 0.0), (1.5, 0.5)), (5.0, 10.0)
    rows = {}
    for (v, a), c in zip(pairs, const):
        for L in (10, 20, 40):
            for lr in (1e-3, 1e-2):
                for seed in range(3):
                    for s in sw2:
                        acc = 0.95 - 0.1 * np.log(s * L / c) ** 2 + rng.normal(0, 0.003)
                        rows[(float(s), L, lr, seed, v, a)] = (acc, acc, 0)
    both, alone = str(tmp_path / "variant"), str(tmp_path / "alone")
    _write_sweep(both, "tanh", rows, sw2, (10, 20, 40), pairs=pairs)
    _write_sweep(alone, "tanh", {k: r for k, r in rows.items() if k[4:] == pairs[1]}, sw2, (10, 20, 40),
                 pairs=pairs[1:])
    summary = analysis.analyze(both, bootstrap=40)
    assert [(f["facet"]["sv2"], f["facet"]["sa2"]) for f in summary["facets"]] == list(pairs)
    assert "ridge" not in summary["protocols"]["best"]  # pooled over facets: no ridge fit
    assert (json.dumps(summary["facets"][1]["protocols"], sort_keys=True)
            == json.dumps(analysis.analyze(alone, bootstrap=40)["protocols"], sort_keys=True))
    fits = [f["protocols"]["best"] for f in summary["facets"]]
    for f in fits:
        assert -1.25 < f["ridge_b"]["value"] < -0.75
    assert 1.6 < fits[1]["ridge_C"]["value"] / fits[0]["ridge_C"]["value"] < 2.5
    text = analysis.summary_lines(summary)
    assert "  facet sv2 1.125, sa2 0:" in text and "  facet sv2 1.5, sa2 0.5:" in text  # the axes that vary
    assert sum("ridge log sw2" in line for line in text) == 2 * 3  # each facet's best, lr 1e-3, lr 1e-2
    assert {"heatmap.png", "lr_map.png"} <= {os.path.basename(p) for p in heatmap.write_figures(both, summary)}
    # the facets share sv2^2 / (sv2 + sa2) = 1.125, so the theory's log R nearly agrees between them at the
    # same (sw2, L): the reported spread is the largest |difference| of log chi(0) / chi(L) computed here
    log_r = []
    for v, a in pairs:
        traj = trajectory(Spec(arch="frn", act="tanh", depth=40, p0=1.0, gamma0=0.3, sw2=sw2, sv2=v, sb2=0.5, sa2=a))
        log_chi = np.asarray(traj.log_chi)
        log_r.append(log_chi[:, :1] - log_chi[:, [10, 20, 40]])
    spread = summary["predictor_across_facets"]
    assert spread["n_cells_compared"] == 30
    assert spread["max_spread"] == pytest.approx(np.abs(log_r[0] - log_r[1]).max(), rel=1e-4, abs=1e-6)
    assert spread["range"] == pytest.approx([min(r.min() for r in log_r), max(r.max() for r in log_r)], rel=1e-4)
    assert spread["max_spread"] < 0.1 * (spread["range"][1] - spread["range"][0])
    assert any("differs between the facets by at most" in line for line in text)


def test_schemes_table_compares_theory_pick_with_presets(tmp_path, capsys):
    """ReLU grid sw2 in {0.5, 1, 1.5} at L = 10, 200 (sv2 = 1, sb2 = sa2 = 0.5, p0 = 1): the theory picks
    the largest sw2 below float32 overflow, 1.5 at L = 10 and 1.0 at L = 200 (log p^(200) = 82.0 there,
    112 for 1.5). The grid's best cell is chosen on validation (sw2 0.5 at L = 200, although sw2 1.5 has
    the better test accuracy); He diverges at L = 200, so its difference there is undefined."""
    rng = np.random.default_rng(3)
    test_acc = {(0.5, 10): 0.90, (1.0, 10): 0.92, (1.5, 10): 0.95,
                (0.5, 200): 0.85, (1.0, 200): 0.80, (1.5, 200): 0.88}
    val_acc = {**test_acc, (1.5, 200): 0.70}
    main_rows, he_rows, xavier_rows = {}, {}, {}
    for L in (10, 200):
        for lr in (1e-3, 1e-2):
            for seed in range(3):
                noise = rng.normal(0, 0.003)
                for s in (0.5, 1.0, 1.5):
                    main_rows[(s, L, lr, seed)] = (val_acc[(s, L)] + noise, test_acc[(s, L)] + noise, 0)
                he_rows[(2.0, L, lr, seed)] = (0.9 + noise, 0.9 + noise, L == 200)
                xavier_rows[(1.0, L, lr, seed)] = (0.85 + noise, 0.85 + noise, 0)
    d = str(tmp_path / "relu")
    _write_sweep(d, "relu", main_rows, (0.5, 1.0, 1.5), (10, 200))
    _write_sweep(d + "_he", "relu", he_rows, (0.5, 1.0, 1.5), (10, 200), init="he")
    _write_sweep(d + "_xavier", "relu", xavier_rows, (0.5, 1.0, 1.5), (10, 200), init="xavier")
    table = analysis.analyze(d, bootstrap=200)["schemes"]
    rows = {r["depth"]: r for r in table["rows"]}
    assert [rows[10]["theory_sw2"], rows[200]["theory_sw2"]] == [1.5, 1.0]
    assert abs(rows[10]["theory"]["value"] - 0.95) < 0.01 and abs(rows[200]["theory"]["value"] - 0.80) < 0.01
    assert abs(rows[200]["grid_best"]["value"] - 0.85) < 0.01  # on validation, not the 0.88 of sw2 1.5
    assert rows[200]["he"]["value"] is None and rows[200]["theory_minus_he"]["value"] is None
    lo, hi = rows[10]["theory_minus_xavier"]["ci95"]
    assert 0.08 < lo < 0.1 < hi < 0.12
    assert table["n_theory_beats"]["xavier"] == {"above_0": 1, "below_0": 1, "neither": 0}
    assert [rows[10]["grid_best_sw2"], rows[200]["grid_best_sw2"]] == [1.5, 0.5]
    assert table["n_grid_best_beats"]["xavier"] == {"above_0": 1, "below_0": 0, "neither": 1}  # 0.85 vs 0.85
    summary = analysis.write_summary(d, bootstrap=50)
    assert any("initialization schemes" in line for line in analysis.summary_lines(summary))
    assert "schemes.png" in [os.path.basename(p) for p in heatmap.write_figures(d, summary)]
    # a preset sweep at another protocol is refused, naming what differs
    _write_sweep(d + "_xavier", "relu", {k[:2] + (1e-3,) + k[3:]: v for k, v in xavier_rows.items()},
                 (0.5, 1.0, 1.5), (10, 200), lrs=(1e-3,), init="xavier")
    with pytest.raises(ValueError, match="xavier sweep.*lr"):
        analysis.analyze(d, bootstrap=10)


def test_tanh_theory_pick_follows_the_paper_curve(tmp_path):
    from meanfield.train.schemes import TANH_SW2_L, theory_cells

    sw2 = tuple(float(f"{0.1 * 20 ** (i / 9):.4g}") for i in range(10))
    depths = (10, 100, 150, 300)
    rows = {(s, L, 1e-3, 0): (0.9, 0.9, 0) for s in sw2 for L in depths}
    d = str(tmp_path / "tanh")
    _write_sweep(d, "tanh", rows, sw2, depths, lrs=(1e-3,), seeds=1)
    _, runs = analysis.load(d)
    picks = theory_cells("tanh", runs, np.zeros(runs.n_cells))
    got = {L: runs.axes["sw2"][i] for L, i in picks.items()}
    assert got == {10: 2.0, 100: 1.434, 150: 1.028, 300: 0.5282} and TANH_SW2_L == 150


def test_divergence_is_placed_against_the_overflow_line(tmp_path):
    """ReLU: networks diverge beyond log p^(L) ~ 20 (far below float32 overflow, 88.72); the summary
    reports the threshold bracket in log p^(L) and counts divergences below the overflow line."""
    sw2, depths = (0.0, 0.5, 1.0, 1.5), (10, 60, 200, 300)
    B = {s: 1 + s / 2 for s in sw2}
    rows = {}
    for s in sw2:
        for L in depths:
            div = L * math.log(B[s]) > 20
            for seed in range(3):
                rows[(s, L, 1e-3, seed)] = (0.1 if div else 0.9, 0.1 if div else 0.9, div)
    d = str(tmp_path / "relu")
    _write_sweep(d, "relu", rows, sw2, depths, lrs=(1e-3,))
    summary = analysis.analyze(d, bootstrap=20)
    v = summary["divergence"]["per_lr"]["0.001"]
    assert v["max_log_p_none_diverged"] < v["min_log_p_all_diverged"]
    assert 15 < v["min_log_p_all_diverged"] < 30
    assert summary["divergence"]["n_cells_beyond_overflow"] == 3  # (1.5, 200), (1.0, 300), (1.5, 300)
    assert v["n_diverged_below_overflow"] == 3 * (8 - 3)


def test_cli_analyze_committed_sweep(tmp_path, capsys):
    """The analysis smoke test on a small committed sweep (tests/data/tiny_sweep): no training."""
    src = os.path.join(os.path.dirname(__file__), "data", "tiny_sweep")
    d = tmp_path / "tiny_sweep"
    d.mkdir()
    for name in ("config.json", "results.csv"):
        (d / name).write_bytes(open(os.path.join(src, name), "rb").read())
    assert main(["train", "--analyze", str(d), "--bootstrap", "40"]) == 0
    out = capsys.readouterr().out
    assert "[best]" in out and "Spearman" in out and (d / "summary.json").exists() and (d / "heatmap.png").exists()
    assert json.loads((d / "summary.json").read_text())["bootstrap"] == 40
    for bad, field in ((["--arch", "frn"], "--arch"), (["--bootstrap", "5"], "--bootstrap")):
        with pytest.raises(SystemExit) as exc:
            main(["train", "--analyze", str(d), *bad])
        assert exc.value.code == 2 and field in capsys.readouterr().err


# ------------------------------------------------------------------------------- output directory
def test_second_sweep_into_a_locked_directory_exits_2(tmp_path, capsys, no_training):
    out = tmp_path / "locked"
    with output_lock(str(out)):
        with pytest.raises(SystemExit) as exc:
            main(BASE + ["--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"process {os.getpid()}" in err and "in use" in err


def test_unwritable_out_exits_2_before_loading_data(tmp_path, capsys, no_training):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(BASE + ["--out", str(blocker / "sub")])
    assert exc.value.code == 2 and "is a file" in capsys.readouterr().err


# ------------------------------------------------------------------------------ readout and data
def test_meanfield_readout_scale_is_the_exact_relu_law():
    from meanfield.train.predictors import readout_scale

    sw2, sv2, sb2, sa2, p0 = np.array([0.5, 1.0]), 1.0, 0.5, 0.5, 1.3
    depths = np.array([7, 30])
    got = readout_scale("frn", "relu", {"alpha": np.ones(2), "sw2": sw2, "sv2": np.full(2, sv2),
                                        "sb2": np.full(2, sb2), "sa2": np.full(2, sa2)}, depths, p0, 0.2)
    B, K = 1 + sv2 * sw2 / 2, sv2 * sb2 / 2 + sa2
    p = B**depths * (p0 + K / (B - 1)) - K / (B - 1)
    np.testing.assert_allclose(got, p**-0.5, rtol=1e-10)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 784), jnp.float32)
    params = init_params(jax.random.PRNGKey(1), NetworkSettings(1.0, 1.0, 0.1, 0.1), arch="frn", width=16, depth=3)
    act = meanfield.get_activation("relu")
    plain = apply(params, 1.0, x, arch="frn", act=act) - params["out_b"]
    scaled = apply(params, 1.0, x, arch="frn", act=act, out_scale=0.25) - params["out_b"]
    np.testing.assert_allclose(scaled, 0.25 * plain, rtol=1e-5, atol=1e-6)


def test_validation_split_is_disjoint_and_deterministic(tiny_data):
    a = subset(tiny_data, 20, None, 10)
    b = subset(tiny_data, None, None, 10)
    rows = lambda x: {r.tobytes() for r in x}  # noqa: E731
    assert len(a.x_val) == 10 and not rows(a.x_val) & rows(b.x_train)
    assert len(b.x_train) == len(tiny_data.x_train) - 10
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.x_train, b.x_train[:20])
    with pytest.raises(ValueError, match="train_subset.*validation"):
        subset(tiny_data, len(tiny_data.x_train), None, 10)


def test_cli_trains_a_block_variant(tmp_path, tiny_data, monkeypatch):
    """--bottleneck, --norm and --decay-* reach the trainer (the resolved block, the decays of every
    network) and the mean-field readout (the theory of the same variant); config.json keeps them; a
    bad value exits 2 before anything is compiled."""
    from meanfield.train.predictors import readout_scale

    calls = []

    def record(var, seeds, data, **kw):
        calls.append((kw["arch"], var))
        half = np.full(len(seeds), 0.5)
        return trainer.GridResult(half, half, half, half, np.zeros(len(seeds), np.int64), half)

    monkeypatch.setattr(trainer, "train_grid", record)
    out = tmp_path / "run"
    base = ["train", "--arch", "bottleneck", "--act", "relu", "--sw2", "0.5,1.5", "--depth", "4", "--width", "8",
            "--epochs", "1", "--batch", "16", "--val-subset", "16", "--lr", "0.01", "--data",
            _npz(tmp_path, tiny_data), "--no-plots", "--no-progress"]
    argv = base + ["--bottleneck", "0.5", "--norm", "layer", "--decay-w", "1", "--decay-a", "0.5",
                   "--readout", "meanfield", "--out", str(out)]
    assert main(argv) == 0
    (block, var), = calls
    assert block == meanfield.Spec("bottleneck", "relu", 1, bottleneck=0.5, norm="layer").block
    np.testing.assert_array_equal(np.broadcast_to(var.decay_w, (2,)), 1.0)
    np.testing.assert_array_equal(np.broadcast_to(var.decay_a, (2,)), 0.5)
    variant = dict(bottleneck=0.5, norm="layer", decay_w=1.0, decay_v=0.0, decay_b=0.0, decay_a=0.5)
    points = {"alpha": np.ones(2), "sw2": np.array([0.5, 1.5]), "sv2": np.ones(2), "sb2": np.zeros(2),
              "sa2": np.zeros(2)}
    config = json.load(open(out / "config.json"))
    stats_in = config["input_stats"]["p0"], config["input_stats"]["gamma0"]
    want = readout_scale("bottleneck", "relu", points, [4, 4], *stats_in, 1.0, variant)
    np.testing.assert_allclose(var.out_scale, want, rtol=1e-6)
    plain = readout_scale("bottleneck", "relu", points, [4, 4], *stats_in)
    assert np.all(np.abs(want / plain - 1) > 0.01)
    assert {k: config["effective"][k] for k in variant} == variant
    assert effective(_tiny_sweep(arch="bottleneck")).bottleneck == 0.25  # the default, as trained
    for flags, message in ((["--bottleneck", "0.01"], "round(r N) must be >= 1"),
                           (["--arch", "rrn", "--decay-v", "1"], "--decay-v applies to --arch"),
                           (["--arch", "ff", "--norm", "layer"], "norm applies to arch")):
        with pytest.raises(SystemExit) as exc:
            main(base + ["--out", str(tmp_path / "bad")] + flags)
        assert exc.value.code == 2
