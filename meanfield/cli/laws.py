"""``meanfield laws``: the predicted asymptotic laws of one network, optionally measured on its trajectory."""

from __future__ import annotations

import json
import sys

from ..blocks import BLOCKS
from ..spec import DEPTH_SCALES
from . import SUMMARY
from .common import add_spec_args, die, json_ready, spec_from_args

#: Keys always present in the output (null where a law does not apply), in this order.
KEYS = ("e_star", "delta_star", "p_exponent", "log_B", "A", "R_exponent")
EXTRA = ("p_prefactor", "s_exponent", "one_minus_e_coef", "q_star", "chi_1", "c_star", "xi_q", "xi_c")


def register(sub) -> None:
    parser = sub.add_parser(
        "laws", help=SUMMARY["laws"],
        description="Print the predicted laws of one network: e_star, delta_star (|e - e*| ~ l^-delta*), "
                    "p_exponent (p ~ l^k; null where growth is exponential), log_B (ReLU: R = B^L), A "
                    "(tanh: R = exp(A sqrt L)) and R_exponent (alpha-ReLU: R ~ L^k), null where a law does "
                    "not apply; for --arch ff the feedforward q*, chi_1, c*, xi_q, xi_c. With --measure "
                    "--depth L, also the values read off the theory trajectory of depth L over its last "
                    "octave, each with its drift from the octave before (docs/theory.md, section 5).")
    add_spec_args(parser, formats=("table", "json"), depth_help=None, modifiers=True)
    parser.add_argument("--measure", action="store_true",
                        help="also measure the laws on the theory trajectory of depth --depth")
    parser.add_argument("--depth", type=int, default=None,
                        help="depth L >= 8 of the measured trajectory (required with --measure; tanh 1e4 "
                             "takes seconds, ReLU and alpha-ReLU 1e5 about as long)")
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.measure and args.depth is None:
        die("--measure needs --depth L (the depth of the measured trajectory)")
    if not args.measure:
        given = [f"--{k}" for k in ("depth", "p0", "gamma0") if getattr(args, k) is not None]
        if given:
            die(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} with --measure only "
                "(the predicted laws do not depend on the depth or the inputs)")
    if args.measure and not BLOCKS[args.arch].residual:
        residual = ", ".join(name for name, block in BLOCKS.items() if block.residual)
        why = ("no law is derived for a gated block" if "sg2" in BLOCKS[args.arch].fields
               else "feedforward laws are fixed points")
        die(f"--measure applies to residual networks ({residual}): {why}")
    if args.depth is not None and (args.depth < 8):
        die(f"depth must be an integer >= 8 to measure a tail slope, got {args.depth!r}")
    scale = getattr(args, "branch_scale", None)
    if scale is not None and scale.replace(" ", "") in DEPTH_SCALES:
        die(f"--branch-scale {scale} makes every depth its own network: laws take a constant branch scale "
            "(`meanfield figures --only branch_scale` draws the depth-scaled limit)")
    spec = spec_from_args(args, depth=args.depth or 1)
    from .. import asymptotics as asy  # after validation: importing jax is the slow part

    h = spec.hyper()
    try:
        laws = asy.predict(args.arch, args.act, sw2=float(h.sw2), sv2=float(h.sv2), sb2=float(h.sb2),
                           sa2=float(h.sa2), alpha=float(h.alpha), branch_scale=float(h.branch_scale),
                           sg2=float(h.sg2), gate_bias=float(h.gate_bias))
    except ValueError as err:
        die(str(err))
    d = laws.as_dict()
    payload = {"arch": laws.arch, "act": laws.act, "alpha": laws.alpha, **laws.params}
    payload.update({k: d[k] for k in KEYS + EXTRA})
    payload["laws"] = d["laws"]
    if args.measure:
        payload["depth"] = args.depth
        payload["measured"] = asy.measured_laws(spec, laws)["measured"]
    payload = json_ready(payload)
    if args.format == "json":
        json.dump(payload, sys.stdout)
        sys.stdout.write("\n")
        return 0
    out = sys.stdout
    out.write(f"{payload['arch']} {payload['act']}"
              + (f" alpha={payload['alpha']}" if payload["alpha"] is not None else "")
              + "  " + "  ".join(f"{k}={payload[k]:g}" for k in ("sw2", "sv2", "sb2", "sa2")) + "\n")
    measured = payload.get("measured", {})
    header = f"{'law':<20} {'predicted':>14}" + (f" {'measured L=' + str(args.depth):>16} {'drift':>10}"
                                                 if args.measure else "")
    out.write(header + "\n")
    fmt = lambda v: "null" if v is None else f"{v:.6g}"  # noqa: E731
    for k in KEYS + EXTRA + ("delta_reduced", "delta_star_corrected"):
        pred = payload.get(k)
        m = measured.get(k)
        if pred is None and m is None and k not in KEYS:
            continue
        row = f"{k:<20} {fmt(pred):>14}"
        if args.measure:
            row += f" {fmt(m['value']) if m else '-':>16} {fmt(m['drift']) if m else '-':>10}"
        out.write(row + "\n")
    for k, v in payload["laws"].items():
        out.write(f"  {k}: {v}\n")
    return 0
