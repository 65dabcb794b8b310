"""meanfield.parallel: the same numbers on 1 device, 4 devices, and 2 processes of 2 devices each.

The multi-device and multi-process runs happen in subprocesses (XLA_FLAGS and jax.distributed must be
set before JAX starts); the two processes talk over 127.0.0.1 with gloo CPU collectives.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from meanfield import parallel

HERE = os.path.dirname(os.path.abspath(__file__))


def _block(x):
    """A per-point function with a scan, as the engines have: row i depends on row i only."""
    import jax
    import jax.numpy as jnp

    def step(c, _):
        c = jnp.tanh(c * x["a"]) + x["b"]
        return c, c

    _, ys = jax.lax.scan(step, x["a"], None, length=5)
    return {"last": ys[-1], "path": ys.T}


def test_map_points_pads_chunks_and_keeps_rows():
    a = np.linspace(0.1, 2.0, 11)
    points = {"a": a, "b": np.cos(a)}
    whole = parallel.map_points(_block, points)
    chunked = parallel.map_points(_block, points, chunk=4)
    assert whole["path"].shape == (11, 5) and chunked["last"].shape == (11,)
    np.testing.assert_array_equal(whole["last"], chunked["last"])
    one = parallel.map_points(_block, {"a": a[3:4], "b": np.cos(a[3:4])})
    np.testing.assert_array_equal(one["path"][0], whole["path"][3])
    with pytest.raises(ValueError, match="same leading length"):
        parallel.map_points(_block, {"a": a, "b": a[:3]})


def test_map_points_does_not_recompile_for_new_values():
    a = np.linspace(0.1, 2.0, 8)
    parallel.map_points(_block, {"a": a, "b": a})
    before = parallel._program.cache_info().currsize
    parallel.map_points(_block, {"a": a + 1, "b": a * 2})
    assert parallel._program.cache_info().currsize == before


_FOUR_DEVICES = """
import numpy as np, jax, sys
sys.path.insert(0, {here!r})
from meanfield import parallel
from test_parallel import _block
assert len(jax.devices()) == 4
a = np.linspace(0.1, 2.0, 11)
many = parallel.map_points(_block, {{"a": a, "b": np.cos(a)}}, chunk=6)
one = parallel.map_points(_block, {{"a": a, "b": np.cos(a)}}, mesh=jax.devices()[:1])
np.testing.assert_array_equal(many["path"], one["path"])
print("OK")
"""


def test_map_points_on_four_devices_equals_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run([sys.executable, "-c", _FOUR_DEVICES.format(here=HERE)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


# ---------------------------------------------------------------------------------- two processes
_WORKER = """
import os, sys, json
import numpy as np
sys.path.insert(0, {here!r})
from meanfield.cli import main

world = sys.argv[1:]  # the --distributed flags, or none for the single-process reference
train = ["train", "--arch", "frn", "--act", "tanh", "--depth", "2,3", "--sw2", "0.5,1.5", "--sv2", "1",
         "--sb2", "0.1", "--sa2", "0.1", "--width", "8", "--epochs", "2", "--batch", "16", "--seeds", "2",
         "--lr", "0.01", "--train-subset", "64", "--val-subset", "16", "--test-subset", "32",
         "--data", {data!r}, "--out", {out!r}, "--no-plots", "--no-progress"]
assert main(world + train) == 0
import jax
from meanfield import parallel
from test_parallel import _block, _points, _theory_spec

import meanfield as mf

grid = parallel.map_points(_block, _points(), chunk=6)
theory = mf.theory.trajectory(_theory_spec(), chunk_size=6)
sim = mf.simulate.networks(mf.Spec("frn", "relu", 6, sw2=np.array([0.5, 1.0, 1.5])), 16, 5, jax.random.key(7),
                           dtype="float64")
if parallel.is_writer():
    np.savez({out!r} + "/grid.npz", **grid, theory_p=theory.p, theory_chi=theory.chi, theory_log_R=theory.log_R,
             sim_p=sim.p, sim_chi=sim.chi, sim_s=sim.s)
    json.dump({{"processes": jax.process_count(), "devices": jax.device_count()}}, open({out!r} + "/world.json", "w"))
print("OK", jax.process_index())
"""


_LIGHT_WORKER = """
import sys
import numpy as np
sys.path.insert(0, {here!r})
import jax
flags = dict(zip(sys.argv[2::2], sys.argv[3::2]))  # after --distributed: the flags _run_world gives the CLI
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=flags["--coordinator"], num_processes=int(flags["--num-processes"]),
                           process_id=int(flags["--process-id"]))
from meanfield import parallel
from test_parallel import _block, _points, _theory_spec

import meanfield as mf

grid = parallel.map_points(_block, _points(), chunk=6)
theory = mf.theory.trajectory(_theory_spec(), chunk_size=6)
if parallel.is_writer():
    np.savez({out!r}, **grid, theory_p=theory.p, theory_log_R=theory.log_R, devices=jax.device_count())
print("OK", jax.process_index())
"""


def _points():
    a = np.linspace(0.1, 2.0, 11)
    return {"a": a, "b": np.cos(a)}


def _theory_spec():
    import meanfield as mf

    return mf.Spec("frn", "tanh", 12, sw2=np.linspace(0.1, 2.0, 7)[:, None], sv2=np.array([1.0, 1.5]), sb2=0.3,
                   sa2=0.5)


def test_two_processes_map_points_and_theory_as_one(tmp_path):
    """The point map and a theory grid on 2 processes x 2 CPU devices (jax.distributed, gloo): bitwise the
    numbers of this single process (the full check, training and simulation included, runs with -m slow)."""
    import meanfield as mf

    out = str(tmp_path / "grid.npz")
    _run_world(_LIGHT_WORKER.format(here=HERE, out=out), 2, 2)
    got = np.load(out)
    assert int(got["devices"]) == 4
    want = parallel.map_points(_block, _points(), chunk=6)
    theory = mf.theory.trajectory(_theory_spec(), chunk_size=6)
    for k, v in {**want, "theory_p": theory.p, "theory_log_R": theory.log_R}.items():
        np.testing.assert_array_equal(got[k], np.asarray(v), err_msg=k)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_world(script: str, n_proc: int, devices_per_process: int) -> None:
    """Run ``python -c script`` in n_proc processes with the CLI's --distributed flags (none for one)."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}")
    port = _free_port()
    world = lambda i: ([] if n_proc == 1 else  # noqa: E731
                       ["--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n_proc),
                        "--process-id", str(i)])
    procs = [subprocess.Popen([sys.executable, "-c", script, *world(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(n_proc)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (so, se) in zip(procs, outs):
        assert p.returncode == 0 and "OK" in so, se[-3000:]


@pytest.mark.slow  # three fresh JAX processes compile and train (about 100 s); the point map and theory on two
# processes run by default (the test above)
def test_two_processes_give_the_single_process_numbers(tmp_path):
    """``meanfield --distributed ... train``, a theory grid, a simulation grid and :func:`map_points` on
    2 processes x 2 CPU devices (jax.distributed, gloo) against 1 process x 1 device: the point map and
    the theory are bitwise equal, the simulation and the training sweep have the same networks with the
    same numbers."""
    pytest.importorskip("optax")
    from test_train import _write_idx_dir

    data = tmp_path / "idx"
    data.mkdir()
    _write_idx_dir(data, n_train=96, n_test=32)
    multi, single = str(tmp_path / "multi"), str(tmp_path / "single")
    _run_world(_WORKER.format(here=HERE, out=multi, data=str(data)), 2, 2)
    _run_world(_WORKER.format(here=HERE, out=single, data=str(data)), 1, 1)
    assert json.load(open(os.path.join(multi, "world.json"))) == {"processes": 2, "devices": 4}
    g_multi, g_single = np.load(os.path.join(multi, "grid.npz")), np.load(os.path.join(single, "grid.npz"))
    for k in ("last", "path", "theory_p", "theory_chi", "theory_log_R"):
        np.testing.assert_array_equal(g_multi[k], g_single[k], err_msg=k)
    for k in ("sim_p", "sim_chi", "sim_s"):  # same keys, same networks: equal up to the order of float sums
        np.testing.assert_allclose(g_multi[k], g_single[k], rtol=1e-12, err_msg=k)

    from meanfield.train.sweep import read_results

    r_multi, r_single = (read_results(os.path.join(d, "results.csv")) for d in (multi, single))
    assert len(r_multi["test_acc"]) == len(r_single["test_acc"]) == 8

    def by_key(r):
        keys = list(zip(r["sw2"], r["depth"], r["seed"]))
        return {k: (r["test_acc"][i], r["val_acc"][i], r["test_loss"][i]) for i, k in enumerate(keys)}

    m, s = by_key(r_multi), by_key(r_single)
    assert m.keys() == s.keys()
    for k in m:
        np.testing.assert_allclose(m[k], s[k], rtol=1e-5, atol=1e-6)
