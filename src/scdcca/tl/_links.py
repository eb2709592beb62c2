"""Peak-gene links: accessibility correlated with nearby expression, tested on trans peaks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from mudata import MuData
from scipy import stats

from ._checks import modality_names
from ._correlation import Layers, PairData, correlations, split_layers
from ._genome import gene_table, parse_peaks
from ._matrix import column_nonzeros, get_matrix, row_and_column_sums


def candidate_pairs(
    genes: pd.DataFrame, peaks: pd.DataFrame, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gene rows, peak rows and signed distances of all peaks within ``window`` of a TSS.

    The distance is peak midpoint minus TSS, sign flipped for ``-`` strand genes (positive:
    downstream of the TSS).
    """
    gene_rows, peak_rows, distance = [], [], []
    peak_groups = peaks.groupby("chrom_key", sort=False).indices
    mids_all = peaks["mid"].to_numpy()
    for key, g_idx in genes.groupby("chrom_key", sort=False).indices.items():
        p_idx = peak_groups.get(key)
        if p_idx is None:
            continue
        p_idx = p_idx[np.argsort(mids_all[p_idx], kind="stable")]
        mids = mids_all[p_idx]
        tss = genes["tss"].to_numpy()[g_idx]
        lo = np.searchsorted(mids, tss - window, side="left")
        hi = np.searchsorted(mids, tss + window, side="right")
        counts = hi - lo
        gene_rows.append(np.repeat(g_idx, counts))
        within = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)] or [[]])
        chosen = p_idx[within.astype(np.int64)]
        peak_rows.append(chosen)
        sign = np.where(genes["strand"].to_numpy()[g_idx] == "-", -1, 1)
        distance.append((mids_all[chosen] - np.repeat(tss, counts)) * np.repeat(sign, counts))
    if not gene_rows:
        empty = np.array([], dtype=np.int64)
        return empty, empty, empty
    return (
        np.concatenate(gene_rows).astype(np.int64),
        np.concatenate(peak_rows).astype(np.int64),
        np.concatenate(distance).astype(np.int64),
    )


def _background_sample(
    means: np.ndarray, n_bins: int, n_background: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accessibility bin of every peak, and background peaks drawn per bin with their bins."""
    open_ = means > 0
    edges = np.unique(np.quantile(means[open_], np.linspace(0, 1, n_bins + 1)))
    bins = np.clip(np.searchsorted(edges, means, side="right") - 1, 0, max(len(edges) - 2, 0))
    chosen, chosen_bin = [], []
    for b in np.unique(bins[open_]):
        members = np.flatnonzero(open_ & (bins == b))
        take = rng.choice(members, size=min(n_background, len(members)), replace=False)
        chosen.append(take)
        chosen_bin.append(np.full(len(take), b))
    return bins, np.concatenate(chosen), np.concatenate(chosen_bin)


def _null_moments(
    r_bg: np.ndarray,
    gene_chrom: np.ndarray,
    bg_chrom: np.ndarray,
    bg_bin: np.ndarray,
    pair_gene: np.ndarray,
    pair_bin: np.ndarray,
    min_background: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of each pair's null: its gene against trans background peaks of its bin.

    Where the bin has fewer than ``min_background`` trans background peaks with a defined
    correlation, the gene's trans background peaks of all bins are used.
    """
    mean = np.full(len(pair_gene), np.nan)
    sd = np.full(len(pair_gene), np.nan)
    for chrom in np.unique(gene_chrom):
        on_chrom = gene_chrom == chrom
        rank = np.cumsum(on_chrom) - 1  # row of each on-chromosome gene in `null`
        trans = bg_chrom != chrom
        # Fallback for bins with too few trans background peaks: all bins together.
        m_all, s_all, _ = _moments(r_bg[np.ix_(on_chrom, trans)])
        for b in np.unique(pair_bin):
            pairs = np.flatnonzero(on_chrom[pair_gene] & (pair_bin == b))
            if not len(pairs):
                continue
            m, s, n_ok = _moments(r_bg[np.ix_(on_chrom, trans & (bg_bin == b))])
            rows = rank[pair_gene[pairs]]
            enough = n_ok[rows] >= min_background
            mean[pairs] = np.where(enough, m[rows], m_all[rows])
            sd[pairs] = np.where(enough, s[rows], s_all[rows])
    return mean, sd


def _moments(null: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row means, standard deviations (ddof=1) and counts of the finite values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(null, 1), np.nanstd(null, 1, ddof=1), np.isfinite(null).sum(1)


def peak_gene_links(
    mdata: MuData,
    genes: pd.DataFrame | str | Path,
    window: int = 500_000,
    layer: Layers = None,
    rna: str | None = None,
    epi: str | None = None,
    normalize_rna: bool = True,
    n_background: int = 100,
    n_bins: int = 10,
    min_expected: float = 5.0,
    fdr: float | None = 0.05,
    seed: int = 0,
    block_size: int | None = None,
) -> pd.DataFrame:
    """Peaks whose accessibility correlates with a nearby gene's expression.

    Every peak whose midpoint lies within ``window`` bp of a gene's TSS is tested. Its
    Pearson correlation ``r`` with the gene's expression across cells is compared with the
    gene's correlations with background peaks on *other* chromosomes of similar mean
    accessibility (``n_bins`` quantile bins, ``n_background`` peaks drawn per bin):
    ``z = (r - mean_null) / sd_null``, two-sided normal p-value, Benjamini-Hochberg FDR over
    all tested pairs.

    Parameters
    ----------
    mdata
        Paired MuData (e.g. after :meth:`scdcca.DCCA.write_results`).
    genes
        Gene coordinates: a table with ``gene, chrom, tss`` (and ``strand``), a path to one
        (``genes_mm10.tsv.gz``) or to a GTF file; see :func:`scdcca.tl.read_gtf`.
        Chromosomes ``chr1`` and ``1`` match each other.
    window
        Largest distance in bp between a peak midpoint and the TSS.
    layer
        Layer of both modalities (``"dcca_denoised"``), or a pair ``(rna_layer, epi_layer)``;
        ``None``: ``.X``.
    rna, epi
        Modality names (default: those in ``mdata.uns["dcca"]``, else ``"rna"`` and the other
        one).
    normalize_rna
        Correlate ``log1p`` of counts per 10k (right for raw counts and for DCCA's denoised
        expression); ``False`` uses the values as they are.
    n_background
        Background peaks per accessibility bin.
    n_bins
        Accessibility bins.
    min_expected
        Pairs expected to be non-zero together in fewer cells than this (non-zero cells of
        the gene times those of the peak over all cells) are not tested: with so few
        co-occurrences the normal approximation of the null fails. Dense denoised layers
        pass it.
    fdr
        Keep links with q-value ``<= fdr``; ``None`` returns every tested pair.
    seed
        Seed for drawing background peaks.
    block_size
        Cells per block.

    Returns
    -------
    One row per link, sorted by p-value: ``gene``, ``peak``, ``chrom``, ``tss``,
    ``distance`` (bp, peak midpoint minus TSS, positive downstream), ``r``, ``z``,
    ``pvalue``, ``qvalue``.
    """
    rna, epi = modality_names(mdata, rna, epi)
    if window < 0:
        raise ValueError(f"`window` must be >= 0 bp, got {window}.")
    if fdr is not None and not 0 < fdr <= 1:
        raise ValueError(f"`fdr` must be in (0, 1] or None, got {fdr}.")
    table = gene_table(genes)
    known = table.index.intersection(mdata.mod[rna].var_names)
    if len(known) == 0:
        raise ValueError(
            f"None of the {mdata.mod[rna].n_vars} genes of mdata[{rna!r}] are in the gene "
            f"table (e.g. {list(mdata.mod[rna].var_names[:3])} vs {list(table.index[:3])}); "
            "use a table of the same genome and gene naming."
        )
    table = table.loc[known]
    peaks = parse_peaks(mdata.mod[epi].var_names)
    g_rows, p_rows, distance = candidate_pairs(table, peaks, window)
    if len(g_rows) == 0:
        raise ValueError(
            f"No peak lies within {window} bp of a gene TSS; check that peaks and gene table "
            f"use the same genome (peaks on {sorted(set(peaks['chrom']))[:3]}, genes on "
            f"{sorted(set(table['chrom']))[:3]})."
        )
    data = PairData.from_mudata(mdata, rna, epi, layer, normalize_rna)
    epi_matrix = get_matrix(mdata.mod[epi], split_layers(layer)[1], f"mdata[{epi!r}]")
    _, totals = row_and_column_sums(epi_matrix, block_size)
    gene_index = mdata.mod[rna].var_names.get_indexer(table.index)
    gene_nz = column_nonzeros(data.rna, block_size)[gene_index]
    peak_nz = column_nonzeros(epi_matrix, block_size)
    keep = gene_nz[g_rows] * peak_nz[p_rows] / data.n_cells >= min_expected
    g_rows, p_rows, distance = g_rows[keep], p_rows[keep], distance[keep]
    if len(g_rows) == 0:
        raise ValueError(
            f"No gene-peak pair within {window} bp is expected to be non-zero together in "
            f"min_expected={min_expected} cells; lower `min_expected` or use a denoised layer."
        )
    rng = np.random.default_rng(seed)
    bins, bg_peaks, bg_bins = _background_sample(totals / data.n_cells, n_bins, n_background, rng)
    r, r_bg = correlations(data, gene_index[g_rows], p_rows, bg_peaks, block_size)
    genes_used = np.unique(gene_index[g_rows])
    gene_chrom = pd.Series(table["chrom_key"].to_numpy(), index=gene_index)[genes_used]
    mean, sd = _null_moments(
        r_bg,
        gene_chrom.to_numpy(),
        peaks["chrom_key"].to_numpy()[bg_peaks],
        bg_bins,
        np.searchsorted(genes_used, gene_index[g_rows]),
        bins[p_rows],
        min_background=10,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        # Floor: the sd of r over permutations of the cells, 1 / sqrt(n - 1).
        z = (r - mean) / np.maximum(sd, 1 / np.sqrt(data.n_cells - 1))
    tested = np.isfinite(z)
    pvalue = np.full(len(z), np.nan)
    pvalue[tested] = 2 * stats.norm.sf(np.abs(z[tested]))
    qvalue = np.full(len(z), np.nan)
    if tested.any():
        qvalue[tested] = stats.false_discovery_control(pvalue[tested])
    links = pd.DataFrame(
        {
            "gene": table.index.to_numpy()[g_rows],
            "peak": peaks.index.to_numpy()[p_rows],
            "chrom": table["chrom"].to_numpy()[g_rows],
            "tss": table["tss"].to_numpy()[g_rows],
            "distance": distance,
            "r": r,
            "z": z,
            "pvalue": pvalue,
            "qvalue": qvalue,
        }
    )[tested]
    if fdr is not None:
        links = links[links["qvalue"] <= fdr]
    return links.sort_values(["pvalue", "gene", "peak"]).reset_index(drop=True)
