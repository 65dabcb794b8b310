"""Reference MNIST sweep for alpha-ReLU FRNs (THEORY.md sections 5-6): test accuracy over (alpha, L).

For 1/2 < alpha < 1 the gradient explosion R = Theta(L^(alpha^2 / ((1 - alpha)(2 alpha - 1)))) does not
depend on the variances, so the predictor is the metric expressivity log s^(L). Grid: alpha in
[0.55, 1] x L in [10, 300] at sw2 = sv2 = 1, sb2 = sa2 = 0.5 (alpha = 1 is the ReLU).

    python experiments/sweep_alpha_relu.py            # quick CPU setting (minutes on 2 cores)
    python experiments/sweep_alpha_relu.py --full     # paper scale (GPU)

Quick setting: width 64, 3000 training / 2000 test examples, 3 epochs of SGD (momentum 0.9), batch
64, lr 1e-4, 7 alphas x 6 depths, one seed.

The learning rate is 40x smaller than the tanh sweep's: the readout's curvature grows like
N p^(L), and p^(L) grows exponentially (ReLU) or polynomially (alpha-ReLU) with depth, so at lr 0.004
every network deeper than ~25 layers diverges in its first epoch. At 1e-4 the divergence boundary
follows log p^(L) ~ 10, still far below the float32 overflow line (log p^(L) = 88.72).

The script only builds the arguments of ``meanfield train`` (the same code path as the command);
extra arguments are passed through (e.g. ``--resume``, ``--seeds 3``). On a CPU the grid is sharded
over one XLA device per core (``--host-devices N`` to choose). Figures are also copied into
``figures/`` as ``mnist_alpha_relu_<setting>_*.png``.
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
