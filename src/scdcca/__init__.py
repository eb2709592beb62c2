"""scdcca: Deep Cross-omics Cycle Attention for paired single-cell multi-omics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scdcca")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

from . import datasets, pl, tl
from .model import DCCA

__all__ = ["DCCA", "__version__", "datasets", "pl", "tl"]
