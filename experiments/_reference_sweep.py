"""Shared runner of the reference MNIST sweep scripts (sweep_tanh.py, sweep_relu.py, sweep_alpha_relu.py).

The protocol of the reference sweeps is fixed here, before any of their outcomes: every cell (variances,
alpha, depth) is trained with 3 seeds at each learning rate of the fixed set 1e-3, 10^-2.5, 1e-2 (SGD,
momentum 0.9, batch 64, width 64, 10 epochs on 10,000 training examples); the learning rate of a cell is
the one with the best mean accuracy on 5,000 held-out training examples (validation); test accuracy is
measured on the full 10,000-example test set. The epoch count comes from a pilot on two shallow tanh
cells (depths 10 and 40): their best validation accuracy rose by 1.2 points from 5 to 10 epochs and by
0.2 from 10 to 20.

Standard library only: it must set XLA_FLAGS before anything imports JAX.
"""

from __future__ import annotations

import argparse
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = os.path.join(ROOT, "figures")
DATA = os.path.join(FIGURES, "data")
REFERENCE = ["--width", "64", "--batch", "64", "--epochs", "10", "--train-subset", "10000",
             "--val-subset", "5000", "--test-subset", "10000", "--seeds", "3"]


def use_host_devices(n: int) -> None:
    """Split the CPU into n XLA devices, over which each group of networks is sharded and trained in
    parallel (1.7x faster on two cores, same results). Takes effect only before JAX starts; GPUs are
    not affected."""
    if n > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}"


_VARIANCE_FLAGS = ("--sw2", "--sv2", "--sb2", "--sa2")


def _without_variances(args: list[str]) -> list[str]:
    """``args`` without the variance flags and their values (an --init preset sets them)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in _VARIANCE_FLAGS:
            skip = True
        else:
            out.append(a)
    return out


def run(name: str, base: list[str], grids: dict[str, list[str]], description: str, argv=None,
        variant: bool = False, presets: bool = False) -> int:
    """Parse the script's flags, then run ``meanfield train`` with ``base`` and the chosen grid.

    ``--reference`` runs the reference protocol (:data:`REFERENCE`) on ``grids["reference"]`` into
    ``figures/data/<name>``; the default is the quick CPU setting (``--quick``, ``grids["quick"]``)
    into ``runs/mnist_<name>_quick``. ``--variant`` (scripts that have one) picks the ``variant_``
    grids and names; ``--readout meanfield`` appends ``_meanfield`` to the name. ``--init he|xavier``
    (scripts with ``presets``) trains the preset's variances at the grid's depths into ``NAME_he`` or
    ``NAME_xavier``, the siblings :mod:`meanfield.train.schemes` compares the grid with. Unknown
    arguments pass through to ``meanfield train`` (e.g. ``--resume``).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--reference", action="store_true",
                        help="the reference protocol and grid (hours on 2 CPU cores), into figures/data/NAME")
    if variant:
        parser.add_argument("--variant", action="store_true", help="vary sa2/sv2 at fixed sv2^2/(sv2+sa2)")
    parser.add_argument("--readout", choices=("linear", "meanfield"), default="linear",
                        help="readout of the trained networks (default linear)")
    if presets:
        parser.add_argument("--init", choices=("he", "xavier"),
                            help="the preset's variances at the grid's depths, into NAME_he or NAME_xavier")
    parser.add_argument("--out", help="output directory (default figures/data/NAME with --reference, "
                                      "else runs/mnist_NAME_quick)")
    parser.add_argument("--host-devices", type=int, default=os.cpu_count() or 1,
                        help="XLA CPU devices to shard over (default: one per core)")
    args, extra = parser.parse_known_args(argv)
    use_host_devices(args.host_devices)
    from meanfield.cli import main as meanfield_main

    is_variant = getattr(args, "variant", False)
    grid = ("variant_" if is_variant else "") + ("reference" if args.reference else "quick")
    init = getattr(args, "init", None)
    full_name = (name + ("_variant" if is_variant else "") + ("_meanfield" if args.readout == "meanfield" else "")
                 + (f"_{init}" if init else ""))
    if args.reference:
        out = args.out or os.path.join(DATA, full_name)
        setting = REFERENCE
    else:
        out = args.out or os.path.join("runs", f"mnist_{full_name}_quick")
        setting = ["--quick"]
    chosen = [*base, *grids[grid]]
    if init:
        chosen = [*_without_variances(chosen), "--init", init]
    train_argv = ["train", *chosen, *setting, "--readout", args.readout, "--out", out, *extra]
    print("meanfield " + " ".join(train_argv), flush=True)
    return meanfield_main(train_argv)
