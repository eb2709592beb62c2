"""How well RNA and epigenome agree, raw versus DCCA: clustering kappa and linked correlation."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from mudata import MuData
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import cohen_kappa_score

from scdcca._constants import DENOISED_LAYER_KEY, LATENT_OBSM_KEY

from ._checks import modality_names
from ._correlation import PairData, correlations


def matched_kappa(first: Sequence, second: Sequence) -> float:
    """Cohen's kappa between two clusterings after matching their cluster labels.

    Labels of ``second`` are renamed to those of ``first`` by the assignment that maximises
    the number of cells in matched clusters (Hungarian algorithm); unmatched clusters keep
    labels of their own.

    Parameters
    ----------
    first
        Cluster label of each cell (any hashable values, compared as strings).
    second
        Another clustering of the same cells, in the same order.

    Returns
    -------
    Cohen's kappa of the matched labels: 1 for the same partition, about 0 for unrelated ones.

    Raises
    ------
    ValueError
        When the two clusterings have different numbers of cells.
    """
    a = pd.Series(np.asarray(first)).astype(str).to_numpy()
    b = pd.Series(np.asarray(second)).astype(str).to_numpy()
    if len(a) != len(b):
        raise ValueError(f"The clusterings have {len(a)} and {len(b)} cells.")
    table = pd.crosstab(a, b)
    rows, cols = linear_sum_assignment(-table.to_numpy())
    rename = {table.columns[c]: table.index[r] for r, c in zip(rows, cols, strict=True)}
    renamed = np.array([rename.get(x, f"unmatched:{x}") for x in b], dtype=object)
    return float(cohen_kappa_score(a, renamed))


def _kmeans(embedding: np.ndarray, k: int, seed: int) -> np.ndarray:
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(embedding)


def _rna_pca(adata: AnnData, n_components: int, seed: int) -> np.ndarray:
    view = AnnData(adata.X.copy() if adata.X is not None else None)
    sc.pp.normalize_total(view, target_sum=1e4)
    sc.pp.log1p(view)
    sc.pp.pca(view, n_comps=min(n_components, min(view.shape) - 1), random_state=seed)
    return view.obsm["X_pca"]


def _epi_lsi(adata: AnnData, n_components: int) -> np.ndarray:
    """LSI of the counts in ``adata.X`` with muon: TF-IDF, SVD, first component dropped.

    TF-IDF is ``log1p(1e4 * counts / cell total * n_cells / peak total)``
    (:func:`muon.atac.pp.tfidf` with ``log_tfidf=True``), on a sparse float64 copy of ``.X``;
    ``adata`` is left unchanged. :func:`muon.atac.tl.lsi` computes ``n_components + 1``
    components with :func:`scipy.sparse.linalg.svds`, which takes no seed here (ARPACK starts
    from a random vector), so the components are fixed only up to sign, which KMeans
    distances do not depend on. The first component follows sequencing depth and is dropped;
    the others are scaled to unit variance.
    """
    with warnings.catch_warnings():  # muon takes most of a second to import; only this needs it
        warnings.filterwarnings("ignore", message=r".*__version__.* is deprecated")
        warnings.filterwarnings("ignore", message="Tensorflow not installed")
        from muon import atac

    view = AnnData(sparse.csr_matrix(adata.X, dtype=np.float64, copy=True))
    with np.errstate(divide="ignore"):  # peaks or cells without counts: their entries stay 0
        atac.pp.tfidf(view, log_tf=False, log_idf=False, log_tfidf=True, scale_factor=1e4)
    n = min(n_components + 1, min(view.shape) - 1)
    atac.tl.lsi(view, scale_embeddings=False, n_comps=n)
    lsi = view.obsm["X_lsi"][:, 1:]
    return lsi / np.maximum(lsi.std(0), 1e-12)


def crossomics_agreement(
    mdata: MuData,
    links: pd.DataFrame,
    layer: str = DENOISED_LAYER_KEY,
    use_rep: str = LATENT_OBSM_KEY,
    n_clusters: int | None = None,
    labels: str | None = None,
    n_components: int = 30,
    rna: str | None = None,
    epi: str | None = None,
    seeds: Sequence[int] = (0, 1, 2),
) -> pd.DataFrame:
    """Agreement between the RNA and the epigenome view of the same cells, raw vs denoised.

    - ``kappa``: Cohen's kappa between KMeans clusterings (``n_clusters`` clusters) of the two
      modalities, cluster labels matched by the Hungarian algorithm, mean over ``seeds``.
      Raw: PCA of ``log1p`` counts per 10k of ``.X`` (RNA) and LSI (TF-IDF + SVD, first
      component dropped) of ``.X`` (epigenome). Denoised: the DCCA latents
      ``mdata[mod].obsm[use_rep]``.
    - ``mean_r``, ``median_r``, ``frac_positive``: Pearson correlation of the gene-peak pairs in
      ``links`` across cells, on ``.X`` (raw) and on ``layer`` (denoised) of both modalities
      (RNA as ``log1p`` counts per 10k); pairs with a constant side are left out
      (``n_pairs`` counts the rest).

    Parameters
    ----------
    mdata
        MuData after :meth:`scdcca.DCCA.write_results`.
    links
        Data frame with ``gene`` and ``peak`` columns (e.g. :func:`scdcca.tl.peak_gene_links`
        with ``fdr=None`` for all pairs within the window).
    layer
        Denoised layer of both modalities.
    use_rep
        ``obsm`` key of each modality's latent.
    n_clusters
        Clusters per modality; default: number of categories of ``labels``, else 10.
    labels
        Column of ``mdata.obs`` that sets ``n_clusters``.
    n_components
        PCA / LSI components for the raw clusterings.
    rna, epi
        Modality names.
    seeds
        KMeans seeds.

    Returns
    -------
    Rows ``raw`` and ``denoised``; columns ``kappa``, ``mean_r``, ``median_r``,
    ``frac_positive``, ``n_pairs``.
    """
    rna, epi = modality_names(mdata, rna, epi)
    for name in (rna, epi):
        if use_rep not in mdata.mod[name].obsm:
            raise KeyError(
                f"mdata[{name!r}].obsm has no {use_rep!r}; run `model.write_results(mdata)`."
            )
    if n_clusters is None:
        if labels is not None:
            if labels not in mdata.obs:
                raise KeyError(f"{labels!r} is not a column of mdata.obs.")
            n_clusters = int(mdata.obs[labels].nunique())
        else:
            n_clusters = 10
    genes = mdata.mod[rna].var_names.get_indexer(links["gene"].astype(str))
    peaks = mdata.mod[epi].var_names.get_indexer(links["peak"].astype(str))
    ok = (genes >= 0) & (peaks >= 0)
    if not ok.any():
        raise ValueError("No link names a gene and a peak of this MuData.")
    views = {
        "raw": (
            _rna_pca(mdata.mod[rna], n_components, seeds[0]),
            _epi_lsi(mdata.mod[epi], n_components),
            None,
        ),
        "denoised": (
            np.asarray(mdata.mod[rna].obsm[use_rep]),
            np.asarray(mdata.mod[epi].obsm[use_rep]),
            layer,
        ),
    }
    rows = {}
    for name, (z_rna, z_epi, lay) in views.items():
        kappas = [
            matched_kappa(_kmeans(z_rna, n_clusters, s), _kmeans(z_epi, n_clusters, s))
            for s in seeds
        ]
        data = PairData.from_mudata(mdata, rna, epi, lay, normalize_rna=True)
        r, _ = correlations(data, genes[ok], peaks[ok])
        r = r[np.isfinite(r)]
        rows[name] = {
            "kappa": float(np.mean(kappas)),
            "mean_r": float(r.mean()) if len(r) else np.nan,
            "median_r": float(np.median(r)) if len(r) else np.nan,
            "frac_positive": float((r > 0).mean()) if len(r) else np.nan,
            "n_pairs": len(r),
        }
    return pd.DataFrame.from_dict(rows, orient="index")
