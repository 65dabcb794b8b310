"""tanh FRN gradients: log chi, chi_b, chi_w with l counted from the top, l = 1..1e4, against
exp(A sqrt l), A = 1.4669 (docs/theory.md, section 6). Writes figures/tanh_gradients.png.

    python experiments/fig_tanh_gradients.py [--full] [--out figures]
"""

import sys

from meanfield.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", "--only", "tanh_gradients", *sys.argv[1:]]))
