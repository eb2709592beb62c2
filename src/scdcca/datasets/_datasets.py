"""Loaders for the data files bundled inside the package (no network needed)."""

from __future__ import annotations

from importlib.resources import as_file, files

import mudata
from mudata import MuData


def scicar_kidney() -> MuData:
    """sci-CAR mouse kidney: 4,753 cells with paired RNA and ATAC.

    Cao et al., Science 2018, as subset and published with JSNMF. ``rna``: 5,000 genes, raw
    integer counts; ``atac``: 10,000 peaks (mm10, ``chr-start-end``), binary. Labels:
    ``mdata.obs["cell_type"]`` (14 published cell types). Provenance is in
    ``mdata.uns["source"]``.

    Returns
    -------
    A fresh MuData read from the packaged file (safe to modify).
    """
    resource = files("scdcca.datasets") / "data" / "scicar_kidney.h5mu"
    with as_file(resource) as path:
        return mudata.read_h5mu(path)
