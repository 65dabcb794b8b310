"""Dynamics figures (docs/theory.md, section 5): p, e, s and R against depth for the tanh RRN, tanh FRN, ReLU FRN
and alpha-ReLU FRN (alpha = 0.6, 0.75, 0.9); theory lines, simulation points, dashed laws.

    python experiments/fig_dynamics.py [--full] [--out figures]
"""

import sys

from meanfield.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", "--only", "dynamics", *sys.argv[1:]]))
