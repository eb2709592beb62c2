"""scdcca: Deep Cross-omics Cycle Attention for paired single-cell multi-omics.

The submodules (``datasets``, ``pl``, ``tl``, ``model``, ``module``, ``train``, ``data``)
and :class:`DCCA` are imported on first use, so ``import scdcca`` and the ``scdcca`` command
line start without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from . import data, datasets, model, module, pl, tl, train
    from .model import DCCA

__all__ = ["DCCA", "__version__", "data", "datasets", "model", "module", "pl", "tl", "train"]
_SUBMODULES = ("data", "datasets", "model", "module", "pl", "tl", "train")


def __getattr__(name: str):
    """Import a submodule, or :class:`DCCA`, the first time it is asked for."""
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "DCCA":
        return importlib.import_module(".model", __name__).DCCA
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
