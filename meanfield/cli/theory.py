"""``meanfield theory``: one mean-field trajectory, printed as a table, JSON or CSV."""

from __future__ import annotations

from .common import add_spec_args, emit, spec_from_args, trajectory_payload


def register(sub) -> None:
    parser = sub.add_parser("theory", help="mean-field trajectory of one network (THEORY.md section 3)",
                            description="Mean-field recursions, forward (p, q, gamma, lambda, e, s, mu) and "
                                        "backward (chi, chi_a, chi_b, chi_w, chi_v, log R), layers 0..L. "
                                        "For rrn and ff, --sv2 and --sa2 are ignored.")
    add_spec_args(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    spec = spec_from_args(args)
    from ..theory import trajectory  # after validation: importing jax is the slow part

    emit(trajectory_payload(trajectory(spec)), args.format)
    return 0
