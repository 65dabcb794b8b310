"""Benchmark: the theory engine, tanh (tabulated transforms) against erf (closed forms), and against scipy.

Measures, in one run (all timings: the best of several interleaved repeats, compile excluded):
  * the tanh table: built or read from the cache, how long that took, its recorded errors;
  * one trajectory (tanh FRN (sw2, sv2, sb2, sa2) = (1.69, 1.5, 0.49, 0.5), all quantities, forward and
    backward) to depth 1e4: tanh and erf in us per layer, and their ratio; also tanh through its
    quadrature rules alone (the path before the tables), to a smaller depth;
  * the same trajectory with ``custom(erf)`` (a table built from the generic rules) against erf's closed
    form, and how long that table took to build;
  * a G x G grid of (sw2 in [0.05, 3]) x (sv2 in [0.05, 3]) to depth L: tanh and erf in us per
    point-layer, and their ratio;
  * meanfield.reference (adaptive scipy.integrate.quad per transform per layer, a Python loop) on a
    few points of the tanh grid to a small depth: the speed ratio and the largest relative difference.

Wall and CPU (process) time are both printed: on a loaded machine the CPU time is the steadier one.

    python experiments/bench_theory.py              # depth 1e4 trajectory, 64 x 64 x 1000 grid
    python experiments/bench_theory.py --grid 16    # a quicker look
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import jax
import numpy as np

import meanfield as mf
from meanfield import reference
from meanfield.theory import trajectory

COMPARED = ("p", "gamma", "e", "s", "chi", "chi_b", "chi_w", "chi_v")
FRN = dict(sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5)


def best_times(runs: dict, repeats: int) -> dict:
    """{name: (wall, cpu)} best of ``repeats`` rounds, the runs interleaved within each round."""
    for run in runs.values():  # compile
        run()
    best = {name: [np.inf, np.inf] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            run()
            best[name][0] = min(best[name][0], time.perf_counter() - w0)
            best[name][1] = min(best[name][1], time.process_time() - c0)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--single-depth", type=int, default=10_000, help="depth of the one-trajectory timing")
    ap.add_argument("--grid", type=int, default=64, help="grid side G (G x G networks)")
    ap.add_argument("--depth", type=int, default=1000, help="depth of the grid")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats per timing (best is kept)")
    ap.add_argument("--sb2", type=float, default=0.3, help="sb2 of the grid")
    ap.add_argument("--sa2", type=float, default=0.5, help="sa2 of the grid")
    ap.add_argument("--ref-points", type=int, default=3, help="grid points run through the scipy reference")
    ap.add_argument("--ref-depth", type=int, default=8, help="depth of the scipy reference runs")
    args = ap.parse_args(argv)

    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    flags = os.environ.get("XLA_FLAGS", "")
    print(f"XLA_FLAGS: {flags or '(none)'}")

    t0 = time.perf_counter()
    table = mf.tanh.table.get()
    t_table = time.perf_counter() - t0
    how = "built" if table.source == "built" else f"read from {table.source}"
    print(f"tanh table: {how} in {t_table:.1f} s (a build took {table.build_seconds:.1f} s)")
    print("  largest differences from its quadrature rules: "
          + ", ".join(f"{k} {v:.1e}" for k, v in table.errors.items()))

    L = args.single_depth
    single = {act: mf.Spec("frn", act, L, **FRN) for act in ("erf", "tanh")}
    L_quad = max(1, L // 10)
    quad = mf.Spec("frn", mf.tanh.exact, L_quad, **FRN)
    t = best_times({"erf": lambda: trajectory(single["erf"]), "tanh": lambda: trajectory(single["tanh"]),
                    "quad": lambda: trajectory(quad)}, args.repeats)
    us = {k: (w / (L_quad if k == "quad" else L) * 1e6, c / (L_quad if k == "quad" else L) * 1e6)
          for k, (w, c) in t.items()}
    print(f"one trajectory, tanh FRN {FRN}, depth {L}, all quantities (us per layer, wall / CPU):")
    print(f"  erf  {us['erf'][0]:8.3f} / {us['erf'][1]:.3f}")
    print(f"  tanh {us['tanh'][0]:8.3f} / {us['tanh'][1]:.3f}   ratio tanh / erf: "
          f"{us['tanh'][0] / us['erf'][0]:.2f} (wall), {us['tanh'][1] / us['erf'][1]:.2f} (CPU)")
    print(f"  tanh by quadrature alone (depth {L_quad}): {us['quad'][0]:.1f} / {us['quad'][1]:.1f}, "
          f"{us['quad'][1] / us['tanh'][1]:.0f}x the table (CPU)")

    t0 = time.perf_counter()
    myerf = mf.custom(jax.scipy.special.erf, odd=True, name="erf_custom")
    custom_table = myerf.table.get()
    t_custom = time.perf_counter() - t0
    how = "built" if custom_table.source == "built" else f"read from {custom_table.source}"
    print(f"custom(erf) table (q in [1e-6, 1e8]): {how} in {t_custom:.1f} s "
          f"(a build took {custom_table.build_seconds:.1f} s); largest difference from its rules "
          f"{max(custom_table.errors.values()):.1e}")
    custom_spec = mf.Spec("frn", myerf, L, **FRN)
    t = best_times({"erf": lambda: trajectory(single["erf"]), "custom": lambda: trajectory(custom_spec)},
                   args.repeats)
    got, want = trajectory(custom_spec), trajectory(single["erf"])
    diff = max(float(np.max(np.abs(getattr(got, f) / getattr(want, f) - 1))) for f in ("p", "e", "s", "chi"))
    print(f"  one trajectory, depth {L}: custom(erf) {t['custom'][1] / L * 1e6:.3f} us/layer (CPU), "
          f"{t['custom'][1] / t['erf'][1]:.2f}x erf's closed form; largest relative difference {diff:.1e}")

    axis = np.linspace(0.05, 3.0, args.grid)
    grid = {act: mf.Spec("frn", act, args.depth, sw2=axis[:, None], sv2=axis[None, :], sb2=args.sb2, sa2=args.sa2)
            for act in ("erf", "tanh")}
    n_updates = grid["tanh"].size * args.depth
    t = best_times({act: (lambda s=s: trajectory(s)) for act, s in grid.items()}, max(1, args.repeats // 2))
    us = {k: (w / n_updates * 1e6, c / n_updates * 1e6) for k, (w, c) in t.items()}
    print(f"grid {args.grid} x {args.grid} x {args.depth} (sw2, sv2 in [0.05, 3], sb2 {args.sb2}, sa2 {args.sa2}), "
          "us per point-layer, wall / CPU:")
    print(f"  erf  {us['erf'][0]:8.3f} / {us['erf'][1]:.3f}")
    print(f"  tanh {us['tanh'][0]:8.3f} / {us['tanh'][1]:.3f}   ratio tanh / erf: "
          f"{us['tanh'][0] / us['erf'][0]:.2f} (wall), {us['tanh'][1] / us['erf'][1]:.2f} (CPU); "
          f"tanh grid {t['tanh'][0]:.1f} s, {n_updates / t['tanh'][0]:,.0f} layer-updates/s")

    spec = grid["tanh"]
    traj = trajectory(spec)
    jax_rate = n_updates / t["tanh"][0]
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
    print(f"scipy reference: {len(picks)} networks x {args.ref_depth} layers in {t_ref:.1f} s, "
          f"{ref_rate:,.2f} layer-updates/s")
    print(f"  speed ratio JAX tanh grid / scipy: {jax_rate / ref_rate:,.0f}x")
    print(f"  largest relative difference: {worst:.2e} ({worst_at})")


if __name__ == "__main__":
    main()
