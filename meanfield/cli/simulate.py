"""``meanfield simulate``: sampled finite-width networks, the theory's quantities with standard errors."""

from __future__ import annotations

from .common import add_spec_args, die, emit, spec_from_args, trajectory_payload


def register(sub) -> None:
    parser = sub.add_parser("simulate", help="finite-width simulation of one network (THEORY.md section 8)",
                            description="Sample networks of width N at initialization, push two inputs "
                                        "(|x|^2/N = p0, x.x'/N = gamma0, zero mean) forward and a random "
                                        "+-1 gradient backward, and print the per-layer mean over samples "
                                        "of the quantities of `meanfield theory`, each with a <key>_stderr "
                                        "twin. For rrn and ff, --sv2 and --sa2 are ignored.")
    add_spec_args(parser)
    parser.add_argument("--width", type=int, required=True, help="network width N >= 3")
    parser.add_argument("--samples", type=int, required=True, help="independent networks, >= 2")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument("--sampler", choices=("fast", "dense"), default="fast",
                        help="fast: exact O(N) per layer; dense: N x N matrices (default fast)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="simulation dtype (default float32; deep ReLU networks need float64)")
    parser.set_defaults(func=run)


def run(args) -> int:
    spec = spec_from_args(args)
    from ..simulate import check_args, simulate  # after the spec: importing jax is the slow part

    try:
        check_args(args.width, args.samples, args.sampler, args.dtype)
    except ValueError as err:
        die(str(err))
    import jax

    mean, stderr = simulate(spec, args.width, args.samples, jax.random.key(args.seed), args.sampler, args.dtype)
    payload = trajectory_payload(mean)
    payload.update(trajectory_payload(stderr, suffix="_stderr"))
    emit(payload, args.format)
    return 0
