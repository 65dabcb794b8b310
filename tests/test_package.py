"""The package as a user meets it: start-up without jax, no global side effects, python -m, pipes, extras.

Each check runs in a fresh interpreter (a subprocess), since the question is what a first import or a
first command does to a process.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, **kw)


# Runs the command line in-process, then reports which heavy modules it imported.
_CLI_MODULES = """
import sys
from meanfield.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("jax", "optax", "matplotlib", "scipy") if m in sys.modules)
print("EXIT", code, "HEAVY", ",".join(heavy) or "-", file=sys.stderr)
"""

BAD = ["theory", "--arch", "frn", "--act", "tanh", "--depth", "3"]


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["theory", "--help"],
    ["simulate", "--help"],
    ["laws", "--help"],
    ["figures", "--help"],
    [],
    ["bogus"],
    BAD + ["--sw2", "-1"],
    BAD + ["--sw2", "1", "--alpha", "0.2"],
    BAD[:-1] + ["1000000000", "--sw2", "1", "--max-memory", "1"],
    ["simulate", "--arch", "frn", "--act", "relu", "--sw2", "1", "--depth", "5", "--width", "2", "--samples", "4"],
    ["laws", "--arch", "frn", "--act", "tanh", "--sw2", "1", "--p0", "2"],
], ids=lambda a: " ".join(a) or "no-args")
def test_help_and_input_errors_do_not_import_jax(argv):
    result = _python(_CLI_MODULES, *argv)
    last = result.stderr.strip().splitlines()[-1]
    assert last.endswith("HEAVY -"), result.stderr
    assert last.startswith("EXIT 0" if "--help" in argv else "EXIT 2"), result.stderr


def test_import_meanfield_is_lazy_and_names_still_resolve():
    code = ("import sys, meanfield as mf\n"
            "assert 'jax' not in sys.modules, 'import meanfield imported jax'\n"
            "assert mf.Spec('frn', 'relu', 2).act is mf.relu\n"
            "assert 'optax' not in sys.modules and 'matplotlib' not in sys.modules\n"
            "assert callable(mf.theory.trajectory) and callable(mf.simulate.simulate)\n"
            "assert {'Spec', 'theory', 'Trajectory'} <= set(dir(mf))\n"
            "print('ok')")
    result = _python(code)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("x64", [pytest.param(False, marks=pytest.mark.slow), True])
def test_running_meanfield_leaves_the_users_x64_setting_alone(x64):
    code = f"""
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", {x64})
import meanfield as mf
from meanfield import asymptotics, simulate, theory
t = theory.trajectory(mf.Spec("frn", "tanh", 5, sw2=1.0, sb2=0.1))
assert t.p.dtype == np.float64 and t.log_R.dtype == np.float64
mean, _ = simulate.simulate(mf.Spec("frn", "relu", 3), 8, 2, jax.random.key(0), dtype="float64")
assert mean.p.dtype == np.float64
asymptotics.predict("frn", "tanh", sw2=1.0)
alpha_laws = asymptotics.predict("frn", "alpha_relu", sw2=1.0, alpha=0.75)
asymptotics.measure(theory.trajectory(mf.Spec("frn", "alpha_relu", 64, alpha=0.75)), alpha_laws)
asymptotics.ff_q_star(mf.tanh, 1.0, 0.1)
assert jax.config.jax_enable_x64 is {x64}
assert jnp.ones(2).dtype == ("float64" if {x64} else "float32")
print("ok")
"""
    result = _python(code)
    assert result.stdout.strip() == "ok", result.stderr


def test_python_dash_m_meanfield():
    result = subprocess.run([sys.executable, "-m", "meanfield", "--help"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0
    assert "theory" in result.stdout and "simulate" in result.stdout and "usage: meanfield" in result.stdout


def test_closed_pipe_ends_quietly():
    # the reader (``| head -1``) goes away after one line: no BrokenPipeError traceback
    cmd = [sys.executable, "-m", "meanfield", "theory", "--arch", "frn", "--act", "relu", "--sw2", "1",
           "--depth", "20000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 1


def test_help_texts_cite_the_docs_in_the_repository():
    from meanfield.cli import build_parser

    texts = [build_parser([]).format_help()]
    for name in ("theory", "simulate", "laws", "figures"):
        parser = build_parser([name])
        sub = next(a for a in parser._actions if isinstance(getattr(a, "choices", None), dict))
        texts.append(sub.choices[name].format_help())
    joined = "\n".join(texts)
    assert "docs/theory.md" in joined
    for stale in ("THEORY.md", "``", "issue #"):
        assert stale not in joined, stale
    assert os.path.isfile(os.path.join(ROOT, "docs", "theory.md"))


def test_missing_extra_names_the_pip_command():
    from meanfield._extras import MissingExtra, require

    with pytest.raises(MissingExtra, match=r'pip install "meanfield\[plot\]"'):
        require("matplotlib_is_not_a_module", "plot", "plotting")
    assert require("math", "plot").sqrt(4.0) == 2.0


def test_spec_names_agree_with_the_activation_module():
    import meanfield as mf
    from meanfield.activations import BUILTIN
    from meanfield.spec import ACTIVATIONS, ALPHA_ACTIVATIONS

    assert set(ACTIVATIONS) == set(BUILTIN)
    assert {name for name, act in BUILTIN.items() if act.has_alpha} == set(ALPHA_ACTIVATIONS)
    assert mf.Spec("frn", "erf", 1).act is BUILTIN["erf"]
