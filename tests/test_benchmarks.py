"""The trainer's benchmark runs end to end at a tiny size (its speed is measured by running it, never in
a test: see experiments/bench_train.py). About 20 s of compilation, so it is left out of the default run:
``python -m pytest -m slow tests/test_benchmarks.py``."""

import importlib.util
import os

import pytest

pytest.importorskip("optax")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "experiments", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_train_prints_the_trainer_rate_against_jnp_dot(capsys):
    _script("bench_train").main(["--grid", "2", "--depth", "2", "--width", "8", "--batch", "8",
                                 "--train-subset", "64", "--test-subset", "16", "--repeats", "1",
                                 "--host-devices", "1"])
    out = capsys.readouterr().out
    assert "vmapped grid" in out and "one by one" in out and "speed-up:" in out
    assert "GFLOP/s" in out and "of jnp.dot on the same shapes" in out
