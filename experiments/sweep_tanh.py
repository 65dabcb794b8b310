"""Reference MNIST sweep for tanh FRNs (docs/theory.md, section 6): test accuracy over (sigma_w^2, L).

The paper's grid: sw2 in [0.1, 2] x L in [10, 300] with sv2 = 1.5, sa2 = 0.5, sb2 = 0.5; its theory
curve (gradient explosion R) sits near sw2 L ~ 145-150 and accuracy peaks along sw2 L = const.
Predictor: log R = log(chi^(0) / chi^(L)); the analysis fits the ridge log sw2 = a + b log L.

    python experiments/sweep_tanh.py                          # quick CPU setting (minutes on 2 cores)
    python experiments/sweep_tanh.py --reference --resume     # the reference protocol -> figures/data/tanh
    python experiments/sweep_tanh.py --reference --variant    # sa2 / sv2 varied, sv2^2 / (sv2 + sa2) fixed

The reference protocol (docs/mnist.md, fixed in _reference_sweep.py): width 64, 10 epochs on 10,000
examples, 3 seeds, every cell at learning rates 1e-3, 10^-2.5, 1e-2, the rate chosen per cell on 5,000
validation examples; sw2 at 10 log-spaced values, depths denser where sw2 L ~ 150 puts the ridge inside
the sw2 range (L >~ 75). The variant keeps A = (4/3) sqrt(2/pi) sv2 sigma_w / sqrt(sv2 + sa2) of the law
R = exp(A sqrt L) fixed (sv2^2 / (sv2 + sa2) = 1.125, as for sv2 = 1.5, sa2 = 0.5) while sa2 / sv2 runs
over 0, 1/3, 1, 2: the theory predicts the same ridge in every panel.

The script only builds the arguments of ``meanfield train`` (the same code path as the command);
extra arguments are passed through (e.g. ``--resume``). On a CPU the grid is sharded over one XLA device
per core (``--host-devices N`` to choose). ``meanfield train --analyze DIR --figures figures`` draws the
figures from the results.
"""

from __future__ import annotations

import sys

from _reference_sweep import run

BASE = ["--arch", "frn", "--act", "tanh", "--sb2", "0.5"]
# sw2 log-spaced over the paper's [0.1, 2]; depths over [10, 300], denser where sw2 L ~ 150 puts the
# ridge inside the sw2 range (L >~ 75)
SW2 = ",".join(f"{0.1 * 20 ** (i / 9):.4g}" for i in range(10))
DEPTHS = "10,25,50,75,100,150,200,300"
# sv2 / sa2 pairs with sv2^2 / (sv2 + sa2) = 1.125 and sa2 / sv2 = 0, 1/3, 1, 2
VARIANT = ["--sv2", "1.125,1.5,2.25,3.375", "--sa2", "0,0.5,2.25,6.75", "--zip", "sv2,sa2"]
GRIDS = {
    "quick": ["--sw2", "0.1:2:9", "--sv2", "1.5", "--sa2", "0.5", "--depth", "10,30,60,100,140,170,200,250,300",
              "--lr", "0.003162", "--seeds", "2"],
    "reference": ["--sw2", SW2, "--sv2", "1.5", "--sa2", "0.5", "--depth", DEPTHS],
    "variant_quick": ["--sw2", "0.1:2:6", *VARIANT, "--depth", "50,100,200,300", "--lr", "0.003162"],
    "variant_reference": ["--sw2", SW2, *VARIANT, "--depth", "25,50,100,150,200,300"],
}


def main(argv=None) -> int:
    return run("tanh", BASE, GRIDS, __doc__.split("\n\n")[0], argv, variant=True, presets=True)


if __name__ == "__main__":
    sys.exit(main())
