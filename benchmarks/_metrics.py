"""Scores computed in the parent process from what the workers returned.

- :func:`kmeans_scores`: KMeans with k = number of labels, ARI/NMI averaged over 3 KMeans
  seeds (as ``benchmarks/accuracy.py``).
- :func:`scib_scores`: scib-metrics' ``Benchmarker`` on all embeddings of one seed together
  (bio conservation: isolated labels, Leiden and KMeans NMI/ARI, silhouette label, cLISI;
  batch correction with a batch key: BRAS, iLISI, kBET, graph connectivity, PCR comparison
  against PCA of log-normalised RNA); raw (not min-max scaled) values and scib's aggregates.
- :func:`graph_scores`: the graph-based scib-metrics (Leiden NMI/ARI, cLISI; iLISI, kBET,
  graph connectivity) on a neighbour graph, for methods that give a graph and no embedding
  (WNN).
- :func:`CrossModal`: accumulates the cross-modal prediction scores over folds.
- :func:`knn_accuracy`: 15-nearest-neighbour label transfer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    average_precision_score,
    normalized_mutual_info_score,
    roc_auc_score,
)
from sklearn.neighbors import NearestNeighbors

N_NEIGHBOURS = 15

# scib-metrics' clean metric names -> CSV columns
SCIB_COLUMNS = {
    "Isolated labels": "isolated_labels",
    "Leiden NMI": "leiden_nmi",
    "Leiden ARI": "leiden_ari",
    "KMeans NMI": "scib_kmeans_nmi",
    "KMeans ARI": "scib_kmeans_ari",
    "Silhouette label": "silhouette_label",
    "cLISI": "clisi",
    "iLISI": "ilisi",
    "KBET": "kbet",
    "Graph connectivity": "graph_connectivity",
    "PCR comparison": "pcr_comparison",
    "BRAS": "bras",
    "Batch correction": "batch_correction",
    "Bio conservation": "bio_conservation",
    "Total": "total",
}
GRAPH_BIO = ("leiden_nmi", "leiden_ari", "clisi")
GRAPH_BATCH = ("ilisi", "kbet", "graph_connectivity")


def _quiet_scib() -> None:
    """Silence scib-metrics' per-label INFO messages (kBET skips)."""
    import logging

    import scib_metrics

    scib_metrics.settings.verbosity = logging.WARNING
    logging.getLogger("scib_metrics").setLevel(logging.WARNING)


def kmeans_scores(z: np.ndarray, labels: np.ndarray, seeds=(0, 1, 2)) -> dict[str, float]:
    """KMeans (k = number of labels) ARI and NMI, means over the KMeans ``seeds``."""
    z = np.asarray(z, dtype=np.float64)
    k = len(np.unique(labels))
    ari, nmi = [], []
    for seed in seeds:
        clusters = KMeans(k, n_init=10, random_state=seed).fit_predict(z)
        ari.append(adjusted_rand_score(labels, clusters))
        nmi.append(normalized_mutual_info_score(labels, clusters))
    return {"kmeans_ari": float(np.mean(ari)), "kmeans_nmi": float(np.mean(nmi))}


def add_graph_aggregates(row: dict) -> dict:
    """``bio_conservation_graph`` / ``batch_correction_graph``: means of the graph metrics.

    These are the only aggregates that every method (WNN included) has, so they compare
    embeddings and graphs on the same footing.
    """
    bio = [row[c] for c in GRAPH_BIO if pd.notna(row.get(c))]
    batch = [row[c] for c in GRAPH_BATCH if pd.notna(row.get(c))]
    if len(bio) == len(GRAPH_BIO):
        row["bio_conservation_graph"] = float(np.mean(bio))
    if len(batch) == len(GRAPH_BATCH):
        row["batch_correction_graph"] = float(np.mean(batch))
    return row


def scib_scores(
    latents: dict[str, np.ndarray],
    labels: np.ndarray,
    batch: np.ndarray | None,
    unintegrated: np.ndarray,
    save_dir: Path | None,
    n_jobs: int = 1,
) -> dict[str, dict[str, float]]:
    """scib-metrics' ``Benchmarker`` on several embeddings of the same cells.

    Parameters
    ----------
    latents
        Embedding name -> cells x dimensions.
    labels, batch
        Per-cell label and batch (``None``: one batch, no batch-correction metrics).
    unintegrated
        Embedding before integration (for PCR comparison); PCA of log-normalised RNA.
    save_dir
        Where ``plot_results_table`` writes ``scib_results.svg`` (and a PNG copy); ``None``:
        no figure.
    n_jobs
        Threads of the neighbour search.

    Returns
    -------
    Embedding name -> CSV column -> value.
    """
    import anndata as ad
    import matplotlib as mpl

    _quiet_scib()

    mpl.use("Agg")
    from scib_metrics.benchmark import BatchCorrection, Benchmarker, BioConservation

    adata = ad.AnnData(np.zeros((len(labels), 1), dtype=np.float32))
    adata.obs["label"] = pd.Categorical(labels)
    adata.obs["batch"] = pd.Categorical(batch if batch is not None else np.full(len(labels), "b"))
    adata.obsm["X_unintegrated"] = np.asarray(unintegrated, dtype=np.float32)
    for name, z in latents.items():
        adata.obsm[name] = np.asarray(z, dtype=np.float32)
    bench = Benchmarker(
        adata,
        batch_key="batch",
        label_key="label",
        embedding_obsm_keys=list(latents),
        bio_conservation_metrics=BioConservation(nmi_ari_cluster_labels_leiden=True),
        batch_correction_metrics=BatchCorrection() if batch is not None else None,
        pre_integrated_embedding_obsm_key="X_unintegrated",
        n_jobs=n_jobs,
        progress_bar=False,
    )
    bench.benchmark()
    results = bench.get_results(min_max_scale=False)
    results = results.drop(index="Metric Type", errors="ignore")
    out = {
        name: {SCIB_COLUMNS.get(c, c): float(results.loc[name, c]) for c in results.columns}
        for name in latents
    }
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
        table = bench.plot_results_table(min_max_scale=False, show=False, save_dir=str(save_dir))
        figure = table.ax.figure
        figure.savefig(save_dir / "scib_results.png", facecolor=table.ax.get_facecolor(), dpi=150)
        import matplotlib.pyplot as plt

        plt.close(figure)
    return out


def graph_scores(
    indices: np.ndarray, distances: np.ndarray, labels: np.ndarray, batch: np.ndarray | None
) -> dict[str, float]:
    """Graph-based scib-metrics on a neighbour graph (self first in each row).

    Same neighbourhood sizes as scib-metrics' ``Benchmarker``: Leiden NMI/ARI and graph
    connectivity on 15 neighbours, kBET on 50, cLISI/iLISI on 90 (fewer if the graph has
    fewer).
    """
    import scib_metrics
    from scib_metrics.nearest_neighbors import NeighborsResults

    _quiet_scib()

    graph = NeighborsResults(indices=indices.astype(np.int64), distances=distances)
    width = indices.shape[1]

    def subset(n: int) -> NeighborsResults:
        return graph.subset_neighbors(n=min(n, width))

    labels = np.asarray(labels)
    row = dict(
        zip(
            ("leiden_nmi", "leiden_ari"),
            (
                (leiden := scib_metrics.nmi_ari_cluster_labels_leiden(subset(15), labels))["nmi"],
                leiden["ari"],
            ),
            strict=True,
        )
    )
    row["clisi"] = float(scib_metrics.clisi_knn(subset(90), labels))
    if batch is not None:
        batch = np.asarray(batch)
        row["ilisi"] = float(scib_metrics.ilisi_knn(subset(90), batch))
        row["kbet"] = float(scib_metrics.kbet_per_label(subset(50), batch, labels))
        row["graph_connectivity"] = float(scib_metrics.graph_connectivity(subset(15), labels))
    return {k: float(v) for k, v in row.items()}


# ------------------------------------------------------------------ cross-modal prediction
def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (NaN if constant)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    denominator = np.sqrt((a**2).sum(1) * (b**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(1) / denominator, np.nan)


class CrossModal:
    """Cross-modal scores of one method, accumulated over the folds.

    Per fold (then averaged over folds): RNA -> epigenome AUROC and AUPRC over all held-out
    entries, mean per-region Pearson (regions open in some and closed in other held-out cells);
    epigenome -> RNA per-gene Pearson; pseudo-bulk Pearson per label (mean predicted vs mean
    measured profile of the label's held-out cells of the fold, Pearson over features,
    averaged over labels), plain and label-specific (each feature's mean over the fold's
    held-out cells subtracted from both profiles first). Pooled over all held-out cells of
    all folds: mean per-cell Pearson (both directions). RNA truth: each cell's counts as
    proportions.

    Pseudo-bulks are compared within a fold because pooled over folds the prediction of a
    cell's label would average the measured profiles of cells whose own measurements are
    part of the truth (a neighbour-averaging predictor then reproduces the truth's sampling
    noise).
    """

    def __init__(self) -> None:
        self.fold: dict[str, list[float]] = {}
        self.cell: dict[str, list[np.ndarray]] = {"epi": [], "rna": []}

    def _keep(self, key: str, value: float) -> None:
        self.fold.setdefault(key, []).append(float(value))

    def add(
        self,
        pred_epi: np.ndarray,
        true_epi: np.ndarray,
        pred_rna: np.ndarray,
        true_rna: np.ndarray,
        labels: np.ndarray,
    ) -> None:
        """Add one fold's held-out predictions (dense arrays, cells x features)."""
        truth = true_epi.ravel() > 0
        if truth.any() and not truth.all():
            self._keep("rna2epi_auroc", roc_auc_score(truth, pred_epi.ravel()))
            self._keep("rna2epi_auprc", average_precision_score(truth, pred_epi.ravel()))
        self._keep("rna2epi_region_r", np.nanmean(_pearson_rows(pred_epi.T, true_epi.T)))
        self._keep("epi2rna_gene_r", np.nanmean(_pearson_rows(pred_rna.T, true_rna.T)))
        self.cell["epi"].append(_pearson_rows(pred_epi, true_epi))
        self.cell["rna"].append(_pearson_rows(pred_rna, true_rna))
        for direction, pred, true in (
            ("rna2epi", pred_epi, true_epi),
            ("epi2rna", pred_rna, true_rna),
        ):
            plain, specific = pseudobulk_pearson(pred, true, labels)
            self._keep(f"{direction}_pseudobulk_r", plain)
            self._keep(f"{direction}_pseudobulk_specific_r", specific)

    def result(self) -> dict[str, float]:
        """Scores over all folds added so far."""
        out = {key: float(np.mean(values)) for key, values in self.fold.items()}
        out["rna2epi_cell_r"] = float(np.nanmean(np.concatenate(self.cell["epi"])))
        out["epi2rna_cell_r"] = float(np.nanmean(np.concatenate(self.cell["rna"])))
        return out


def pseudobulk_pearson(
    pred: np.ndarray, true: np.ndarray, labels: np.ndarray
) -> tuple[float, float]:
    """Mean over labels of the Pearson over features of predicted vs measured label means.

    Returns the plain figure and the label-specific one, for which each feature's mean over
    all cells is subtracted from both profiles first.
    """
    names = np.unique(labels)
    pred_means = np.stack([pred[labels == name].mean(0, dtype=np.float64) for name in names])
    true_means = np.stack([true[labels == name].mean(0, dtype=np.float64) for name in names])
    plain = np.nanmean(_pearson_rows(pred_means, true_means))
    specific = np.nanmean(
        _pearson_rows(
            pred_means - pred.mean(0, dtype=np.float64),
            true_means - true.mean(0, dtype=np.float64),
        )
    )
    return float(plain), float(specific)


# ------------------------------------------------------------------ held-out cells
def knn_accuracy(
    z: np.ndarray, labels: np.ndarray, fit: np.ndarray, score: np.ndarray, k: int = N_NEIGHBOURS
) -> float:
    """Majority vote of the ``k`` ``fit`` cells nearest to each ``score`` cell (itself excluded).

    For ``score`` cells outside ``fit`` this is plain kNN classification; for ``score`` =
    ``fit`` it is leave-one-out.
    """
    index = NearestNeighbors(n_neighbors=min(k + 1, len(fit))).fit(z[fit])
    _, neighbours = index.kneighbors(z[score])
    fitted = fit[neighbours]
    hits = np.empty(len(score), dtype=bool)
    for row, (cell, candidates) in enumerate(zip(score, fitted, strict=True)):
        chosen = candidates[candidates != cell][:k]
        values, counts = np.unique(labels[chosen], return_counts=True)
        hits[row] = values[np.argmax(counts)] == labels[cell]
    return float(hits.mean())


BIO_DISPLAY = [
    "Isolated labels",
    "Leiden NMI",
    "Leiden ARI",
    "KMeans NMI",
    "KMeans ARI",
    "Silhouette label",
    "cLISI",
]
BATCH_DISPLAY = ["BRAS", "iLISI", "KBET", "Graph connectivity", "PCR comparison"]


def stored_results_table(rows: pd.DataFrame, path: Path) -> bool:
    """scib-metrics' results-table figure drawn from stored scores (the runner's CSV rows).

    One row per method and latent with scib-metrics scores (mean over the seeds present);
    the figure is scib-metrics' own ``Benchmarker.plot_results_table`` given these scores
    instead of a fresh benchmark. Writes ``path`` (``.svg``) and a PNG beside it; returns
    ``False`` when no row has scores.
    """
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt
    from scib_metrics.benchmark import Benchmarker

    rows = rows[rows["bio_conservation"].notna()] if "bio_conservation" in rows else rows[:0]
    if rows.empty:
        return False
    has_batch = "batch_correction" in rows and rows["batch_correction"].notna().any()
    metrics = BIO_DISPLAY + (BATCH_DISPLAY if has_batch else [])
    kinds = ["Bio conservation"] * len(BIO_DISPLAY)
    kinds += ["Batch correction"] * (len(metrics) - len(BIO_DISPLAY))
    aggregates = ["Batch correction", "Bio conservation", "Total"] if has_batch else []
    aggregates = aggregates or ["Bio conservation"]
    columns = {name: SCIB_COLUMNS[name] for name in metrics + aggregates}
    means = rows.groupby(["method", "latent"], sort=False)[list(columns.values())].mean()
    frame = pd.DataFrame(
        {
            name: means[column].to_numpy(dtype=float) if column in means else np.nan
            for name, column in columns.items()
        },
        index=[f"{method} ({latent})" for method, latent in means.index],
    )
    metric_type = pd.DataFrame(
        [kinds + ["Aggregate score"] * (frame.shape[1] - len(kinds))],
        columns=frame.columns,
        index=["Metric Type"],
    )
    results = pd.concat([frame.astype(object), metric_type])

    class _Stored(Benchmarker):
        """A ``Benchmarker`` whose results are given, not computed."""

        def __init__(self) -> None:
            self._embedding_obsm_keys = list(frame.index)
            self._bio_conservation_metrics = True
            self._batch_correction_metrics = True if has_batch else None

        def get_results(self, min_max_scale: bool = False, clean_names: bool = True):
            return results

    path.parent.mkdir(parents=True, exist_ok=True)
    table = _Stored().plot_results_table(show=False, save_dir=str(path.parent))
    figure = table.ax.figure
    written = path.parent / "scib_results.svg"
    if written != path:
        written.replace(path)
    figure.savefig(path.with_suffix(".png"), facecolor=table.ax.get_facecolor(), dpi=150)
    plt.close(figure)
    return True
