"""Pearson correlations between genes and peaks of paired cells, one block of cells at a time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mudata import MuData
from scipy import sparse

from scdcca._blocks import row_slices

from ._matrix import BLOCK_BYTES, dense, get_matrix

Layers = str | None | tuple[str | None, str | None]


def split_layers(layer: Layers) -> tuple[str | None, str | None]:
    """``layer`` for both modalities, or ``(rna_layer, epi_layer)``."""
    if isinstance(layer, tuple | list):
        if len(layer) != 2:
            raise ValueError("`layer` must be one layer name or a pair (rna_layer, epi_layer).")
        return layer[0], layer[1]
    return layer, layer


def expression_block(block, columns: np.ndarray, normalize: bool) -> np.ndarray:
    """Selected columns of a block of RNA rows, as ``log1p`` counts per 10k if ``normalize``."""
    if sparse.issparse(block):
        block = sparse.csr_matrix(block, dtype=np.float64)
        picked = block[:, columns].toarray()
    else:
        block = np.asarray(block, dtype=np.float64)
        picked = block[:, columns]
    if not normalize:
        return picked
    totals = np.asarray(block.sum(1)).ravel()
    scale = np.divide(1e4, totals, out=np.zeros_like(totals), where=totals > 0)
    return np.log1p(picked * scale[:, None])


@dataclass
class PairData:
    """Matrices of the two modalities of a MuData and how to read them."""

    rna: object
    epi: object
    normalize_rna: bool

    @classmethod
    def from_mudata(
        cls, mdata: MuData, rna: str, epi: str, layer: Layers, normalize_rna: bool
    ) -> PairData:
        rna_layer, epi_layer = split_layers(layer)
        return cls(
            get_matrix(mdata.mod[rna], rna_layer, f"mdata[{rna!r}]"),
            get_matrix(mdata.mod[epi], epi_layer, f"mdata[{epi!r}]"),
            normalize_rna,
        )

    @property
    def n_cells(self) -> int:
        return self.rna.shape[0]


def _stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return values.sum(0), (values**2).sum(0)


def correlations(
    data: PairData,
    pair_genes: np.ndarray,
    pair_peaks: np.ndarray,
    extra_peaks: np.ndarray | None = None,
    block_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Correlation of gene ``pair_genes[i]`` with peak ``pair_peaks[i]`` for every ``i``.

    With ``extra_peaks``, also the correlation of every gene in ``pair_genes`` (in the order
    of ``np.unique(pair_genes)``) with every peak in ``extra_peaks``.

    Returns
    -------
    Pair correlations (NaN where either side is constant) and the genes x extra peaks
    matrix (or ``None``).
    """
    genes, gene_of_pair = np.unique(pair_genes, return_inverse=True)
    extra = np.array([], dtype=np.int64) if extra_peaks is None else np.asarray(extra_peaks)
    peaks, peak_of = np.unique(np.concatenate([pair_peaks, extra]), return_inverse=True)
    peak_of_pair, peak_of_extra = peak_of[: len(pair_peaks)], peak_of[len(pair_peaks) :]
    n = data.n_cells
    width = len(genes) + len(peaks) + 2 * len(pair_genes) + len(extra)
    step = block_size or int(np.clip(BLOCK_BYTES // (8 * max(width, 1)), 16, max(n, 16)))
    g_sum, g_sq = np.zeros(len(genes)), np.zeros(len(genes))
    p_sum, p_sq = np.zeros(len(peaks)), np.zeros(len(peaks))
    cross = np.zeros(len(pair_genes))
    cross_extra = np.zeros((len(genes), len(extra)))
    for rows in row_slices(n, step):
        expr = expression_block(data.rna[rows], genes, data.normalize_rna)
        acc = data.epi[rows]
        acc = (
            sparse.csr_matrix(acc, dtype=np.float64)[:, peaks]
            if sparse.issparse(acc)
            else np.asarray(acc, dtype=np.float64)[:, peaks]
        )
        s, q = _stats(expr)
        g_sum += s
        g_sq += q
        acc_dense = dense(acc)
        s, q = _stats(acc_dense)
        p_sum += s
        p_sq += q
        cross += np.einsum("ij,ij->j", expr[:, gene_of_pair], acc_dense[:, peak_of_pair])
        if len(extra):
            cross_extra += expr.T @ acc_dense[:, peak_of_extra]
    g_mean, p_mean = g_sum / n, p_sum / n
    g_sd = np.sqrt(np.maximum(g_sq / n - g_mean**2, 0))
    p_sd = np.sqrt(np.maximum(p_sq / n - p_mean**2, 0))
    g_sd[g_sd < 1e-12] = np.nan
    p_sd[p_sd < 1e-12] = np.nan
    a, b = gene_of_pair, peak_of_pair
    r = (cross / n - g_mean[a] * p_mean[b]) / (g_sd[a] * p_sd[b])
    r_extra = None
    if extra_peaks is not None:
        e = peak_of_extra
        cov = cross_extra / n - np.outer(g_mean, p_mean[e])
        r_extra = cov / np.outer(g_sd, p_sd[e])
    return np.clip(r, -1, 1), None if r_extra is None else np.clip(r_extra, -1, 1)
