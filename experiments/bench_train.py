"""Benchmark: a vmapped grid of networks against the same networks trained one after another.

Prints network-examples per second (networks x training examples seen, per second) for both and
their ratio, the trainer's GFLOP/s against jnp.dot on the same shapes and on a large matrix, measured in the same run on the same data, per second of wall time and per second of
CPU time of this process (the second is the fairer figure on a machine shared with other jobs).
Compilation is excluded on both sides: each is warmed up first, and the timed grid uses new variance
values (which must not retrace). ``--host-devices N`` splits the CPU into N XLA devices (default:
one per core, as the sweep scripts do), over which the grid is sharded; one network cannot be split,
so the one-by-one baseline runs on one of them.

The speed-up is printed split into its two factors: the gain per CPU second (what batching the
networks buys) and the gain in parallelism (CPU seconds per wall second: the grid keeps every device
busy, one network cannot). A last line times the networks' dominant kernel alone, a chain of layer
matmuls h <- tanh(h W_l) compiled as one scan, for one network and for a vmapped grid on one device:
its per-network ratio is how much batching speeds up the kernel that dominates training at this width
and batch.

    python experiments/bench_train.py            # tanh FRN, depth 20, width 64, batch 64, 16 networks
    python experiments/bench_train.py --width 16 --batch 16 --grid 64
    python experiments/bench_train.py --host-devices 1
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _chain_rates(g: int, width: int, batch: int, depth: int, device, repeats: int = 5) -> tuple[float, float]:
    """Network-layers per second of a chain of ``depth`` layer matmuls for one network and for a
    vmapped grid of ``g`` networks, both on ``device``, best of ``repeats``."""
    import jax
    import jax.numpy as jnp

    def chain(h, ws):
        return jax.lax.scan(lambda h, w: (jnp.tanh(h @ w), None), h, ws)[0]

    key = jax.random.PRNGKey(0)
    h = jax.device_put(jax.random.normal(key, (g, batch, width), jnp.float32), device)
    ws = jax.device_put(jax.random.normal(key, (g, depth, width, width), jnp.float32) / width**0.5, device)
    rates = []
    for fn, args, nets in ((jax.jit(chain), (h[0], ws[0]), 1), (jax.jit(jax.vmap(chain)), (h, ws), g)):
        fn(*args).block_until_ready()
        calls = max(1, 2000 // (nets * depth))
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                out = fn(*args)
            out.block_until_ready()
            best = min(best, (time.perf_counter() - start) / calls)
        rates.append(nets * depth / best)
    return rates[0], rates[1]


def _matmul_rate(n: int, device, repeats: int = 5) -> float:
    """GFLOP/s of one large (n x n) @ (n x n) float32 product on ``device``: the machine's matmul rate."""
    import jax
    import jax.numpy as jnp

    a = jax.device_put(jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32), device)
    dot = jax.jit(jnp.dot)
    dot(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dot(a, a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def train_flops(arch: str, width: int, depth: int) -> float:
    """FLOPs of one training example (forward and backward) of the residual MLP: per block 2 (frn: W and
    V) or 1 (rrn) N x N matmuls of 2 N^2 each, 3x for forward + backward; the embedding 784 -> N forward
    and its weight gradient (4 * 784 N; its input needs no gradient); the readout N -> 10, 3x."""
    per_layer = (2 if arch == "frn" else 1) * 2 * width**2 * 3
    return depth * per_layer + 4 * 784 * width + 3 * 2 * width * 10


def eval_flops(arch: str, width: int, depth: int) -> float:
    """FLOPs of one evaluated example (forward only)."""
    return depth * (2 if arch == "frn" else 1) * 2 * width**2 + 2 * 784 * width + 2 * width * 10


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="frn", choices=("frn", "rrn"))
    parser.add_argument("--act", default="tanh", choices=("tanh", "relu", "alpha_relu"))
    parser.add_argument("--grid", type=int, default=16, help="networks in the grid (default 16)")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-subset", type=int, default=2000)
    parser.add_argument("--test-subset", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2, help="timed repetitions; the best is reported")
    parser.add_argument("--host-devices", type=int, default=os.cpu_count() or 1,
                        help="XLA CPU devices to shard the grid over (default: one per core)")
    args = parser.parse_args(argv)
    if args.host_devices > 1:  # must be set before jax starts
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + f" --xla_force_host_platform_device_count={args.host_devices}")

    import jax

    import meanfield
    from meanfield.train import NetworkSettings, TrainConfig, load_mnist, subset, train_grid, train_sequential

    data = subset(load_mnist(), args.train_subset, args.test_subset)
    act = meanfield.get_activation(args.act)
    cfg = TrainConfig(width=args.width, epochs=args.epochs, batch=args.batch)
    kw = dict(arch=args.arch, act=act, depth=args.depth, cfg=cfg)
    g = args.grid

    def grid_vars(shift, n=g):  # the first n networks of the grid
        return NetworkSettings(np.linspace(0.2, 2.0, g)[:n] + shift, np.full(n, 1.5), np.full(n, 0.5),
                               np.full(n, 0.5), np.ones(n), np.full(n, 0.003), np.ones(n))

    seeds = np.arange(g)
    examples = g * args.epochs * (len(data.x_train) // args.batch) * args.batch

    one_device = jax.devices()[:1]
    train_grid(grid_vars(0.01), seeds, data, **kw)  # compile
    train_sequential(grid_vars(0.01, n=1), seeds[:1], data, devices=one_device, **kw)
    vmapped, sequential = [], []
    for _ in range(args.repeats):
        start, cpu = time.perf_counter(), _cpu_seconds()
        res_grid = train_grid(grid_vars(0.0), seeds, data, **kw)
        vmapped.append((time.perf_counter() - start, _cpu_seconds() - cpu))
        start, cpu = time.perf_counter(), _cpu_seconds()
        res_seq, _ = train_sequential(grid_vars(0.0), seeds, data, devices=one_device, **kw)
        sequential.append((time.perf_counter() - start, _cpu_seconds() - cpu))
    (t_grid, c_grid), (t_seq, c_seq) = min(vmapped), min(sequential)
    rel = np.abs(res_grid.train_loss - res_seq.train_loss) / np.abs(res_seq.train_loss)
    per_device = -(-g // len(jax.devices()))
    chain_one, chain_grid = _chain_rates(per_device, args.width, args.batch, args.depth, one_device[0])
    print(f"{g} networks: {args.arch} {args.act}, depth {args.depth}, width {args.width}, batch {args.batch}, "
          f"{args.epochs} epoch(s) on {len(data.x_train)} examples (+ evaluation on "
          f"{len(data.x_train) + len(data.x_test)}); {len(jax.devices())} device(s), {os.cpu_count()} cores")
    print(f"{'':13s} {'wall s':>8s} {'net-ex/s':>10s} {'CPU s':>8s} {'net-ex/CPU s':>13s}")
    for name, t, c in (("vmapped grid", t_grid, c_grid), ("one by one", t_seq, c_seq)):
        print(f"{name:13s} {t:8.2f} {examples / t:10.0f} {c:8.2f} {examples / c:13.0f}")
    print(f"speed-up: {t_seq / t_grid:.2f}x wall = {c_seq / c_grid:.2f}x per CPU second "
          f"x {(c_grid / t_grid) / (c_seq / t_seq):.2f}x parallelism "
          f"({c_grid / t_grid:.2f} vs {c_seq / t_seq:.2f} CPU s per wall s)")
    print(f"same networks: final training losses agree to 1e-4 for {np.sum(rel < 1e-4)} of {g}, largest "
          f"difference {rel.max():.1e} (batched and single matmul kernels may round differently, and training "
          f"where gradients explode amplifies it; to give both one kernel, run with XLA_FLAGS="
          f"--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT)")
    n_eval = len(data.x_train) + len(data.x_test)
    flops = g * (args.epochs * (len(data.x_train) // args.batch) * args.batch * train_flops(args.arch, args.width, args.depth)
                 + n_eval * eval_flops(args.arch, args.width, args.depth))
    trainer_rate = flops / t_grid / 1e9
    chain_rate = chain_grid * args.batch * 2 * args.width**2 / 1e9 * len(jax.devices())
    big = _matmul_rate(1024, one_device[0])
    print(f"trainer (vmapped grid, training + evaluation): {trainer_rate:.1f} GFLOP/s = "
          f"{trainer_rate / chain_rate:.0%} of jnp.dot on the same shapes (the layer-matmul chain below, "
          f"{chain_rate:.1f} GFLOP/s over {len(jax.devices())} device(s)) and {trainer_rate / big:.0%} of a "
          f"1024 x 1024 jnp.dot ({big:.1f} GFLOP/s, all cores)")
    print(f"layer-matmul chain alone (one device, {args.depth} x ({args.batch} x {args.width}) @ "
          f"({args.width} x {args.width}) + tanh): one network {chain_one:.0f} net-layers/s, vmapped grid of "
          f"{per_device} {chain_grid:.0f} net-layers/s: {chain_grid / chain_one:.2f}x per network")


if __name__ == "__main__":
    main()
