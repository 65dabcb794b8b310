"""``meanfield figures``: rebuild the figures of figures/ (see figures/README.md)."""

from __future__ import annotations

import time

from . import SUMMARY
from .common import die

CHOICES = ("dynamics", "blocks", "branch_scale", "tanh_gradients", "phase_diagram", "exponents")


def register(sub) -> None:
    parser = sub.add_parser(
        "figures", help=SUMMARY["figures"],
        description="Rebuild figures/*.png and figures/exponents.md: theory trajectories (lines), finite-width "
                    "simulations (markers with error bars) and the asymptotic laws (dashed). The default "
                    "setting takes a few minutes on 2 CPU cores; --full uses the longer depths and larger "
                    "simulations of the paper-quality run. Each figure is described in docs/figures.md.")
    parser.add_argument("--out", default="figures", help="output directory (default figures/)")
    parser.add_argument("--full", action="store_true",
                        help="paper depths: tanh theory 1e5, alpha-ReLU 1e6, simulations width 2048 x 32 to l = 300")
    parser.add_argument("--only", nargs="+", choices=CHOICES, metavar="NAME",
                        help=f"rebuild only these ({', '.join(CHOICES)})")
    parser.set_defaults(func=run)


def run(args) -> int:
    import os

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        die(f"--out must be a directory, got the file {args.out!r}")
    from .. import figures  # after validation: importing jax and matplotlib is the slow part

    settings = figures.FULL if args.full else figures.QUICK
    t0 = time.perf_counter()
    try:
        figures.build_all(args.out, settings, only=args.only)
    except OSError as err:
        die(f"cannot write to {args.out!r}: {err.strerror}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0
