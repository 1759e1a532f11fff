"""seqbench's version, as installed (a source tree never installed says so)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seqbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
