"""TF -> target networks: motif in a linked peak, then cross-validated ridge regression."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from mudata import MuData
from scipy import sparse

from scdcca._blocks import row_slices

from ._annotations import Annotations, annotation_matrix
from ._checks import modality_names
from ._correlation import expression_block
from ._matrix import get_matrix
from ._ridge import FoldGrams, fold_ids


def motif_gene_names(name: str) -> list[str]:
    """Gene names a motif stands for: ``"FOS::JUN"`` -> FOS, JUN; ``"GATA2(var.2)"`` -> GATA2.

    Parameters
    ----------
    name
        A motif name as JASPAR writes it; a ``_MA0036.3``-style id suffix (added to make
        names unique) and a ``(var.N)`` variant suffix are dropped.

    Returns
    -------
    The gene names, in the order of the motif name (dimers give two).
    """
    base = re.sub(r"_MA\d+\.\d+$", "", str(name))
    base = re.sub(r"\(var\.\d+\)$", "", base)
    return [part.strip() for part in base.split("::") if part.strip()]


def _tf_map(
    names: list[str], genes: pd.Index, tf_genes: Mapping[str, str | Sequence[str]] | None
) -> sparse.csr_matrix:
    """Annotations x genes 0/1 matrix: which RNA genes encode each annotation's TF."""
    upper = pd.Series(np.arange(len(genes)), index=genes.str.upper())
    upper = upper[~upper.index.duplicated()]
    rows, cols = [], []
    for k, name in enumerate(names):
        given = None if tf_genes is None else tf_genes.get(name)
        if tf_genes is not None and given is None:
            continue
        wanted = (
            motif_gene_names(name)
            if given is None
            else ([given] if isinstance(given, str) else list(given))
        )
        for gene in wanted:
            j = upper.get(str(gene).upper())
            if j is not None:
                rows.append(k)
                cols.append(int(j))
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), len(genes)))


def _link_matrix(links: pd.DataFrame, genes: pd.Index, peaks: pd.Index) -> sparse.csr_matrix:
    missing = [c for c in ("gene", "peak") if c not in links]
    if missing:
        raise ValueError(
            f"`links` lacks columns {missing}; pass the output of scdcca.tl.peak_gene_links."
        )
    g = genes.get_indexer(links["gene"].astype(str))
    p = peaks.get_indexer(links["peak"].astype(str))
    ok = (g >= 0) & (p >= 0)
    if not ok.any():
        raise ValueError(
            "No link names a gene of the RNA modality and a peak of the epigenome modality; "
            "were the links computed on this MuData?"
        )
    return sparse.csr_matrix(
        (np.ones(int(ok.sum())), (g[ok], p[ok])), shape=(len(genes), len(peaks))
    )


def _expression(matrix, columns: np.ndarray, normalize: bool, step: int = 2048) -> np.ndarray:
    out = np.empty((matrix.shape[0], len(columns)))
    for rows in row_slices(matrix.shape[0], step):
        out[rows] = expression_block(matrix[rows], columns, normalize)
    return out


def _standardise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sd = values.std(0)
    ok = sd > 1e-12
    return np.where(ok, (values - values.mean(0)) / np.where(ok, sd, 1), 0.0), ok


def _group_network(
    x: np.ndarray,
    y: np.ndarray,
    candidates: sparse.csr_matrix,
    cv: int,
    alphas: Sequence[float],
    rng: np.random.Generator,
) -> pd.DataFrame:
    """All candidate edges of one group of cells (indices into regulators and targets)."""
    x, x_ok = _standardise(x)
    y, y_ok = _standardise(y)
    grams = FoldGrams(x, y, fold_ids(len(x), cv, rng))
    parts = []
    for t in range(y.shape[1]):
        row = slice(candidates.indptr[t], candidates.indptr[t + 1])
        cand, n_peaks = candidates.indices[row], candidates.data[row]
        usable = x_ok[cand]
        cand, n_peaks = cand[usable], n_peaks[usable]
        if not y_ok[t] or len(cand) == 0:
            continue
        fit = grams.fit(t, cand, alphas)
        mean = fit.coefs.mean(0)
        sd = fit.coefs.std(0, ddof=1)
        # Delete-a-group jackknife: the folds' spread, scaled to the estimate's standard error.
        se = (cv - 1) / np.sqrt(cv) * sd
        parts.append(
            pd.DataFrame(
                {
                    "tf_index": cand,
                    "target_index": t,
                    "coef": mean,
                    "coef_se": se,
                    "z": np.divide(mean, se, out=np.full_like(mean, np.inf), where=se > 0),
                    "stability": (np.sign(fit.coefs) == np.sign(mean)[None, :]).mean(0),
                    "n_peaks": n_peaks.astype(np.int64),
                    "cv_r2": fit.r2,
                    "alpha": fit.alpha,
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def tf_target_network(
    mdata: MuData,
    links: pd.DataFrame,
    motifs: Annotations = "motif_matches",
    groupby: str | None = None,
    layer: str | None = None,
    rna: str | None = None,
    epi: str | None = None,
    tf_genes: Mapping[str, str | Sequence[str]] | None = None,
    normalize_rna: bool = True,
    cv: int = 5,
    alphas: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
    min_cells: int = 50,
    min_coef: float = 0.05,
    min_z: float = 3.0,
    stability: float = 1.0,
    min_r2: float = 0.0,
    keep_all: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """TF -> target-gene networks from motifs in linked peaks and ridge regression.

    For each target gene, the candidate TFs are those whose motif lies in a peak linked to
    the gene (``links``, e.g. from :func:`scdcca.tl.peak_gene_links`) and whose gene is in the
    RNA modality (the target itself excluded). The target's expression is regressed on the
    candidates' expression (both standardised) by ridge regression with ``cv``-fold
    cross-validation; the penalty (from ``alphas``, times the number of training cells) with
    the best pooled out-of-fold R^2 is kept. An edge is kept when its coefficient is stable and
    non-zero: the same sign in at least a fraction ``stability`` of the folds, a mean over
    folds of at least ``min_coef`` in absolute value and at least ``min_z`` jackknife standard
    errors from 0 (delete-a-fold jackknife: ``se = (cv - 1) / sqrt(cv) * sd`` over folds);
    and the target's CV R^2 exceeds ``min_r2``. With ``groupby``, one
    network per group of cells.

    Parameters
    ----------
    mdata
        Paired MuData.
    links
        Data frame with ``gene`` and ``peak`` columns.
    motifs
        TF annotation of the peaks in the epigenome modality: a ``.varm`` key
        (``"motif_matches"``) or anything :func:`scdcca.tl.motif_activity` accepts.
    groupby
        Column of ``mdata.obs`` (or of the RNA modality's ``obs``): one network per group.
    layer
        RNA layer (``None``: ``.X``), e.g. ``"dcca_denoised"``.
    rna, epi
        Modality names (defaults as in :func:`scdcca.tl.peak_gene_links`).
    tf_genes
        Annotation name -> TF gene name(s); default: from the motif name (``"FOS::JUN"`` ->
        FOS and JUN, case-insensitive), see :func:`motif_gene_names`.
    normalize_rna
        Use ``log1p`` counts per 10k.
    cv
        Number of folds.
    alphas
        Ridge penalties to choose from, on the scale of correlations.
    min_cells
        Groups with fewer cells are skipped.
    min_coef, min_z, stability, min_r2
        Edge filters (see above).
    keep_all
        Return every candidate edge with a ``kept`` column instead of the kept edges only.
    seed
        Seed for the folds.

    Returns
    -------
    One row per edge: ``group``, ``tf``, ``target``, ``coef`` (mean over folds, standardised
    units), ``coef_se`` (jackknife), ``z`` (``coef / coef_se``), ``stability`` (fraction of
    folds with the mean's sign), ``n_peaks`` (linked peaks x motifs of the TF), ``cv_r2``
    and ``alpha`` (of the target's model), ``kept``; sorted by group and decreasing
    ``|coef|``.
    """
    rna, epi = modality_names(mdata, rna, epi)
    if cv < 2:
        raise ValueError(f"`cv` must be >= 2 folds, got {cv}.")
    if not 0 < stability <= 1:
        raise ValueError(f"`stability` must be in (0, 1], got {stability}.")
    genes = mdata.mod[rna].var_names
    weights, names = annotation_matrix(mdata.mod[epi], motifs)
    tf_map = _tf_map(names, genes, tf_genes)
    if tf_map.nnz == 0:
        raise ValueError(
            f"No motif name matches a gene of mdata[{rna!r}] (e.g. {names[:3]}); pass "
            "`tf_genes` mapping motif names to gene names."
        )
    link = _link_matrix(links, genes, mdata.mod[epi].var_names)
    present = (weights != 0).astype(np.float64)  # a new matrix: the user's stays as it is
    hits = (link @ present @ tf_map).tocsr()  # targets x TF genes: linked peak x motif hits
    hits = (hits - sparse.diags(hits.diagonal())).tocsr()  # a gene is not its own candidate
    hits.eliminate_zeros()
    targets = np.flatnonzero(np.diff(hits.indptr) > 0)
    if len(targets) == 0:
        raise ValueError("No linked peak holds a motif of a TF in the RNA modality.")
    regulators = np.unique(hits.indices)
    candidates = hits[targets][:, regulators].tocsr()
    candidates.sort_indices()
    matrix = get_matrix(mdata.mod[rna], layer, f"mdata[{rna!r}]")
    x_all = _expression(matrix, regulators, normalize_rna)
    y_all = _expression(matrix, targets, normalize_rna)
    if groupby is None:
        groups = pd.Series("all", index=mdata.obs_names)
    else:
        obs = mdata.obs if groupby in mdata.obs else mdata.mod[rna].obs
        if groupby not in obs:
            raise KeyError(f"{groupby!r} is not a column of mdata.obs ({list(mdata.obs)}).")
        groups = obs[groupby].reindex(mdata.mod[rna].obs_names)
    rng = np.random.default_rng(seed)
    parts, skipped = [], []
    for group, cells in groups.groupby(groups, observed=True, sort=True).indices.items():
        if len(cells) < max(min_cells, 2 * cv):
            skipped.append(str(group))
            continue
        edges = _group_network(x_all[cells], y_all[cells], candidates, cv, alphas, rng)
        parts.append(edges.assign(group=str(group)))
    if skipped:
        warnings.warn(
            f"Skipped groups with fewer than {min_cells} cells: {skipped}.", stacklevel=2
        )
    columns = [
        "group",
        "tf",
        "target",
        "coef",
        "coef_se",
        "z",
        "stability",
        "n_peaks",
        "cv_r2",
        "alpha",
        "kept",
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=columns)
    net = pd.concat(parts, ignore_index=True)
    net["tf"] = genes[regulators[net.pop("tf_index").to_numpy()]]
    net["target"] = genes[targets[net.pop("target_index").to_numpy()]]
    net["kept"] = (
        (net["stability"] >= stability - 1e-9)
        & (net["coef"].abs() >= min_coef)
        & (net["z"].abs() >= min_z)
        & (net["cv_r2"] > min_r2)
    )
    net = net[columns]
    if not keep_all:
        net = net[net["kept"]]
    order = net.assign(_abs=-net["coef"].abs()).sort_values(["group", "_abs"]).index
    return net.loc[order].reset_index(drop=True)
