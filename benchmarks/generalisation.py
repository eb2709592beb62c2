"""How well each latent carries over to cells the model did not train on.

Usage::

    python benchmarks/generalisation.py [--datasets scicar_kidney pairedtag_h3k4me3]
                                        [--seeds 0 1 2] [--threads 2]

Trains the default model (90 % of the cells train, 10 % are held out for early stopping) and
compares the training cells with the held-out ones:

- ``r2``: how much of the RNA latent's spread the epigenome latent reproduces,
  ``1 - mean ||z_rna - z_epi||^2 / mean ||z_rna - mean(z_rna)||^2``;
- ``knn``: accuracy of a 15-nearest-neighbour classifier of the labels in each latent, fitted
  on the training cells and scored on the held-out cells (for the training cells:
  leave-one-out, the cell itself excluded from its neighbours).

Writes a markdown table to ``benchmarks/output/generalisation.md``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import mudata
import numpy as np
import scvi
import torch
from sklearn.neighbors import NearestNeighbors

import scdcca
from accuracy import DATA, DATASETS  # same datasets and label columns as the ARI benchmark

N_NEIGHBOURS = 15


def knn_accuracy(z: np.ndarray, labels: np.ndarray, fit: np.ndarray, score: np.ndarray) -> float:
    """Majority vote of the ``fit`` cells nearest to each ``score`` cell (itself excluded)."""
    index = NearestNeighbors(n_neighbors=N_NEIGHBOURS + 1).fit(z[fit])
    _, neighbours = index.kneighbors(z[score])
    hits = []
    for cell, row in zip(score, neighbours, strict=True):
        row = [fit[j] for j in row if fit[j] != cell][:N_NEIGHBOURS]
        values, counts = np.unique(labels[row], return_counts=True)
        hits.append(values[np.argmax(counts)] == labels[cell])
    return float(np.mean(hits))


def measure(name: str, seed: int) -> dict[str, float]:
    epi, label = DATASETS[name]
    scvi.settings.seed = seed
    mdata = mudata.read_h5mu(DATA / f"{name}.h5mu")
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": epi})
    model = scdcca.DCCA(mdata)
    model.train(enable_progress_bar=False)
    z_rna = model.get_latent_representation(modality="rna")
    z_epi = model.get_latent_representation(modality="epi")
    labels = np.asarray(mdata.obs[label])
    train, held_out = np.asarray(model.train_indices), np.asarray(model.validation_indices)
    spread = float(((z_rna - z_rna.mean(0)) ** 2).sum(1).mean())
    distance = ((z_rna - z_epi) ** 2).sum(1)
    out = {
        "r2 train": 1 - float(distance[train].mean()) / spread,
        "r2 held-out": 1 - float(distance[held_out].mean()) / spread,
    }
    for key, z in (("rna", z_rna), ("epi", z_epi)):
        out[f"knn {key} train"] = knn_accuracy(z, labels, train, train)
        out[f"knn {key} held-out"] = knn_accuracy(z, labels, train, held_out)
    out["majority class"] = float(
        np.max(np.unique(labels[held_out], return_counts=True)[1]) / len(held_out)
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["scicar_kidney", "pairedtag_h3k4me3"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    columns = None
    rows = []
    for name in args.datasets:
        results = [measure(name, seed) for seed in args.seeds]
        columns = columns or list(results[0])
        means = [np.mean([r[c] for r in results]) for c in columns]
        rows.append(f"| {name} | " + " | ".join(f"{value:.3f}" for value in means) + " |")
        print(rows[-1], flush=True)
    header = "| dataset | " + " | ".join(columns) + " |"
    table = "\n".join([header, "|" + "---|" * (len(columns) + 1), *rows])
    print(table)
    out = Path(__file__).parent / "output"
    out.mkdir(exist_ok=True)
    (out / "generalisation.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
