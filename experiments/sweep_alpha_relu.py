"""Reference MNIST sweep for alpha-ReLU FRNs (THEORY.md sections 5-6): test accuracy over (alpha, L).

For 1/2 < alpha < 1 the gradient explosion R = Theta(L^(alpha^2 / ((1 - alpha)(2 alpha - 1)))) does not
depend on the variances, so the predictor is the metric expressivity log s^(L). Grid: alpha in
[0.55, 1] x L in [10, 300] at sw2 = sv2 = 1, sb2 = sa2 = 0.5 (alpha = 1 is the ReLU).

    python experiments/sweep_alpha_relu.py            # quick CPU setting (minutes on 2 cores)
    python experiments/sweep_alpha_relu.py --full     # paper scale (GPU)

Quick setting: width 64, 3000 training / 2000 test examples, 3 epochs of SGD (momentum 0.9), batch
64, lr 0.004 (the tanh sweep's), 7 alphas x 6 depths, one seed.

The script only builds the arguments of ``meanfield train`` (the same code path as the command);
extra arguments are passed through (e.g. ``--resume``, ``--seeds 3``). Figures are also copied into
``figures/`` as ``mnist_alpha_relu_<setting>_*.png``.
"""

from __future__ import annotations

import argparse
import os
import sys

from meanfield.cli import main as meanfield_main

FIGURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "figures")
BASE = ["--arch", "frn", "--act", "alpha_relu", "--sw2", "1", "--sv2", "1", "--sa2", "0.5", "--sb2", "0.5"]
SETTINGS = {
    "quick": ["--alpha", "0.55:1:7", "--depth", "10,25,50,100,200,300", "--quick", "--lr", "0.004"],
    "full": ["--alpha", "0.55:1:10", "--depth", "10:300:30", "--width", "256", "--epochs", "30", "--batch", "128",
             "--lr", "0.004", "--seeds", "3"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="paper-scale setting (GPU)")
    parser.add_argument("--out", help="output directory (default runs/mnist_alpha_relu_<setting>)")
    args, extra = parser.parse_known_args(argv)
    setting = "full" if args.full else "quick"
    out = args.out or os.path.join("runs", f"mnist_alpha_relu_{setting}")
    argv = ["train", *BASE, *SETTINGS[setting], "--out", out, "--figures", FIGURES, *extra]
    print("meanfield " + " ".join(argv), flush=True)
    return meanfield_main(argv)


if __name__ == "__main__":
    sys.exit(main())
