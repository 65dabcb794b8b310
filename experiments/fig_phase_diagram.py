"""Feedforward tanh order/chaos phase diagram (chi_1 = 1) next to the residual net's polynomial laws.

    python experiments/fig_phase_diagram.py [--full] [--out figures]
"""

import sys

from meanfield.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", "--only", "phase_diagram", *sys.argv[1:]]))
