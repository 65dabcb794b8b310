"""Start-up of the command line: wall time of ``meanfield --help`` and friends against ``python -c pass``.

Each command runs in a fresh interpreter, interleaved with the baseline, ``--repeats`` times; the median
is printed with its ratio to the baseline measured in the same run. The last column says whether the
command imported jax (it should not: help and input errors answer before any engine loads). A
successful theory call, which must import jax, is the reference for how much that saves.

    python experiments/bench_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

PROBE = ("import sys, runpy; sys.argv = ['meanfield'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('meanfield', run_name='__main__')\n"
         "except SystemExit:\n    pass\n"
         "print('JAX' if 'jax' in sys.modules else 'NOJAX', file=sys.stderr)")

COMMANDS = {
    "meanfield --help": ["--help"],
    "meanfield theory --help": ["theory", "--help"],
    "meanfield simulate --help": ["simulate", "--help"],
    "bad input (--sw2 -1)": ["theory", "--arch", "frn", "--act", "tanh", "--sw2", "-1", "--depth", "3"],
    "inapplicable flag (--alpha)": ["theory", "--arch", "frn", "--act", "tanh", "--sw2", "1", "--alpha", "0.5",
                                    "--depth", "3"],
    "too deep (--depth 1e9)": ["theory", "--arch", "frn", "--act", "tanh", "--sw2", "1", "--depth", "1000000000"],
    "theory, depth 10 (imports jax)": ["theory", "--arch", "frn", "--act", "relu", "--sw2", "1", "--depth", "10"],
}


def _time(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    tail = result.stderr.strip().splitlines()
    return elapsed, (tail[-1] if tail else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    base, times, jax_seen = [], {k: [] for k in COMMANDS}, {}
    for _ in range(args.repeats):
        base.append(_time([sys.executable, "-c", "pass"])[0])
        for name, argv in COMMANDS.items():
            elapsed, marker = _time([sys.executable, "-c", PROBE, *argv])
            times[name].append(elapsed)
            jax_seen[name] = marker
    b = statistics.median(base)
    print(f"{'command':<34} {'median s':>9} {'x python -c pass':>17}  jax imported")
    print(f"{'python -c pass':<34} {b:>9.3f} {1.0:>17.1f}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:<34} {m:>9.3f} {m / b:>17.1f}  {'yes' if jax_seen[name] == 'JAX' else 'no'}")


if __name__ == "__main__":
    main()
