"""figures/exponents.md: predicted against measured asymptotic laws on long theory trajectories.

    python experiments/table_exponents.py [--full] [--out figures]
"""

import sys

from meanfield.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", "--only", "exponents", *sys.argv[1:]]))
