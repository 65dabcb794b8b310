"""``python -m meanfield``: the same command as ``meanfield``."""

import sys

from .cli import main

sys.exit(main())
