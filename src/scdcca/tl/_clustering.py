"""How well an embedding's KMeans clusters recover known labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def clustering_scores(
    embedding: np.ndarray,
    labels: Sequence,
    n_clusters: int | None = None,
    seeds: Sequence[int] = (0, 1, 2),
) -> pd.Series:
    """KMeans on an embedding, scored against labels with ARI and NMI.

    Parameters
    ----------
    embedding
        Cells x dimensions, for example ``mdata.obsm["X_dcca"]``.
    labels
        One label per cell (missing labels are left out of the scores).
    n_clusters
        Number of clusters; the number of distinct labels if ``None``.
    seeds
        KMeans seeds; scores are averaged over them.

    Returns
    -------
    ``ari``, ``nmi`` (means over seeds) and ``ari_std``, ``nmi_std``.
    """
    embedding = np.asarray(embedding, dtype=np.float64)
    labels = pd.Series(np.asarray(labels))
    if embedding.shape[0] != len(labels):
        raise ValueError(
            f"embedding has {embedding.shape[0]} cells but labels has {len(labels)} entries."
        )
    keep = labels.notna().to_numpy()
    embedding, labels = embedding[keep], labels[keep].astype(str).to_numpy()
    k = n_clusters or len(np.unique(labels))
    aris, nmis = [], []
    for seed in seeds:
        clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(embedding)
        aris.append(adjusted_rand_score(labels, clusters))
        nmis.append(normalized_mutual_info_score(labels, clusters))
    return pd.Series(
        {
            "ari": float(np.mean(aris)),
            "nmi": float(np.mean(nmis)),
            "ari_std": float(np.std(aris)),
            "nmi_std": float(np.std(nmis)),
        }
    )
