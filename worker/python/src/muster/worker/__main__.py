"""python -m muster.worker — serve the nodes of a nodes directory (or of node files)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
