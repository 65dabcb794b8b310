"""Reference MNIST sweep for ReLU FRNs (docs/theory.md, section 6): test accuracy over (sigma_w^2, L).

Grid: sw2 in [0, 1.5], sv2 = 1, sa2 = sb2 = 0.5, L up to 300. Predictor: the metric expressivity
log s^(L); the heatmap also draws the float32 overflow line, the depth where log p^(L) exceeds
log(float32 max) = 88.72 (about L = 88.7 / log(1 + sw2/2) for sv2 = 1): the paper's claim is that
the best network is the one with the largest sw2 that does not overflow.

    python experiments/sweep_relu.py                                        # quick CPU setting
    python experiments/sweep_relu.py --reference --resume                   # -> figures/data/relu
    python experiments/sweep_relu.py --reference --readout meanfield --resume   # -> figures/data/relu_meanfield

With the linear readout the logits at initialization grow like sqrt(p^(L)), exponentially in depth, and
so do the gradients reaching the blocks; the mean-field readout divides x^(L) by the theory's
sqrt(p^(L)) and keeps both of order 1 (docs/mnist.md). The reference protocol is that of
_reference_sweep.py. Extra arguments pass through to ``meanfield train``.
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
    return run("relu", BASE, GRIDS, __doc__.split("\n\n")[0], argv, presets=True)


if __name__ == "__main__":
    sys.exit(main())
