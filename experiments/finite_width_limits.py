"""Where the infinite-width theory stops predicting finite networks: prints tables, asserts nothing.

    python experiments/finite_width_limits.py            # widths 128 to 8192, 32 networks each (minutes)
    python experiments/finite_width_limits.py --quick    # widths 512 and 2048, 16 networks

The mean-field recursion is the N -> infinity limit; at width N every quantity carries an O(1/N)
correction. For most blocks it stays a relative O(L/N) (``tests/test_simulate.py`` allows C L / N), but
for the mean-tracking reduced residual network with a non-odd activation (``rrn`` + ReLU: x <- x + phi(W x + b)
adds phi's mean M(q) > 0 to every coordinate) the stream acquires a common mean direction mu 1 that
dominates p, while the two inputs' difference x - x' shrinks (1 - e falls about 0.69x per layer here). The
finite-width fluctuation of that large common part, of relative order 1/N of p, leaks into the tiny
difference s = |x - x'|^2 / N = 2 p (1 - e) and into the backward pass: the relative error of s is about
C / (N (1 - e)), growing geometrically with depth instead of linearly.

Measured with the fast (exact) sampler in float64 against :func:`meanfield.theory.trajectory`, per network
(``meanfield.simulate.networks``): the ratio sim / theory of

* s^(l) = |x - x'|^2 / N at layer l of one depth-``--depth`` network (the forward error after l layers);
* chi^(0) of networks of depth L (the backward error over L layers; chi^(L) = 1 exactly).

Reported: the median ratio over the networks (the typical network; the mean is dominated by a few
outliers once the ratio is far from 1) and, per width, the first depth at which it is off by more than
10%, the ratio's growth per layer and the constant C = N (1 - e) |s ratio - 1|. The other residual blocks with ReLU (frn, preact, basic: each
branch ends in a dense layer, so the stream stays centred) and the tanh rrn (odd: no mean) are the
controls, at N = 512 and the full depth.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

import meanfield as mf
from meanfield.simulate import networks
from meanfield.theory import trajectory

#: The networks: the rrn of the dynamics figures (sw2 = 1, sb2 = 0.5) and the residual ReLU controls.
NETS = {
    "rrn relu": ("rrn", "relu", dict(sw2=1.0, sb2=0.5)),
    "rrn tanh": ("rrn", "tanh", dict(sw2=1.0, sb2=0.5)),
    "frn relu": ("frn", "relu", dict(sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5)),
    "preact relu": ("preact", "relu", dict(sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5)),
    "basic relu": ("basic", "relu", dict(sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5)),
}
TOLERANCE = 0.1  # "stops predicting": the typical network is off by more than 10%
CONTROL_WIDTH = 512


def median_ratios(spec: mf.Spec, width: int, samples: int, seed: int) -> dict:
    """Median over ``samples`` networks of s / theory and chi / theory, per layer (shape (L + 1,) each)."""
    per = networks(spec, width, samples, jax.random.key(seed), "fast", "float64")
    th = trajectory(spec)
    return {f: np.median(np.asarray(getattr(per, f)) / np.asarray(getattr(th, f)), axis=0) for f in ("s", "chi")}


def first_off(depths, ratios) -> str:
    off = [d for d, r in zip(depths, ratios) if abs(r - 1) > TOLERANCE]
    return str(off[0]) if off else f"> {list(depths)[-1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="widths 512 and 2048, 16 networks")
    parser.add_argument("--depth", type=int, default=50, help="deepest network (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    widths = (512, 2048) if args.quick else (128, 512, 2048, 8192)
    samples = 16 if args.quick else 32
    L = args.depth
    chi_depths = [d for d in (5, 10, 15, 20, 25, 30, 40, 50, 75, 100) if d <= L]
    start = time.perf_counter()
    print(f"median over {samples} networks of sim / theory (fast sampler, float64, p0 = 1, gamma0 = 0.5, "
          f"seed {args.seed}); first depth off by more than {TOLERANCE:.0%}\n")
    arch, act, kw = NETS["rrn relu"]
    deep = mf.Spec(arch, act, L, p0=1.0, gamma0=0.5, **kw)
    at = [l for l in (10, 20, 30, 40) if l < L] + [L]
    print(f"## rrn relu ({', '.join(f'{k} {v:g}' for k, v in kw.items())})")
    print(f"| N | s^(l) off from l | s ratio at l = {', '.join(map(str, at))} | chi^(0) off from L | "
          f"chi^(0) ratio at L = {', '.join(map(str, chi_depths))} |")
    print("|---|---|---|---|---|")
    s_by_width = {}
    for n in widths:
        s = s_by_width[n] = median_ratios(deep, n, samples, args.seed)["s"]
        chi0 = [median_ratios(deep.replace(depth=d), n, samples, args.seed)["chi"][0] for d in chi_depths]
        print(f"| {n} | {first_off(range(L + 1), s)} | {', '.join(f'{s[l]:.3g}' for l in at)} | "
              f"{first_off(chi_depths, chi0)} | {', '.join(f'{c:.3g}' for c in chi0)} |", flush=True)
    late = np.arange(L // 2, L + 1)
    gap = 1.0 - np.asarray(trajectory(deep).e)
    for n, s in s_by_width.items():
        growth = np.exp(np.polyfit(late, np.log(np.abs(s[late] - 1)), 1)[0])
        c = np.median(n * gap[late] * np.abs(s[late] - 1))
        print(f"N = {n}: over l = {L // 2}..{L}, |s ratio - 1| grows {growth:.2f}x per layer "
              f"(1 - e of the theory falls {np.exp(np.polyfit(late, np.log(gap[late]), 1)[0]):.2f}x); "
              f"median of N (1 - e) |s ratio - 1| = {c:.2f}")
    n = CONTROL_WIDTH
    print(f"\n## controls at N = {n}, depth {L}")
    print("| network | max over l of abs(s ratio - 1) | chi^(0) ratio at L |")
    print("|---|---|---|")
    for name, (arch, act, kw) in NETS.items():
        if name == "rrn relu":
            continue
        spec = mf.Spec(arch, act, L, p0=1.0, gamma0=0.5, **kw)
        ratios = median_ratios(spec, n, samples, args.seed)
        s, chi0 = ratios["s"], ratios["chi"][0]
        print(f"| {name} ({', '.join(f'{k} {v:g}' for k, v in kw.items())}) | {np.max(np.abs(s - 1)):.3g} | "
              f"{chi0:.3g} |", flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
