"""Loaders for the data files bundled inside the package (no network needed)."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import as_file, files

import mudata
import pandas as pd
from mudata import MuData

from scdcca._mudata import no_pull_on_update


def _read_h5mu(name: str) -> MuData:
    """Read ``data/<name>`` from the package.

    The files keep their labels in ``mdata.obs`` itself, so mudata's coming default of not
    pulling ``obs``/``var`` columns from the modalities on update gives the same object; it is
    asked for explicitly, which also avoids mudata's ``FutureWarning`` about that change.
    """
    resource = files("scdcca.datasets") / "data" / name
    with as_file(resource) as path, no_pull_on_update():
        return mudata.read_h5mu(path)


def scicar_kidney() -> MuData:
    """sci-CAR mouse kidney: 4,753 cells with paired RNA and ATAC.

    Cao et al., Science 2018, as subset and published with JSNMF. ``rna``: 5,000 genes, raw
    integer counts; ``atac``: 9,989 peaks (mm10, ``chr-start-end``, binary): the published
    10,000 less the 11 with no read in any of these cells. Labels: ``mdata.obs["cell_type"]``
    (14 published cell types). Provenance is in ``mdata.uns["source"]``.

    Returns
    -------
    A fresh MuData read from the packaged file (safe to modify).
    """
    return _read_h5mu("scicar_kidney.h5mu")


def scicar_kidney_genes(genes: Iterable[str] | None = None) -> pd.DataFrame:
    """GENCODE mm10 gene coordinates of the genes of :func:`scicar_kidney`.

    The GENCODE mouse (mm10) gene-level table as distributed in the data folder of the RGT
    package (CostaLab/reg-gen), restricted to the 4,934 of the 5,000 sci-CAR kidney genes it
    holds (the other 66 have no entry under that name). Coordinates are 1-based as in
    GENCODE; the TSS is the gene's start on the ``+`` strand and its end on the ``-`` strand.
    This is the gene table :func:`scdcca.tl.peak_gene_links` and
    :func:`scdcca.tl.peaks_near_genes` take; for other data use a full table or a GTF file
    (:func:`scdcca.tl.read_gtf`).

    Parameters
    ----------
    genes
        Gene names to keep (names not in the table are ignored); ``None`` for all rows.

    Returns
    -------
    A data frame with columns ``gene``, ``chrom`` (``chr1``, ...), ``tss``, ``strand``,
    ``start`` and ``end``, one row per gene.
    """
    resource = files("scdcca.datasets") / "data" / "scicar_kidney_genes_mm10.tsv.gz"
    with as_file(resource) as path:
        table = pd.read_csv(path, sep="\t", compression="gzip")
    if genes is not None:
        wanted = pd.Index([str(g) for g in genes])
        table = table[table["gene"].isin(wanted)].reset_index(drop=True)
    return table


def snare_cortex() -> MuData:
    """SNARE-seq adult mouse cerebral cortex: 10,309 cells with paired RNA and ATAC.

    Chen, Lake & Zhang, Nat Biotechnol 2019 (GEO GSE126074, AdBrainCortex), in the feature
    subsets published with scMoMaT (batch 1 of its MOp data). ``rna``: 1,677 genes, raw
    integer counts; ``atac``: 25,734 peaks (mm10, ``chr-start-end``), raw integer counts up to
    5 (pass ``binarize_epi=True`` to :meth:`scdcca.DCCA.setup_mudata`). Labels in
    ``mdata.obs``: ``cell_type`` (23 published clusters; ``Mis``: cells left unassigned),
    ``subclass`` (15 coarser classes, scMoMaT's mapping onto MOp subclasses) and ``sample``
    (the 12 sequencing libraries, a batch covariate). Provenance is in
    ``mdata.uns["source"]``.

    Returns
    -------
    A fresh MuData read from the packaged file (safe to modify).
    """
    return _read_h5mu("snare_cortex.h5mu")


def scmt_mesc() -> MuData:
    """scM&T-seq mouse embryonic stem cells: 77 cells with paired RNA and DNA methylation.

    Angermueller et al., Nat Methods 2016, as published with scAI. ``rna``: 5,000 genes,
    log-scale expression as published (not counts: use ``rna_likelihood="gaussian"``);
    ``methylation``: 15,000 CpG sites (``chr_position``), binary calls. The published matrix
    has no missing values, so 0 stands for an unmethylated site and for one that was not
    covered alike. Labels: ``mdata.obs["condition"]``, the culture condition (``Serum``: 64
    cells, ``2i``: 13). Provenance is in ``mdata.uns["source"]``.

    Returns
    -------
    A fresh MuData read from the packaged file (safe to modify).
    """
    return _read_h5mu("scmt_mesc.h5mu")
