"""``meanfield theory``: one mean-field trajectory, printed as a table, JSON or CSV."""

from __future__ import annotations

from .._plan import trajectory_bytes
from . import SUMMARY
from .common import add_memory_arg, add_spec_args, check_size, emit, spec_from_args, trajectory_payload


def register(sub) -> None:
    parser = sub.add_parser("theory", help=SUMMARY["theory"],
                            description="Mean-field recursions, forward (p, q, gamma, lambda, e, s, mu) and "
                                        "backward (chi, chi_a, chi_b, chi_w, chi_v, log R), layers 0..L "
                                        "(docs/theory.md, sections 2 and 3). The run's memory is estimated "
                                        "before anything is compiled, and a depth that cannot fit is refused.")
    add_spec_args(parser, modifiers=True, variants=True)
    add_memory_arg(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.depth >= 1:  # Spec names a bad depth; a valid one is checked against memory before jax loads
        check_size(trajectory_bytes(args.depth), args, "--depth")
    spec = spec_from_args(args)
    from ..theory import trajectory  # after validation: importing jax is the slow part

    emit(trajectory_payload(trajectory(spec)), args.format)
    return 0
