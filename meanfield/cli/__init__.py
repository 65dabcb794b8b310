"""The meanfield command: one subcommand per module of this package.

    meanfield theory    mean-field trajectories (docs/theory.md, section 3)
    meanfield simulate  sampled finite-width networks, same quantities with standard errors
    meanfield laws      predicted asymptotic laws, optionally measured on a theory trajectory
    meanfield train     MNIST sweeps over grids of variances and depths
    meanfield figures   rebuild the figures in figures/

Several processes (hosts) run one job together with ``meanfield --distributed ...`` before the
subcommand (``jax.distributed``): every process runs the same command, the work is sharded over every
device of every process, and process 0 alone writes the outputs.

Start-up stays well under a second: only the module of the chosen subcommand is imported (the others
are listed from :data:`SUMMARY`), and each subcommand validates its flags before it imports jax.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

#: One line per subcommand, shown by ``meanfield --help`` without importing the subcommand's module.
SUMMARY = {
    "theory": "mean-field trajectory of one network (docs/theory.md, section 3)",
    "simulate": "finite-width simulation of one network (docs/theory.md, section 8)",
    "laws": "predicted asymptotic laws (docs/theory.md, section 5), optionally measured",
    "train": "MNIST sweeps over variances and depths",
    "figures": "rebuild the dynamics figures, phase diagram and exponent table",
}
SUBCOMMANDS = tuple(SUMMARY)

# A value that starts like a negative number ("-1,1", "-1e-3", "-.5:2:4") after a flag that takes one.
# argparse reads only plain "-1" and "-0.5" as numbers and everything else as an unknown flag.
_NEGATIVE_VALUE = re.compile(r"^-\.?\d")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``meanfield theory: error: ... (see --help)``, exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: Flags before the subcommand that take a value.
_GLOBAL_VALUES = ("--coordinator", "--num-processes", "--process-id")


def _chosen(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first argument that is neither a flag nor the
    value of a flag before it), if any."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_VALUES:
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in SUMMARY else None
    return None


def _add_distributed(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("several processes (jax.distributed; flags go before the subcommand)")
    g.add_argument("--distributed", action="store_true",
                   help="join a run of several processes: on SLURM, Open MPI, Kubernetes or Cloud TPU the "
                        "rest is detected; elsewhere also give the three flags below (or JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0's coordinator service")
    g.add_argument("--num-processes", type=int, metavar="N", help="number of processes")
    g.add_argument("--process-id", type=int, metavar="I", help="this process, 0 .. N-1 (0 writes the outputs)")


def _start_distributed(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check the distributed flags, then ``jax.distributed.initialize`` (CPU collectives over gloo)."""
    given = [f for f in ("coordinator", "num_processes", "process_id") if getattr(args, f) is not None]
    if given and not args.distributed:
        parser.error(f"--{given[0].replace('_', '-')} needs --distributed")
    if not args.distributed:
        return
    n, i = args.num_processes, args.process_id
    if n is not None and n < 1:
        parser.error(f"--num-processes must be an integer >= 1, got {n}")
    if i is not None and (i < 0 or (n is not None and i >= n)):
        parser.error(f"--process-id must be an integer in [0, {'N-1' if n is None else n - 1}], got {i}")
    if args.coordinator is not None:
        host, _, port = args.coordinator.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            parser.error(f"--coordinator must be HOST:PORT with a port in [1, 65535], got {args.coordinator!r}")
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=n, process_id=i)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommand chosen in ``argv`` gets its full flags (all of them when None)."""
    parser = _Parser(prog="meanfield", description=__doc__.split("\n\n")[0])
    _add_distributed(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    chosen = None if argv is None else _chosen(argv)
    for name in SUBCOMMANDS:
        if argv is not None and name != chosen:
            sub.add_parser(name, help=SUMMARY[name])
            continue
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def _join_negative_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--sw2 -1,1`` -> ``--sw2=-1,1`` for every flag that takes a value, so that argparse reads the value."""
    takes_value = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                takes_value |= {s for a in subparser._actions if a.nargs != 0 for s in a.option_strings}
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in takes_value and _NEGATIVE_VALUE.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(_join_negative_values(parser, argv))
    _start_distributed(parser, args)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader (``| head``) stopped early: not an error of ours, and no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
