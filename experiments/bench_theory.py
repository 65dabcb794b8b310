"""Benchmark: the theory engine on a tanh FRN grid against a straightforward scipy reference.

Measures, in one run:
  * the JAX engine: all quantities (forward + backward) of a tanh FRN on a G x G grid of
    (sw2 in [0.05, 3]) x (sv2 in [0.05, 3]) to depth L, in layer-updates per second (compile excluded,
    reported separately);
  * meanfield.reference (adaptive scipy.integrate.quad per transform per layer, a Python loop) on a
    few grid points of the same sweep, to a small depth;
  * their speed ratio and the largest relative difference between the two on those points.

    python experiments/bench_theory.py              # 64 x 64 x 1000, as in the issue
    python experiments/bench_theory.py --grid 16    # a quicker look
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import meanfield as mf
from meanfield import reference
from meanfield.theory import trajectory

COMPARED = ("p", "gamma", "e", "s", "chi", "chi_b", "chi_w", "chi_v")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", type=int, default=64, help="grid side G (G x G networks)")
    ap.add_argument("--depth", type=int, default=1000)
    ap.add_argument("--sb2", type=float, default=0.3)
    ap.add_argument("--sa2", type=float, default=0.5)
    ap.add_argument("--ref-points", type=int, default=3, help="grid points run through the scipy reference")
    ap.add_argument("--ref-depth", type=int, default=8, help="depth of the scipy reference runs")
    args = ap.parse_args(argv)

    axis = np.linspace(0.05, 3.0, args.grid)
    spec = mf.Spec("frn", "tanh", args.depth, sw2=axis[:, None], sv2=axis[None, :], sb2=args.sb2, sa2=args.sa2)
    n_updates = spec.size * args.depth

    t0 = time.perf_counter()
    trajectory(spec.replace(sw2=axis[:2, None]))  # same chunk shape is not guaranteed: compile a small one
    t_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    traj = trajectory(spec)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    traj = trajectory(spec)
    t_jax = time.perf_counter() - t0
    jax_rate = n_updates / t_jax
    print(f"JAX engine: {spec.size} networks x {args.depth} layers, tanh FRN, all quantities")
    print(f"  compile + first run {t_first:.1f} s (small-grid compile {t_small:.1f} s); run {t_jax:.1f} s")
    print(f"  {jax_rate:,.0f} layer-updates/s")
    print(f"  finite: {bool(np.all(np.isfinite(traj.log_p)) and np.all(np.isfinite(traj.log_chi)))}")

    rng = np.random.default_rng(0)
    picks = rng.choice(spec.size, size=min(args.ref_points, spec.size), replace=False)
    h = spec.hyper()
    worst, worst_at = 0.0, ""
    t_ref = 0.0
    for flat in picks:
        i, j = np.unravel_index(flat, spec.shape)
        sw2, sv2 = float(h.sw2[i, j]), float(h.sv2[i, j])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            ref = reference.trajectory("frn", "tanh", args.ref_depth, sw2, sv2, args.sb2, args.sa2)
            t_ref += time.perf_counter() - t0
        # the reference's chi is normalized at its own depth: compare chi ratios via log_chi offsets
        offset = float(traj.log_chi[i, j, args.ref_depth])
        for field in COMPARED:
            got = np.asarray(getattr(traj, field))[i, j, : args.ref_depth + 1].copy()
            if field.startswith("chi"):
                got = got * np.exp(-offset)
            want = ref[field]
            ok = np.isfinite(want)
            rel = np.max(np.abs(got[ok] - want[ok]) / np.abs(want[ok]))
            if rel > worst:
                worst, worst_at = rel, f"{field} at sw2={sw2:.3f}, sv2={sv2:.3f}"
    ref_rate = len(picks) * args.ref_depth / t_ref
    print(f"scipy reference: {len(picks)} networks x {args.ref_depth} layers in {t_ref:.1f} s")
    print(f"  {ref_rate:,.2f} layer-updates/s")
    print(f"speed ratio JAX / scipy: {jax_rate / ref_rate:,.0f}x")
    print(f"largest relative difference: {worst:.2e} ({worst_at})")


if __name__ == "__main__":
    main()
