"""Background peaks matched on accessibility (and GC content), for chromVAR deviations."""

from __future__ import annotations

import numpy as np
from anndata import AnnData

from ._checks import require_anndata
from ._matrix import get_matrix, row_and_column_sums


def _whiten(features: np.ndarray) -> np.ndarray:
    """Centre and decorrelate the columns (Cholesky of their covariance)."""
    centred = features - features.mean(0)
    cov = np.atleast_2d(np.cov(centred, rowvar=False))
    cov += 1e-12 * np.eye(len(cov))
    chol = np.linalg.cholesky(cov)
    return np.linalg.solve(chol, centred.T).T


def sample_background(
    features: np.ndarray,
    n_iterations: int = 50,
    n_bins: int = 50,
    bandwidth: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """For each row, ``n_iterations`` other rows drawn near it in whitened feature space.

    Rows are binned on a grid of ``n_bins`` per feature over the whitened features; a
    background peak is drawn by picking a bin with probability proportional to
    ``exp(-d^2 / (2 bandwidth^2))`` times its number of rows (``d``: distance between bin
    centres) and then a row of that bin uniformly.

    Returns
    -------
    Integer array, rows x ``n_iterations``.
    """
    white = _whiten(np.asarray(features, dtype=np.float64).reshape(len(features), -1))
    low, high = white.min(0), white.max(0)
    step = np.where(high > low, (high - low) / max(n_bins - 1, 1), 1.0)
    cell = np.rint((white - low) / step).astype(np.int64)
    bins, membership = np.unique(cell, axis=0, return_inverse=True)
    membership = membership.ravel()
    centres = bins * step
    size = np.bincount(membership, minlength=len(bins))
    order = np.argsort(membership, kind="stable")
    first = np.concatenate([[0], np.cumsum(size)])
    dist2 = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    weight = np.exp(-dist2 / (2 * bandwidth**2)) * size[None, :]
    prob = weight / weight.sum(1, keepdims=True)
    rng = np.random.default_rng(seed)
    out = np.empty((len(white), n_iterations), dtype=np.int64)
    for b in range(len(bins)):
        rows = order[first[b] : first[b + 1]]
        picked = rng.choice(len(bins), size=(len(rows), n_iterations), p=prob[b])
        within = rng.integers(0, size[picked])
        out[rows] = order[first[picked] + within]
    return out


def background_peaks(
    adata: AnnData,
    layer: str | None = None,
    gc_key: str | None = "gc_content",
    n_iterations: int = 50,
    n_bins: int = 50,
    bandwidth: float = 0.1,
    seed: int = 0,
    block_size: int | None = None,
) -> np.ndarray:
    """Background peaks for each peak, matched on total accessibility and GC content.

    As in chromVAR: features are ``log10`` of each peak's total accessibility over cells and,
    if ``adata.var[gc_key]`` exists, its GC content; they are whitened and binned, and
    backgrounds are drawn from nearby bins (see :func:`sample_background`). Peaks with no
    accessibility are neither matched nor drawn (their row points to themselves).

    Parameters
    ----------
    adata
        Peaks modality.
    layer
        Layer with counts, binary calls or probabilities (``None``: ``adata.X``).
    gc_key
        ``adata.var`` column with GC content (written by :func:`scdcca.tl.motif_matches`); not
        used if absent or ``None``.
    n_iterations
        Background peaks per peak.
    n_bins
        Grid bins per feature.
    bandwidth
        Width of the Gaussian kernel over bins, in whitened units.
    seed
        Random seed.
    block_size
        Cells per block when summing.

    Returns
    -------
    Integer array, peaks x ``n_iterations``, of peak indices.
    """
    adata = require_anndata(adata, "background_peaks")
    if n_iterations < 2:
        raise ValueError(f"`n_iterations` must be >= 2 (z-scores need it), got {n_iterations}.")
    _, totals = row_and_column_sums(get_matrix(adata, layer), block_size)
    return _background_from_totals(
        totals, _gc(adata, gc_key), n_iterations, n_bins, bandwidth, seed
    )


def _gc(adata: AnnData, gc_key: str | None) -> np.ndarray | None:
    if gc_key is None or gc_key not in adata.var:
        return None
    gc = adata.var[gc_key].to_numpy(dtype=np.float64)
    return np.where(np.isnan(gc), np.nanmedian(gc) if np.isfinite(gc).any() else 0.5, gc)


def _background_from_totals(
    totals: np.ndarray,
    gc: np.ndarray | None,
    n_iterations: int,
    n_bins: int,
    bandwidth: float,
    seed: int,
) -> np.ndarray:
    open_ = np.flatnonzero(totals > 0)
    if len(open_) < 2:
        raise ValueError("Fewer than 2 peaks have any accessibility; nothing to match against.")
    features = np.log10(totals[open_])[:, None]
    if gc is not None:
        features = np.column_stack([features, gc[open_]])
        if np.ptp(features[:, 1]) == 0:
            features = features[:, :1]
    if np.ptp(features[:, 0]) == 0 and features.shape[1] == 1:
        rng = np.random.default_rng(seed)
        sampled = rng.integers(0, len(open_), size=(len(open_), n_iterations))
    else:
        sampled = sample_background(features, n_iterations, n_bins, bandwidth, seed)
    out = np.repeat(np.arange(len(totals))[:, None], n_iterations, axis=1)
    out[open_] = open_[sampled]
    return out
