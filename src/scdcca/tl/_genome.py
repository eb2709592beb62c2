"""Genomic coordinates: peak names, chromosome names, gene tables and GTF files."""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: ``chr1-100-200``, ``chr1:100-200``, ``1-100-200`` or ``chr1_100_200``.
_PEAK_RE = re.compile(r"^(?P<chrom>.+)[:\-_](?P<start>\d+)[\-_](?P<end>\d+)$")
_GENE_COLUMNS = ("gene", "chrom", "tss")


def chrom_key(names: Sequence[str] | pd.Index | pd.Series) -> np.ndarray:
    """Chromosome names reduced to a form that matches across conventions.

    ``chr1``, ``Chr1`` and ``1`` all become ``1``; ``chrM``, ``MT`` and ``M`` become ``M``.
    """
    keys = pd.Series(np.asarray(names, dtype=str)).str.replace(r"^chr", "", case=False, regex=True)
    keys = keys.where(~keys.str.fullmatch("MT|mt|m"), "M")
    return keys.to_numpy(dtype=object)


def parse_peaks(names: Sequence[str] | pd.Index) -> pd.DataFrame:
    """Chromosome, start and end of peaks named like ``chr1-100-200``.

    Parameters
    ----------
    names
        Peak names: ``chr1-100-200``, ``chr1:100-200``, ``1-100-200`` (no ``chr`` prefix) or
        ``chr1_100_200``.

    Returns
    -------
    A data frame indexed by the names with ``chrom`` (as written), ``chrom_key`` (see
    :func:`chrom_key`), ``start``, ``end`` and ``mid`` (integer midpoint).
    """
    names = pd.Index(np.asarray(names, dtype=str))
    parts = names.str.extract(_PEAK_RE)
    bad = parts["chrom"].isna().to_numpy()
    if bad.any():
        examples = list(names[bad][:3])
        raise ValueError(
            f"{int(bad.sum())} of {len(names)} peak names are not genomic coordinates, e.g. "
            f"{examples}. Name peaks like 'chr1-100-200', 'chr1:100-200' or '1-100-200' "
            "(adata.var_names), or pass the coordinates some other way."
        )
    frame = pd.DataFrame(
        {
            "chrom": parts["chrom"].to_numpy(),
            "chrom_key": chrom_key(parts["chrom"]),
            "start": parts["start"].astype(np.int64).to_numpy(),
            "end": parts["end"].astype(np.int64).to_numpy(),
        },
        index=names,
    )
    if (frame["end"] < frame["start"]).any():
        example = frame.index[frame["end"] < frame["start"]][0]
        raise ValueError(f"Peak {example!r} ends before it starts; check the peak names.")
    frame["mid"] = (frame["start"] + frame["end"]) // 2
    return frame


def read_gtf(path: str | Path, feature: str = "gene") -> pd.DataFrame:
    """Gene coordinates from a GTF file (plain or gzipped), parsed with pandas.

    Only lines whose feature column equals ``feature`` are kept; the gene name comes from the
    ``gene_name`` attribute (``gene_id`` where there is none). The TSS is ``start`` on the
    ``+`` strand and ``end`` on the ``-`` strand. Coordinates stay 1-based as in the file.

    Parameters
    ----------
    path
        A GTF file such as GENCODE's ``gencode.vM25.annotation.gtf.gz``.
    feature
        Feature type to read.

    Returns
    -------
    A gene table with columns ``gene, chrom, tss, strand, start, end``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"GTF file {str(path)!r} does not exist.")
    columns = ["chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attr"]
    frames = []
    reader = pd.read_csv(
        path,
        sep="\t",
        comment="#",
        header=None,
        names=columns,
        usecols=["chrom", "feature", "start", "end", "strand", "attr"],
        dtype={"chrom": str, "feature": str, "strand": str, "attr": str},
        chunksize=500_000,
        compression="infer",
    )
    for chunk in reader:
        frames.append(chunk[chunk["feature"] == feature])
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    if table.empty:
        raise ValueError(
            f"No {feature!r} lines in {str(path)!r}; is it a GTF file? The third column holds "
            "the feature type (gene, transcript, exon, ...)."
        )
    name = table["attr"].str.extract(r'gene_name "([^"]+)"', expand=False)
    gene_id = table["attr"].str.extract(r'gene_id "([^"]+)"', expand=False)
    plus = table["strand"].to_numpy() != "-"
    return pd.DataFrame(
        {
            "gene": name.fillna(gene_id).to_numpy(),
            "chrom": table["chrom"].to_numpy(),
            "tss": np.where(plus, table["start"], table["end"]).astype(np.int64),
            "strand": table["strand"].to_numpy(),
            "start": table["start"].astype(np.int64).to_numpy(),
            "end": table["end"].astype(np.int64).to_numpy(),
        }
    )


def gene_table(genes: pd.DataFrame | str | Path) -> pd.DataFrame:
    """A checked gene table: one row per gene name, with ``gene, chrom, chrom_key, tss``.

    Parameters
    ----------
    genes
        A data frame with columns ``gene``, ``chrom``, ``tss`` (``strand`` optional), a path to
        such a table (tab-separated, may be gzipped), or a path to a GTF file (``.gtf`` or
        ``.gtf.gz``, read with :func:`read_gtf`). Genes listed more than once keep their first
        row.
    """
    if isinstance(genes, str | Path):
        path = Path(genes)
        if not path.exists():
            raise FileNotFoundError(f"Gene table {str(path)!r} does not exist.")
        if path.name.endswith((".gtf", ".gtf.gz", ".gff2", ".gff2.gz")):
            genes = read_gtf(path)
        else:
            with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as handle:
                genes = pd.read_csv(handle, sep="\t")
    if not isinstance(genes, pd.DataFrame):
        raise TypeError(
            "`genes` must be a data frame with columns gene, chrom, tss, or a path to such a "
            f"table or to a GTF file; got {type(genes).__name__}."
        )
    missing = [c for c in _GENE_COLUMNS if c not in genes.columns]
    if missing:
        raise ValueError(
            f"The gene table lacks columns {missing}; it has {list(genes.columns)}. It needs "
            "`gene`, `chrom` and `tss` (a GENCODE gene table, or read a GTF with `tl.read_gtf`)."
        )
    table = genes.drop_duplicates("gene", keep="first").copy()
    table["gene"] = table["gene"].astype(str)
    table["tss"] = pd.to_numeric(table["tss"], errors="raise").astype(np.int64)
    table["chrom_key"] = chrom_key(table["chrom"])
    if "strand" not in table:
        table["strand"] = "+"
    return table.set_index("gene", drop=False)


def peaks_near_genes(
    peak_names: Sequence[str] | pd.Index,
    genes: pd.DataFrame | str | Path,
    gene_sets: dict[str, Sequence[str]],
    window: int = 50_000,
) -> dict[str, list[str]]:
    """Peaks whose midpoint lies within ``window`` bp of the TSS of any gene of a set.

    Use it to build peak annotations without a genome sequence, for example "peaks near the
    marker genes of each cell type", and pass the result to
    :func:`scdcca.tl.motif_activity` as ``annotations``.

    Parameters
    ----------
    peak_names
        Peak names (``adata.var_names`` of the ATAC modality), see :func:`parse_peaks`.
    genes
        Gene coordinates, see :func:`gene_table`.
    gene_sets
        Set name -> gene names. Genes missing from the table are ignored.
    window
        Largest distance in bp between a peak midpoint and a TSS.

    Returns
    -------
    Set name -> peak names (possibly empty), in the order of ``peak_names``.
    """
    if window < 0:
        raise ValueError(f"`window` must be >= 0 bp, got {window}.")
    peaks = parse_peaks(peak_names)
    table = gene_table(genes)
    by_chrom = {key: rows for key, rows in peaks.groupby("chrom_key", sort=False)}
    result = {}
    for name, members in gene_sets.items():
        found = table.loc[table.index.intersection(pd.Index(list(members), dtype=str))]
        hit = np.zeros(len(peaks), dtype=bool)
        for key, rows in found.groupby("chrom_key", sort=False):
            on_chrom = by_chrom.get(key)
            if on_chrom is None:
                continue
            mid = on_chrom["mid"].to_numpy()
            near = (np.abs(mid[:, None] - rows["tss"].to_numpy()[None, :]) <= window).any(1)
            hit[peaks.index.get_indexer(on_chrom.index[near])] = True
        result[str(name)] = list(peaks.index[hit])
    return result
