"""Benchmark: a vmapped grid of networks against the same networks trained one after another.

Prints network-examples per second (networks x training examples seen, per second of wall time) for
both and their ratio, measured in the same run on the same data. Compilation is excluded on both
sides: each is warmed up first, and the timed grid uses new variance values (which must not retrace).

    python experiments/bench_train.py            # tanh FRN, depth 20, width 64, 16 networks
    python experiments/bench_train.py --grid 32 --depth 50 --width 128
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import meanfield
from meanfield.train import TrainConfig, Variances, load_mnist, subset, train_grid, train_sequential


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
    args = parser.parse_args(argv)

    data = subset(load_mnist(), args.train_subset, args.test_subset)
    act = meanfield.get_activation(args.act)
    cfg = TrainConfig(width=args.width, epochs=args.epochs, batch=args.batch, lr=0.003)
    kw = dict(arch=args.arch, act=act, depth=args.depth, cfg=cfg)
    g = args.grid

    def grid_vars(shift):
        return Variances(np.linspace(0.2, 2.0, g) + shift, np.full(g, 1.5), np.full(g, 0.5), np.full(g, 0.5),
                         np.ones(g))

    seeds = np.arange(g)
    examples = g * args.epochs * (len(data.x_train) // args.batch) * args.batch

    train_grid(grid_vars(0.01), seeds, data, **kw)  # compile
    vmapped = []
    for r in range(args.repeats):
        start = time.perf_counter()
        res_grid = train_grid(grid_vars(0.0), seeds, data, **kw)
        vmapped.append(time.perf_counter() - start)
    sequential = []
    for r in range(args.repeats):
        res_seq, seconds = train_sequential(grid_vars(0.0), seeds, data, **kw)
        sequential.append(seconds)
    t_grid, t_seq = min(vmapped), min(sequential)
    agree = np.max(np.abs(res_grid.test_acc - res_seq.test_acc))
    print(f"{g} networks: {args.arch} {args.act}, depth {args.depth}, width {args.width}, batch {args.batch}, "
          f"{args.epochs} epoch(s) on {len(data.x_train)} examples (+ evaluation on "
          f"{len(data.x_train) + len(data.x_test)})")
    print(f"vmapped grid : {t_grid:8.2f} s  {examples / t_grid:12.0f} network-examples/s")
    print(f"one by one   : {t_seq:8.2f} s  {examples / t_seq:12.0f} network-examples/s")
    print(f"speed-up     : {t_seq / t_grid:8.2f}x   (max |test acc difference| = {agree:.2g})")


if __name__ == "__main__":
    main()
