"""Reference MNIST sweep for alpha-ReLU FRNs (docs/theory.md, sections 5-6): test accuracy over (alpha, L).

For 1/2 < alpha < 1 the gradient explosion R = Theta(L^(alpha^2 / ((1 - alpha)(2 alpha - 1)))) does not
depend on the variances, so the predictor is the metric expressivity log s^(L). Grid: alpha in
[0.55, 1] x L in [10, 300] at sw2 = sv2 = 1, sb2 = sa2 = 0.5 (alpha = 1 is the ReLU).

    python experiments/sweep_alpha_relu.py                                        # quick CPU setting
    python experiments/sweep_alpha_relu.py --reference --resume                   # -> figures/data/alpha_relu
    python experiments/sweep_alpha_relu.py --reference --readout meanfield --resume

The reference protocol is that of _reference_sweep.py (docs/mnist.md); the readouts are those of
sweep_relu.py. Extra arguments pass through to ``meanfield train``.
"""

from __future__ import annotations

import sys

from _reference_sweep import run

BASE = ["--arch", "frn", "--act", "alpha_relu", "--sw2", "1", "--sv2", "1", "--sa2", "0.5", "--sb2", "0.5"]
GRIDS = {
    "quick": ["--alpha", "0.55:1:7", "--depth", "10,25,50,100,200,300", "--lr", "0.001"],
    "reference": ["--alpha", "0.55:1:10", "--depth", "10,25,50,75,100,150,200,300"],
}


def main(argv=None) -> int:
    return run("alpha_relu", BASE, GRIDS, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
