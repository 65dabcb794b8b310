"""Flags, validation and output formats shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from ..activations import BUILTIN
from ..spec import ARCHS, Spec
from ..trajectory import FIELDS, Trajectory, json_name


def die(message: str) -> None:
    """One clear line on stderr and exit code 2 (bad input)."""
    print(f"meanfield: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def add_spec_args(parser: argparse.ArgumentParser, *, archs=ARCHS, formats=("table", "json", "csv"),
                  depth_help: str | None = "number of layers L >= 1") -> None:
    """The network flags of ``meanfield theory`` (and of every subcommand that takes one network).

    ``depth_help=None`` leaves --depth out, for a subcommand that defines its own.
    """
    parser.add_argument("--arch", required=True, choices=archs, help="network architecture")
    parser.add_argument("--act", required=True, choices=sorted(BUILTIN), help="activation")
    parser.add_argument("--alpha", type=float, default=1.0, help="alpha-ReLU exponent in (1/2, 1] (default 1)")
    for name, default, what in (("sw2", None, "sigma_w^2"), ("sv2", 1.0, "sigma_v^2 (frn only)"),
                                ("sb2", 0.0, "sigma_b^2"), ("sa2", 0.0, "sigma_a^2 (frn only)")):
        kw = {"required": True} if default is None else {"default": default}
        parser.add_argument(f"--{name}", type=float, help=f"{what}, >= 0"
                            + ("" if default is None else f" (default {default})"), **kw)
    if depth_help is not None:
        parser.add_argument("--depth", type=int, required=True, help=depth_help)
    parser.add_argument("--p0", type=float, default=1.0, help="input squared length |x0|^2/N > 0 (default 1)")
    parser.add_argument("--gamma0", type=float, default=0.5,
                        help="input inner product x0.x0'/N, |gamma0| <= p0 (default 0.5)")
    if formats:
        parser.add_argument("--format", choices=formats, default=formats[0], help="output format")


def spec_from_args(args: argparse.Namespace, depth: int | None = None) -> Spec:
    """Build and validate the Spec (``depth`` overrides ``args.depth``); bad input exits with code 2 and
    one line naming the field."""
    try:
        return Spec(arch=args.arch, act=args.act, depth=args.depth if depth is None else depth, sw2=args.sw2,
                    sv2=args.sv2,
                    sb2=args.sb2, sa2=args.sa2, alpha=args.alpha, p0=args.p0, gamma0=args.gamma0)
    except ValueError as err:
        die(str(err))


def json_ready(value):
    """Nested dicts, lists, arrays and numbers as JSON: NaN (undefined) and +-inf (overflow) become null."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.ravel().tolist()
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def trajectory_payload(traj: Trajectory, suffix: str = "") -> dict:
    """The JSON object of one trajectory: "l", one list per quantity and the scalar "log_R"."""
    out = {} if suffix else {"l": list(range(int(np.shape(traj.p)[-1])))}
    for field in FIELDS:
        out[json_name(field) + suffix] = np.asarray(getattr(traj, field), dtype=np.float64).ravel()
    out["log_R" + suffix] = float(np.asarray(traj.log_R))
    return json_ready(out)


def emit(payload: dict, fmt: str, out=None) -> None:
    """Print a payload of per-layer lists (and scalars) as json, csv or an aligned table."""
    out = out or sys.stdout
    if fmt == "json":
        json.dump(payload, out)
        out.write("\n")
        return
    columns = [k for k, v in payload.items() if isinstance(v, list)]
    scalars = {k: v for k, v in payload.items() if not isinstance(v, list)}
    rows = zip(*(payload[k] for k in columns))
    fmt_cell = lambda v: "" if v is None else (str(v) if isinstance(v, int) else f"{v:.10g}")  # noqa: E731
    if fmt == "csv":
        for k, v in scalars.items():
            out.write(f"# {k} = {v}\n")
        out.write(",".join(columns) + "\n")
        for row in rows:
            out.write(",".join(fmt_cell(v) for v in row) + "\n")
        return
    cells = [columns] + [[fmt_cell(v) or "-" for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for r in cells:
        out.write("  ".join(c.rjust(w) for c, w in zip(r, widths)) + "\n")
    for k, v in scalars.items():
        out.write(f"{k} = {v}\n")
