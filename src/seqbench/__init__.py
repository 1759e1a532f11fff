"""seqbench: what each sequence-model architecture costs and what it buys."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seqbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
