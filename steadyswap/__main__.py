"""``python -m steadyswap``: the same as the ``steadyswap`` command."""

import sys

from steadyswap.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
