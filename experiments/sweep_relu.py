"""Reference MNIST sweep for ReLU FRNs (THEORY.md section 6): test accuracy over (sigma_w^2, L).

Grid: sw2 in [0, 1.5], sv2 = 1, sa2 = sb2 = 0.5, L up to 300. Predictor: the metric expressivity
log s^(L); the heatmap also draws the float32 overflow line, the depth where log p^(L) exceeds
log(float32 max) = 88.72 (about L = 88.7 / log(1 + sw2/2) for sv2 = 1): the paper's claim is that
the best network is the one with the largest sw2 that does not overflow.

    python experiments/sweep_relu.py            # quick CPU setting (minutes on 2 cores)
    python experiments/sweep_relu.py --full     # paper scale (GPU)

Quick setting: width 64, 3000 training / 2000 test examples, 3 epochs of SGD (momentum 0.9), batch
64, lr 1e-4, 7 x 7 grid, one seed.

The learning rate is 40x smaller than the tanh sweep's: the readout's curvature grows like
N p^(L), and p^(L) grows exponentially (ReLU) or polynomially (alpha-ReLU) with depth, so at lr 0.004
every network deeper than ~25 layers diverges in its first epoch. At 1e-4 the divergence boundary
follows log p^(L) ~ 10, still far below the float32 overflow line (log p^(L) = 88.72).

The script only builds the arguments of ``meanfield train`` (the same code path as the command);
extra arguments are passed through (e.g. ``--resume``, ``--seeds 3``). On a CPU the grid is sharded
over one XLA device per core (``--host-devices N`` to choose). Figures are also copied into
``figures/`` as ``mnist_relu_<setting>_*.png``.
"""

from __future__ import annotations

import sys

from _reference_sweep import run

BASE = ["--arch", "frn", "--act", "relu", "--sv2", "1", "--sa2", "0.5", "--sb2", "0.5"]
GRIDS = {
    "quick": ["--sw2", "0:1.5:7", "--depth", "10,25,50,100,150,200,300", "--lr", "0.001"],
    "reference": ["--sw2", "0:1.5:10", "--depth", "10,25,50,75,100,150,200,300"],
}


def main(argv=None) -> int:
    return run("relu", BASE, GRIDS, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
