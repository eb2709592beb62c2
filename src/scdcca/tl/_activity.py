"""chromVAR deviations and z-scores of peak annotations (motifs or any peak sets)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ._annotations import Annotations, annotation_matrix
from ._background import _background_from_totals, _gc
from ._checks import check_free, require_anndata
from ._matrix import (
    block_rows,
    check_non_negative,
    get_matrix,
    iter_blocks,
    row_and_column_sums,
    times,
)


def _check_background(background: np.ndarray, n_peaks: int) -> np.ndarray:
    background = np.asarray(background)
    if (
        background.ndim != 2
        or background.shape[0] != n_peaks
        or background.shape[1] < 2
        or not np.issubdtype(background.dtype, np.integer)
    ):
        raise ValueError(
            f"`background` must be an integer array of shape (n_peaks={n_peaks}, "
            f"n_iterations >= 2), got {background.dtype} {background.shape}; make it with "
            "`scdcca.tl.background_peaks(adata)`."
        )
    if background.min() < 0 or background.max() >= n_peaks:
        raise ValueError("`background` holds peak indices outside 0 .. n_peaks - 1.")
    return background


def deviations(
    matrix,
    annotations: sparse.csr_matrix,
    background: np.ndarray,
    block_size: int | None = None,
    sums: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected deviations and z-scores (cells x annotations).

    For cell ``c`` and annotation ``k`` with peak weights ``m``: observed
    ``O = sum_p x[c, p] m[p]``, expected ``E = N_c sum_p e[p] m[p]`` where ``N_c`` is the
    cell's total and ``e[p]`` the peak's share of all accessibility; the raw deviation is
    ``(O - E) / E``. Each background iteration ``b`` replaces every peak ``p`` by
    ``background[p, b]``; the deviation minus the mean background deviation is the
    bias-corrected deviation, divided by the background deviations' standard deviation
    (``ddof=1``) it is the z-score. Where the background deviations do not vary, the z-score
    is 0 if the deviation is 0 too (typically: no accessibility in the set nor in any
    background set; frequent in very sparse data) and NaN otherwise.

    Background observed counts are ``x @ M_b`` with ``M_b`` the annotation matrix whose rows
    are moved to the background peaks (``M_b[background[p, b]] += M[p]``), built per block;
    ``sums`` are the matrix's row and column sums if already known.
    """
    n_cells, n_peaks = matrix.shape
    depth, totals = sums if sums is not None else row_and_column_sums(matrix, block_size)
    share = totals / totals.sum() if totals.sum() > 0 else totals
    weights = sparse.csr_matrix(annotations, dtype=np.float64)
    weights = sparse.diags((totals > 0).astype(np.float64)) @ weights  # drop closed peaks
    expected = np.asarray(weights.T @ share).ravel()
    n_bg = background.shape[1]
    entries = weights.tocoo()

    def moved(b: int) -> sparse.csr_matrix:
        rows = background[entries.row, b]
        return sparse.csr_matrix((entries.data, (rows, entries.col)), shape=weights.shape)

    bg_expected = np.stack([np.asarray(moved(b).T @ share).ravel() for b in range(n_bg)])
    n_annotations = weights.shape[1]
    dev = np.empty((n_cells, n_annotations))
    z = np.empty((n_cells, n_annotations))
    step = block_rows(n_peaks + 4 * n_annotations, block_size, n_cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        for rows, block in iter_blocks(matrix, step):
            n_c = depth[rows][:, None]
            raw = (times(block, weights) - n_c * expected) / (n_c * expected)
            mean = np.zeros_like(raw)
            m2 = np.zeros_like(raw)
            for b in range(n_bg):
                e_b = n_c * bg_expected[b]
                sampled = (times(block, moved(b)) - e_b) / e_b
                delta = sampled - mean
                mean += delta / (b + 1)
                m2 += delta * (sampled - mean)
            dev[rows] = raw - mean
            sd = np.sqrt(m2 / (n_bg - 1))
            # A cell with no accessibility in the set nor in any background set: no evidence.
            flat = (sd == 0) & (np.abs(dev[rows]) < 1e-12)
            z[rows] = np.where(flat, 0.0, dev[rows] / np.where(sd == 0, np.nan, sd))
    return dev, z


def motif_activity(
    adata: AnnData,
    annotations: Annotations = "motif_matches",
    layer: str | None = None,
    background: np.ndarray | None = None,
    n_iterations: int = 50,
    gc_key: str | None = "gc_content",
    seed: int = 0,
    block_size: int | None = None,
    key_added: str = "chromvar",
    overwrite: bool = False,
    inplace: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Bias-corrected deviations and z-scores of motifs or any peak annotation (chromVAR).

    Works on raw counts or binary calls as well as on DCCA's denoised open probabilities
    (``layer="dcca_denoised"``), sparse or dense; cells are processed in blocks, so a sparse
    matrix is never densified whole.

    Parameters
    ----------
    adata
        Peaks modality, e.g. ``mdata["atac"]``.
    annotations
        ``adata.varm`` key of a peaks x annotations matrix (``"motif_matches"`` from
        :func:`scdcca.tl.motif_matches`), a data frame indexed by peak names, a mapping
        name -> peak names (e.g. from :func:`scdcca.tl.peaks_near_genes`), or a
        peaks x annotations matrix.
    layer
        Layer to use (``None``: ``adata.X``). Values must be non-negative. For cells from
        several batches, a denoised layer written with ``transform_batch`` (all batches, see
        :meth:`scdcca.DCCA.write_results`) keeps the batch shifts out of the scores.
    background
        Peaks x iterations background peak indices (:func:`scdcca.tl.background_peaks`);
        drawn here, matched on accessibility of ``layer`` and GC content, if ``None``.
    n_iterations
        Background iterations when ``background`` is drawn here.
    gc_key
        ``adata.var`` column with GC content used to match backgrounds (ignored if absent).
    seed
        Seed for the background draw.
    block_size
        Cells per block (default: as many as fit in 128 MiB).
    key_added
        Prefix of the output keys.
    overwrite
        Replace existing outputs.
    inplace
        Write into ``adata`` (``False``: return the results and change nothing).

    Returns
    -------
    With ``inplace=False``, the data frames ``(deviations, z)`` (cells x annotations).
    Otherwise nothing; writes

    - ``adata.obsm[key_added + "_deviations"]``: bias-corrected deviations (data frame);
    - ``adata.obsm[key_added + "_z"]``: z-scores (data frame);
    - ``adata.uns[key_added]``: ``layer``, ``annotations`` (the key, if one was given),
      ``n_iterations``, ``gc_matched``, ``seed``.

    Annotations without accessible peaks and cells without any accessibility get NaN. In very
    sparse data (tens of fragments per cell), most cells have no fragment in a small peak set
    nor in its backgrounds and get z = 0; use larger sets or the denoised layer.
    """
    adata = require_anndata(adata, "motif_activity")
    dev_key, z_key = f"{key_added}_deviations", f"{key_added}_z"
    if inplace:
        check_free(adata, {"obsm": [dev_key, z_key], "uns": [key_added]}, overwrite)
    matrix = get_matrix(adata, layer)
    check_non_negative(matrix, "layer " + repr(layer) if layer else "adata.X")
    weights, names = annotation_matrix(adata, annotations)
    sums = row_and_column_sums(matrix, block_size)
    totals = sums[1]
    gc = _gc(adata, gc_key)
    if background is None:
        if n_iterations < 2:
            raise ValueError(f"`n_iterations` must be >= 2, got {n_iterations}.")
        background = _background_from_totals(totals, gc, n_iterations, 50, 0.1, seed)
    background = _check_background(background, adata.n_vars)
    dev, z = deviations(matrix, weights, background, block_size, sums=sums)
    empty = np.isnan(dev).all(0)
    if empty.any():
        warnings.warn(
            f"{int(empty.sum())} annotations have no accessible peaks (NaN), e.g. "
            f"{[n for n, e in zip(names, empty, strict=True) if e][:3]}.",
            stacklevel=2,
        )
    dev_frame = pd.DataFrame(dev, index=adata.obs_names, columns=names)
    z_frame = pd.DataFrame(z, index=adata.obs_names, columns=names)
    if not inplace:
        return dev_frame, z_frame
    adata.obsm[dev_key] = dev_frame
    adata.obsm[z_key] = z_frame
    adata.uns[key_added] = {
        "layer": "X" if layer is None else layer,
        "annotations": annotations if isinstance(annotations, str) else "given",
        "n_iterations": int(background.shape[1]),
        "gc_matched": gc is not None,
        "seed": int(seed),
    }
    return None
