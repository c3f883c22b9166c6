"""steadyswap: fast, temporally stable, colour-matched face swapping for video and images."""

from steadyswap.config import RunConfig
from steadyswap.errors import SteadySwapError

__version__ = "0.1.0"


def __getattr__(name: str):
    """Import the engine lazily so ``import steadyswap`` (and the CLI's --help) stay fast."""
    if name in ("swap_file", "FaceSwapper", "RunResult"):
        from steadyswap import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = ["FaceSwapper", "RunConfig", "RunResult", "SteadySwapError", "swap_file", "__version__"]
