"""The meanfield command: one subcommand per module of this package.

    meanfield theory    mean-field trajectories (docs/theory.md, section 3)
    meanfield simulate  sampled finite-width networks, same quantities with standard errors
    meanfield laws      predicted asymptotic laws, optionally measured on a theory trajectory
    meanfield train     MNIST sweeps over grids of variances and depths
    meanfield figures   rebuild the figures in figures/

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


def _chosen(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first argument that is not a flag), if any."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in SUMMARY else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommand chosen in ``argv`` gets its full flags (all of them when None)."""
    parser = _Parser(prog="meanfield", description=__doc__.split("\n\n")[0])
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
