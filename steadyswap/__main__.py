"""``python -m steadyswap``: the same as the ``steadyswap`` command."""

from steadyswap.cli.main import entry

if __name__ == "__main__":
    entry()
