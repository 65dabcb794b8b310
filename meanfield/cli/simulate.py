"""``meanfield simulate``: sampled finite-width networks, the theory's quantities with standard errors."""

from __future__ import annotations

from .._plan import check_args, simulation_bytes
from ..blocks import get_block
from . import SUMMARY
from .common import (add_memory_arg, add_spec_args, block_of, check_applicable, check_size, die, emit,
                     spec_from_args, trajectory_payload)


def register(sub) -> None:
    parser = sub.add_parser("simulate", help=SUMMARY["simulate"],
                            description="Sample networks of width N at initialization, push two inputs "
                                        "(|x|^2/N = p0, x.x'/N = gamma0, zero mean) forward and a random "
                                        "+-1 gradient backward, and print the per-layer mean over samples "
                                        "of the quantities of 'meanfield theory', each with a <key>_stderr "
                                        "twin (docs/theory.md, section 8). The run's memory is estimated "
                                        "before anything is compiled, and a run that cannot fit is refused.")
    add_spec_args(parser, modifiers=True, variants=True)
    parser.add_argument("--width", type=int, required=True, help="network width N >= 3")
    parser.add_argument("--samples", type=int, required=True, help="independent networks, >= 2")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument("--sampler", choices=("fast", "dense"), default="fast",
                        help="fast: exact O(N) per layer; dense: N x N matrices (default fast)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="simulation dtype (default float32; deep ReLU networks need float64)")
    add_memory_arg(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=run)


def _check_units(block, width: int) -> None:
    """Exit 2 where a width field leaves a layer without units at ``width`` (round(r N) or round(k N0) < 1)."""
    try:
        block.shapes(width)
    except ValueError as err:
        flags = " and ".join(f"--{f}" for f in sorted(get_block(block.name).widths))
        die(f"{err} ({flags} and --width)")


def run(args) -> int:
    check_applicable(args)
    try:
        width, samples, sampler, dtype = check_args(args.width, args.samples, args.sampler, args.dtype)
    except ValueError as err:
        die(str(err))
    if args.depth >= 1:  # Spec names a bad depth; a valid one is checked against memory before jax loads
        _check_units(block_of(args), width)
        check_size(simulation_bytes(sampler, block_of(args), width, args.depth, dtype.itemsize, samples), args,
                   "--width, --depth and --samples")
    spec = spec_from_args(args)
    _check_units(spec.block, width)
    import jax  # after validation: importing jax is the slow part

    from ..simulate import simulate

    mean, stderr = simulate(spec, width, samples, jax.random.key(args.seed), sampler, dtype,
                            progress=not args.no_progress)
    payload = trajectory_payload(mean)
    payload.update(trajectory_payload(stderr, suffix="_stderr"))
    emit(payload, args.format)
    return 0
