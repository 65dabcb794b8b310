"""Flags, validation and output formats shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

from ..blocks import BLOCKS, DECAYS, NORMS, WIDTHS, get_block
from ..spec import ACTIVATIONS, ALPHA_ACTIVATIONS, ARCHS, NEUTRAL, Spec, unused_variances
from ..trajectory import FIELDS, Trajectory, json_name

#: --growth's help (theory, simulate and train).
GROWTH_HELP = ("growth k > 0 of densenet: each layer appends round(k N0) units to the stream (N0 = the input "
               "width; at least 1), so N_l = N0 (1 + l k) (densenet only; default 1/4, the "
               "growth rate over a dense block's input width in DenseNet-121's second block: "
               "32 of 128 channels)")
#: Defaults of the flags that default to None (so that an explicit flag can be told from a default).
DEFAULTS = {**NEUTRAL, "sb2": 0.0, "p0": 1.0, "gamma0": 0.5}


def die(message: str) -> None:
    """One clear line on stderr and exit code 2 (bad input)."""
    print(f"meanfield: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def add_spec_args(parser: argparse.ArgumentParser, *, archs=ARCHS, formats=("table", "json", "csv"),
                  depth_help: str | None = "number of layers L >= 1", modifiers: bool = False,
                  variants: bool = False) -> None:
    """The network flags of ``meanfield theory`` (and of every subcommand that takes one network).

    ``depth_help=None`` leaves --depth out, for a subcommand that defines its own; ``modifiers=True`` adds
    --branch-scale; ``variants=True`` adds --bottleneck, --growth, --norm, --survival and the variance decays --decay-w/v/b/a
    (for a subcommand whose engines take the spec's block and layer variances). Flags that only some networks have default to None, so that :func:`spec_from_args`
    can refuse them where they do not apply.
    """
    blocks = "; ".join(f"{name}: {block.doc.split(': ', 1)[-1]}" for name, block in BLOCKS.items() if name in archs)
    parser.add_argument("--arch", required=True, choices=archs, help=f"network architecture ({blocks})")
    parser.add_argument("--act", required=True, choices=ACTIVATIONS, help="activation")
    parser.add_argument("--alpha", type=float, help="alpha-ReLU exponent in (1/2, 1] (alpha_relu only; default 1)")
    with_v = ", ".join(a for a in archs if "sv2" not in unused_variances(a))
    parser.add_argument("--sw2", type=float, required=True, help="sigma_w^2, >= 0")
    parser.add_argument("--sv2", type=float, help=f"sigma_v^2, >= 0 ({with_v} only; default 1)")
    parser.add_argument("--sb2", type=float, help="sigma_b^2, >= 0 (default 0)")
    parser.add_argument("--sa2", type=float, help=f"sigma_a^2, >= 0 ({with_v} only; default 0)")
    with_gate = ", ".join(a for a in archs if "sg2" not in unused_variances(a))
    parser.add_argument("--sg2", type=float, metavar="S",
                        help=f"variance S >= 0 of the gate's U, U_ij ~ N(0, S/N), T = sigmoid(U x + c) "
                             f"({with_gate} only; default {NEUTRAL['sg2']:g})")
    parser.add_argument("--gate-bias", type=float, metavar="C",
                        help=f"the gate's bias c, a finite number: c_i = c at initialization ({with_gate} only; "
                             f"default {NEUTRAL['gate_bias']:g}; negative: the gate starts mostly carrying x)")
    if modifiers:
        parser.add_argument("--branch-scale", metavar="KAPPA",
                            help="residual branch multiplier kappa >= 0: x <- x + kappa branch(x), a number or "
                                 "1/sqrt(L) or 1/L (residual archs only; default 1)")
    if variants:
        with_r = ", ".join(a for a in archs if "bottleneck" in get_block(a).widths)
        parser.add_argument("--bottleneck", type=float, metavar="R",
                            help=f"inner width r > 0 as a multiple of N: W: N -> rN, W2: rN -> rN, V: rN -> N "
                                 f"(round(r N) units, at least 1; {with_r} only; default 1/4)")
        parser.add_argument("--growth", type=float, metavar="K",
                            help=GROWTH_HELP)
        with_norm = ", ".join(a for a in archs if get_block(a).residual)
        parser.add_argument("--norm", choices=NORMS,
                            help=f"layer: pre-LayerNorm, every residual branch sees (x - mean(x)) / std(x) "
                                 f"instead of x ({with_norm} only; default none)")
        with_mask = ", ".join(a for a in archs if "survival" not in unused_variances(a))
        parser.add_argument("--survival", type=float, metavar="S",
                            help=f"stochastic depth: each layer keeps its branch with probability S in [0, 1] "
                                 f"(one draw per layer per network; the theory is the exact expectation over the "
                                 f"masks, O(L^2) per point; {with_mask} only; default 1)")
        for var, decay in DECAYS.items():
            users = ", ".join(a for a in archs if decay not in unused_variances(a))
            parser.add_argument("--" + decay.replace("_", "-"), type=float, metavar="BETA",
                                help=f"variance decay: layer l has {var} l^-BETA, a finite number"
                                     f"{'' if var == 'sw2' else f' ({users} only)'}; default 0")
    if depth_help is not None:
        parser.add_argument("--depth", type=int, required=True, help=depth_help)
    parser.add_argument("--p0", type=float, help="input squared length |x0|^2/N > 0 (default 1)")
    parser.add_argument("--gamma0", type=float, help="input inner product x0.x0'/N, |gamma0| <= p0 (default 0.5)")
    if formats:
        parser.add_argument("--format", choices=formats, default=formats[0], help="output format")


#: The parameter a variance flag belongs to, for messages.
_PARAM_OF = {"sw2": "W", "sv2": "V", "sb2": "b", "sa2": "a", "branch_scale": "residual branch",
             "survival": "residual branch", "sg2": "gate", "gate_bias": "gate"}
_PARAM_OF.update({decay: _PARAM_OF[var] for var, decay in DECAYS.items()})


def check_applicable(args: argparse.Namespace) -> None:
    """Exit 2 on a flag the chosen network does not have (--alpha without alpha_relu, a variance its block
    does not use, such as --sv2/--sa2 off frn)."""
    if args.alpha is not None and args.act not in ALPHA_ACTIVATIONS:
        die(f"--alpha applies to --act alpha_relu only, not {args.act}")
    given = [k for k in unused_variances(args.arch) if getattr(args, k, None) is not None]
    if given:
        users = ", ".join(a for a in ARCHS if not set(unused_variances(a)) & set(given))
        flags = " and ".join("--" + k.replace("_", "-") for k in given)
        die(f"{flags} {'applies' if len(given) == 1 else 'apply'} to --arch {users} only: "
            f"the {args.arch} has no {' and no '.join(dict.fromkeys(_PARAM_OF[k] for k in given))}")


def spec_from_args(args: argparse.Namespace, depth: int | None = None) -> Spec:
    """Build and validate the Spec (``depth`` overrides ``args.depth``); bad input exits with code 2 and
    one line naming the field. Nothing here imports jax before the input is known to be valid."""
    check_applicable(args)
    values = {k: DEFAULTS[k] if getattr(args, k, None) is None else getattr(args, k) for k in DEFAULTS}
    widths = {k: getattr(args, k, None) for k in WIDTHS}
    try:
        return Spec(arch=args.arch, act=args.act, depth=args.depth if depth is None else depth, sw2=args.sw2,
                    norm=getattr(args, "norm", None), **values, **widths)
    except ValueError as err:
        die(str(err))


def block_of(args: argparse.Namespace):
    """The block of ``--arch`` at the given widths (their defaults where a flag is unset or not a valid
    width: the Spec names those), for the memory estimate made before jax loads."""
    values = {}
    for name, default in WIDTHS.items():
        value = getattr(args, name, None)
        values[name] = value if value is not None and math.isfinite(value) and value > 0 else default
    return get_block(args.arch).at(values, getattr(args, "norm", None) if get_block(args.arch).residual else None)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable; total physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def add_memory_arg(parser: argparse.ArgumentParser) -> None:
    """--max-memory: the limit of :func:`check_size`."""
    parser.add_argument("--max-memory", type=float, metavar="GB",
                        help="refuse a run whose estimated peak memory exceeds GB gigabytes "
                             "(default: 80%% of the memory available at start)")


def check_size(needed: int, args: argparse.Namespace, flags: str) -> None:
    """Exit 2 when ``needed`` bytes exceed --max-memory (or 80% of the available memory), naming ``flags``."""
    if args.max_memory is not None:
        if not (args.max_memory > 0 and math.isfinite(args.max_memory)):
            die(f"--max-memory must be a number of gigabytes > 0, got {args.max_memory!r}")
        limit, source = args.max_memory * 1e9, "--max-memory"
    else:
        avail = available_memory()
        if avail is None:
            return
        limit, source = 0.8 * avail, "80% of the available memory"
    if needed > limit:
        die(f"{flags} too large: the run needs an estimated {needed / 1e9:.3g} GB, more than the limit of "
            f"{limit / 1e9:.3g} GB ({source}); lower {flags}, or raise the limit with --max-memory GB")


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
    """Print a payload of per-layer lists (and scalars) as json, csv or an aligned table (on process 0
    only, under ``meanfield --distributed``)."""
    if "jax" in sys.modules and sys.modules["jax"].process_index() != 0:
        return
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
