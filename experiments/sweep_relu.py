"""Reference MNIST sweep for ReLU FRNs (THEORY.md section 6): test accuracy over (sigma_w^2, L).

Grid: sw2 in [0, 1.5], sv2 = 1, sa2 = sb2 = 0.5, L up to 300. Predictor: the metric expressivity
log s^(L); the heatmap also draws the float32 overflow line, the depth where log p^(L) exceeds
log(float32 max) = 88.72 (about L = 88.7 / log(1 + sw2/2) for sv2 = 1): the paper's claim is that
the best network is the one with the largest sw2 that does not overflow.

    python experiments/sweep_relu.py            # quick CPU setting (minutes on 2 cores)
    python experiments/sweep_relu.py --full     # paper scale (GPU)

Quick setting: width 64, 3000 training / 2000 test examples, 3 epochs of SGD (momentum 0.9), batch
64, lr 0.004 (the tanh sweep's), 7 x 7 grid, one seed.

The script only builds the arguments of ``meanfield train`` (the same code path as the command);
extra arguments are passed through (e.g. ``--resume``, ``--seeds 3``). Figures are also copied into
``figures/`` as ``mnist_relu_<setting>_*.png``.
"""

from __future__ import annotations

import argparse
import os
import sys

from meanfield.cli import main as meanfield_main

FIGURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "figures")
BASE = ["--arch", "frn", "--act", "relu", "--sv2", "1", "--sa2", "0.5", "--sb2", "0.5"]
SETTINGS = {
    "quick": ["--sw2", "0:1.5:7", "--depth", "10,25,50,100,150,200,300", "--quick", "--lr", "0.004"],
    "full": ["--sw2", "0:1.5:16", "--depth", "10:300:30", "--width", "256", "--epochs", "30", "--batch", "128",
             "--lr", "0.004", "--seeds", "3"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="paper-scale setting (GPU)")
    parser.add_argument("--out", help="output directory (default runs/mnist_relu_<setting>)")
    args, extra = parser.parse_known_args(argv)
    setting = "full" if args.full else "quick"
    out = args.out or os.path.join("runs", f"mnist_relu_{setting}")
    argv = ["train", *BASE, *SETTINGS[setting], "--out", out, "--figures", FIGURES, *extra]
    print("meanfield " + " ".join(argv), flush=True)
    return meanfield_main(argv)


if __name__ == "__main__":
    sys.exit(main())
