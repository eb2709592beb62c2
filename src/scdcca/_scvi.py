"""The private scvi-tools API scdcca relies on, in one place.

scvi-tools does not export these names; every other module of the package imports them from
here, so a change of scvi-tools' internals touches this file only. ``pyproject.toml`` bounds
scvi-tools to the releases these imports were tested with.
"""

from __future__ import annotations

from scvi.data._constants import _SCVI_UUID_KEY as SCVI_UUID_KEY
from scvi.model._utils import (
    scatac_raw_counts_properties,
    scrna_raw_counts_properties,
    use_distributed_sampler,
)
from scvi.model.base._de_core import _de_core as de_core
from scvi.utils._docstrings import de_dsp

__all__ = [
    "SCVI_UUID_KEY",
    "de_core",
    "de_dsp",
    "scatac_raw_counts_properties",
    "scrna_raw_counts_properties",
    "use_distributed_sampler",
]
