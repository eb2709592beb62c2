"""Data handling for the benchmark runner: loading, subsampling, splits and baseline spaces.

The parent process reads the user's ``.h5mu`` once, keeps the two modalities it was told
about (binarising the epigenome with ``--binarize``) and the label/batch columns, optionally
subsamples cells, and writes that compact MuData into the run's temporary folder; every worker
reads it from there. The functions ``rna_pca`` and ``epi_lsi`` give the classical spaces used
by the ``pca_lsi``, ``wnn`` and ``knn`` methods, fitted on training cells and able to project
new ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import mudata
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.model_selection import KFold, train_test_split

LABEL = "label"  # column names in the compact MuData the workers read
BATCH = "batch"
RNA = "rna"
EPI = "epi"


@dataclass
class Spec:
    """What the user said about the data set (``--rna``, ``--epi``, ``--label``, ...)."""

    path: Path
    rna: str
    epi: str
    label: str
    batch: str | None
    binarize: bool

    @property
    def name(self) -> str:
        """Data set name: the file stem."""
        return self.path.stem


def load_compact(spec: Spec, max_cells: int | None, subsample_seed: int = 0) -> mudata.MuData:
    """Paired cells of the two modalities with ``label`` (and ``batch``) in ``.obs``.

    Parameters
    ----------
    spec
        Data set description.
    max_cells
        Keep at most this many cells (stratified by label where every label has at least
        two cells, random otherwise); ``None`` keeps all.
    subsample_seed
        Seed of the subsample (the same cells for every training seed).

    Returns
    -------
    MuData with modalities ``"rna"`` (counts, CSR float32) and ``"epi"`` (CSR float32, 0/1
    when ``spec.binarize``), cells in the file's order, and ``obs`` columns ``label`` (str)
    and, with a batch key, ``batch`` (str).
    """
    full = mudata.read_h5mu(spec.path)
    for key in (spec.rna, spec.epi):
        if key not in full.mod:
            raise KeyError(f"{spec.path.name} has no modality {key!r}: {list(full.mod)}")
    cells = full[spec.rna].obs_names.intersection(full[spec.epi].obs_names)
    obs = full.obs.loc[cells]
    for key in (spec.label, spec.batch):
        if key is not None and key not in obs:
            raise KeyError(f"{spec.path.name}: no obs column {key!r} ({list(obs.columns)})")
    labels = obs[spec.label].astype(str).to_numpy()
    keep = np.arange(len(cells))
    if max_cells is not None and max_cells < len(cells):
        counts = pd.Series(labels).value_counts()
        stratify = labels if counts.min() >= 2 else None
        keep, _ = train_test_split(
            keep, train_size=max_cells, random_state=subsample_seed, stratify=stratify
        )
        keep = np.sort(keep)
    cells = cells[keep]
    rna = sparse.csr_matrix(full[spec.rna][cells].X, dtype=np.float32)
    epi = sparse.csr_matrix(full[spec.epi][cells].X, dtype=np.float32)
    if spec.binarize:
        epi.data = (epi.data != 0).astype(np.float32)
        epi.eliminate_zeros()
    new_obs = pd.DataFrame({LABEL: labels[keep]}, index=cells)
    if spec.batch is not None:
        new_obs[BATCH] = obs.loc[cells, spec.batch].astype(str).to_numpy()
    mods = {
        RNA: ad.AnnData(rna, obs=new_obs.copy(), var=pd.DataFrame(index=full[spec.rna].var_names)),
        EPI: ad.AnnData(epi, obs=new_obs.copy(), var=pd.DataFrame(index=full[spec.epi].var_names)),
    }
    compact = mudata.MuData(mods)
    compact.obs = new_obs.copy()
    return compact


# ------------------------------------------------------------------ splits
def heldout_split(labels: np.ndarray, seed: int, train_fraction: float = 0.8) -> tuple:
    """Fixed train/held-out split of one seed (stratified by label when possible)."""
    index = np.arange(len(labels))
    counts = pd.Series(labels).value_counts()
    stratify = labels if counts.min() >= 2 else None
    train, test = train_test_split(
        index, train_size=train_fraction, random_state=seed, stratify=stratify
    )
    return np.sort(train), np.sort(test)


def folds(n_cells: int, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold split of the cells, shuffled with ``seed``."""
    splitter = KFold(n_folds, shuffle=True, random_state=seed)
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.arange(n_cells))]


# ------------------------------------------------------------------ classical spaces
def lognorm(counts: sparse.spmatrix) -> sparse.csr_matrix:
    """``log1p`` of counts scaled to 10,000 per cell (scanpy's ``normalize_total`` + ``log1p``)."""
    x = sparse.csr_matrix(counts, dtype=np.float64)
    x = sparse.diags(1e4 / np.maximum(x.sum(1).A1, 1)) @ x
    x.data = np.log1p(x.data)
    return sparse.csr_matrix(x)


def n_components(shape: tuple[int, int], wanted: int = 50) -> int:
    """At most ``wanted`` components, fewer for tiny matrices."""
    return max(2, min(wanted, shape[0] - 1, shape[1] - 1))


def rna_pca(counts: sparse.spmatrix, train: np.ndarray, n_comps: int = 50) -> np.ndarray:
    """PCA of log-normalised RNA (scanpy, fitted on ``train``), all cells projected."""
    import scanpy as sc

    x = lognorm(counts)
    fit = ad.AnnData(x[train])
    n_comps = n_components(fit.shape, n_comps)
    sc.pp.pca(fit, n_comps=n_comps, random_state=0)
    mean = np.asarray(x[train].mean(0)).ravel()
    loadings = fit.varm["PCs"]
    z = np.asarray(x @ loadings) - mean @ loadings
    z[train] = fit.obsm["X_pca"]
    return z


def epi_lsi(calls: sparse.spmatrix, train: np.ndarray, n_comps: int = 50) -> np.ndarray:
    """LSI of the epigenome with muon (``tfidf`` + ``lsi`` on ``train``), all cells projected.

    The first LSI component (which tracks sequencing depth) is dropped. Cells outside
    ``train`` get muon's TF-IDF with the training cells' IDF and are projected onto the
    training singular vectors (``X V / s``, the scale of muon's ``X_lsi``).
    """
    import muon as mu

    x = sparse.csr_matrix(calls, dtype=np.float64)
    fit = ad.AnnData(x[train].copy())
    mu.atac.pp.tfidf(fit, scale_factor=1e4)
    n_comps = n_components(fit.shape, n_comps + 1)
    mu.atac.tl.lsi(fit, n_comps=n_comps)
    # muon's X_lsi: U of X = U S V^T, each column standardised (``scale_embeddings=True``);
    # X V / S reproduces U for the training cells and projects the others
    singular = fit.uns["lsi"]["stdev"] * np.sqrt(len(train) - 1)
    column_sums = np.asarray(x[train].sum(0)).ravel()
    with np.errstate(divide="ignore"):
        idf = np.log1p(len(train) / column_sums)
    idf[~np.isfinite(idf)] = 0.0
    depth = np.maximum(x.sum(1).A1, 1e-12)
    tf = sparse.diags(1e4 / depth) @ x
    tf.data = np.log1p(tf.data)
    u = np.asarray((tf @ sparse.diags(idf)) @ fit.varm["LSI"]) / singular
    z = (u - u[train].mean(0)) / u[train].std(0)
    return z[:, 1:]


def scale_block(z: np.ndarray, train: np.ndarray | None = None) -> np.ndarray:
    """Centre a block and divide it by its total standard deviation (sum of variances = 1)."""
    reference = z if train is None else z[train]
    centred = z - reference.mean(0)
    total = np.sqrt(((reference - reference.mean(0)) ** 2).sum(1).mean())
    return centred / max(total, 1e-12)
