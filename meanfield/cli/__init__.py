"""The ``meanfield`` command: one subcommand per module of this package.

    meanfield theory    mean-field trajectories (THEORY.md section 3)
    meanfield simulate  sampled finite-width networks, same quantities with standard errors
    meanfield laws      predicted asymptotic laws, optionally measured on a theory trajectory
    meanfield train     MNIST sweeps over grids of variances and depths
    meanfield figures   rebuild the figures in figures/
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("theory", "simulate", "laws", "train", "figures")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``meanfield theory: error: ... (see --help)``, exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="meanfield", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
