"""Cross-modal prediction on held-out cells: DCCA vs nearest neighbours vs MULTIVI.

Usage::

    python benchmarks/cross_modal.py [--datasets scicar_kidney pairedtag_h3k4me3 scicar_a549]
                                     [--folds 5] [--multivi-epochs 30] [--skip-multivi]
                                     [--multivi-datasets pairedtag_h3k4me3]

5-fold cross-validation over cells: each method trains on 4/5 of the paired cells and
predicts the held-out fifth's epigenome from its RNA (and its RNA from its epigenome).
Reported per dataset and direction, pooled over folds: AUROC and AUPRC over the held-out
entries (epigenome), and the mean per-cell Pearson correlation of prediction and truth
(both directions; RNA truth as proportions of each cell's counts).

Methods:

- DCCA: ``predict_modality`` on an AnnData of the held-out cells' source modality.
- kNN: the 15 nearest training cells in the source modality's space (50 PCs of log-normalised
  RNA; 50 LSI components of TF-IDF epigenome), their target profiles averaged.
- MULTIVI (scvi-tools): trained for ``--multivi-epochs`` epochs on the training cells plus
  each held-out cell twice, once with RNA only and once with the epigenome only (MULTIVI's
  way to impute: an all-zero modality is missing); its ``get_normalized_accessibility`` /
  ``get_normalized_expression`` of those copies is the prediction. It thus sees the held-out
  cells' source modality during training, which DCCA and kNN do not.

Writes ``benchmarks/output/cross_modal.md`` (``cross_modal_nb.md`` for ``--rna-likelihood nb``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import anndata as ad
import mudata
import numpy as np
import scvi
import torch
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import KFold
from sklearn.neighbors import NearestNeighbors

import scdcca

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EPIGENOME = {"scicar_kidney": "atac", "pairedtag_h3k4me3": "histone", "scicar_a549": "atac"}


# ------------------------------------------------------------------ source-space embeddings
def rna_embedding(counts: sparse.csr_matrix, train: np.ndarray, n_comps: int = 50):
    x = sparse.csr_matrix(counts, dtype=np.float64)
    x = sparse.diags(1e4 / np.maximum(x.sum(1).A1, 1)) @ x
    x.data = np.log1p(x.data)
    svd = TruncatedSVD(n_comps, random_state=0).fit(x[train])
    return svd.transform(x)


def epi_embedding(calls: sparse.csr_matrix, train: np.ndarray, n_comps: int = 50):
    x = sparse.csr_matrix(calls > 0, dtype=np.float64)
    idf = np.log1p(x.shape[0] / (1 + np.asarray(x[train].sum(0)).ravel()))
    tf = sparse.diags(1 / np.maximum(x.sum(1).A1, 1)) @ x
    svd = TruncatedSVD(n_comps + 1, random_state=0).fit(tf[train] @ sparse.diags(idf))
    return svd.transform(tf @ sparse.diags(idf))[:, 1:]  # first LSI component tracks depth


def knn_predict(embedding, target, train, test, k: int = 15) -> np.ndarray:
    neighbours = NearestNeighbors(n_neighbors=k).fit(embedding[train])
    _, idx = neighbours.kneighbors(embedding[test])
    target_train = sparse.csr_matrix(target[train], dtype=np.float64)
    rows = np.repeat(np.arange(len(test)), k)
    average = sparse.csr_matrix(
        (np.full(rows.size, 1.0 / k), (rows, idx.ravel())), shape=(len(test), len(train))
    )
    return np.asarray((average @ target_train).todense())


# ------------------------------------------------------------------ models
def dcca_predict(mdata, epi, train, test, seed, rna_likelihood="zinb"):
    scvi.settings.seed = seed
    fit = mdata[train].copy()
    scdcca.DCCA.setup_mudata(fit, modalities={"rna_layer": "rna", "epi_layer": epi})
    model = scdcca.DCCA(fit, rna_likelihood=rna_likelihood)
    model.train(enable_progress_bar=False)
    held = mdata[test]
    to_epi = model.predict_modality(held["rna"].copy(), source="rna", return_numpy=True)
    to_rna = model.predict_modality(held[epi].copy(), source="epi", return_numpy=True)
    return to_epi, to_rna


def multivi_predict(mdata, epi, train, test, seed, epochs):
    """MULTIVI trained on the training cells plus the held-out cells as unpaired copies.

    MULTIVI imputes from cells whose other modality is all zero; each held-out cell enters
    once with RNA only and once with the epigenome only (their targets are never seen).
    """
    scvi.settings.seed = seed
    n_test = len(test)
    parts = {}
    for name in ("rna", epi):
        x = sparse.csr_matrix(mdata[name].X, dtype=np.float32)
        empty = sparse.csr_matrix((n_test, x.shape[1]), dtype=np.float32)
        rna_only_part = x[test] if name == "rna" else empty
        epi_only_part = empty if name == "rna" else x[test]
        parts[name] = ad.AnnData(
            sparse.vstack([x[train], rna_only_part, epi_only_part], format="csr"),
            var=mdata[name].var[[]],
        )
        parts[name].obs_names = [f"c{i}" for i in range(parts[name].n_obs)]
    fit = mudata.MuData(parts)
    scvi.model.MULTIVI.setup_mudata(fit, modalities={"rna_layer": "rna", "atac_layer": epi})
    model = scvi.model.MULTIVI(fit, n_genes=fit["rna"].n_vars, n_regions=fit[epi].n_vars)
    model.train(max_epochs=epochs, enable_progress_bar=False, early_stopping=False)
    rna_only = len(train) + np.arange(n_test)
    epi_only = rna_only + n_test
    to_epi = model.get_normalized_accessibility(indices=rna_only, return_numpy=True)
    to_rna = model.get_normalized_expression(indices=epi_only, return_numpy=True)
    return np.asarray(to_epi), np.asarray(to_rna)


# ------------------------------------------------------------------ scores
def per_cell_pearson(prediction: np.ndarray, truth: np.ndarray) -> float:
    p = prediction - prediction.mean(1, keepdims=True)
    t = truth - truth.mean(1, keepdims=True)
    denominator = np.sqrt((p**2).sum(1) * (t**2).sum(1))
    valid = denominator > 0
    return float(np.mean((p * t).sum(1)[valid] / denominator[valid]))


def scores(pred_epi, true_epi, pred_rna, true_rna) -> dict[str, float]:
    flat_truth = true_epi.ravel() > 0
    return {
        "AUROC": roc_auc_score(flat_truth, pred_epi.ravel()),
        "AUPRC": average_precision_score(flat_truth, pred_epi.ravel()),
        "epi r": per_cell_pearson(pred_epi, true_epi),
        "rna r": per_cell_pearson(pred_rna, true_rna),
    }


def run_dataset(
    name: str, folds: int, multivi_epochs: int, skip_multivi: bool, rna_likelihood: str = "zinb"
) -> list[str]:
    epi = EPIGENOME[name]
    mdata = mudata.read_h5mu(DATA / f"{name}.h5mu")
    rna_counts = sparse.csr_matrix(mdata["rna"].X, dtype=np.float32)
    calls = sparse.csr_matrix(mdata[epi].X > 0, dtype=np.float32)
    methods = ["DCCA", "kNN"] + ([] if skip_multivi else ["MULTIVI"])
    predictions = {m: {"epi": [], "rna": []} for m in methods}
    truths = {"epi": [], "rna": []}
    seconds = dict.fromkeys(methods, 0.0)
    splitter = KFold(folds, shuffle=True, random_state=0)
    for fold, (train, test) in enumerate(splitter.split(np.arange(mdata.n_obs))):
        true_rna = rna_counts[test].toarray()
        truths["rna"].append(true_rna / np.maximum(true_rna.sum(1, keepdims=True), 1))
        truths["epi"].append(calls[test].toarray())
        start = time.perf_counter()
        to_epi, to_rna = dcca_predict(mdata, epi, train, test, fold, rna_likelihood)
        seconds["DCCA"] += time.perf_counter() - start
        predictions["DCCA"]["epi"].append(to_epi)
        predictions["DCCA"]["rna"].append(to_rna)
        start = time.perf_counter()
        predictions["kNN"]["epi"].append(
            knn_predict(rna_embedding(rna_counts, train), calls, train, test)
        )
        rna_fraction = sparse.diags(1 / np.maximum(rna_counts.sum(1).A1, 1)) @ rna_counts
        predictions["kNN"]["rna"].append(
            knn_predict(epi_embedding(calls, train), rna_fraction, train, test)
        )
        seconds["kNN"] += time.perf_counter() - start
        if not skip_multivi:
            start = time.perf_counter()
            to_epi, to_rna = multivi_predict(mdata, epi, train, test, fold, multivi_epochs)
            seconds["MULTIVI"] += time.perf_counter() - start
            predictions["MULTIVI"]["epi"].append(to_epi)
            predictions["MULTIVI"]["rna"].append(to_rna)
        print(f"{name}: fold {fold + 1}/{folds} done", flush=True)
    true_epi, true_rna = np.concatenate(truths["epi"]), np.concatenate(truths["rna"])
    lines = []
    for method in methods:
        result = scores(
            np.concatenate(predictions[method]["epi"]),
            true_epi,
            np.concatenate(predictions[method]["rna"]),
            true_rna,
        )
        lines.append(
            f"| {name} | {method} | {result['AUROC']:.3f} | {result['AUPRC']:.3f} | "
            f"{result['epi r']:.3f} | {result['rna r']:.3f} | {seconds[method]:.0f} |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=list(EPIGENOME))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--multivi-epochs", type=int, default=30)
    parser.add_argument("--skip-multivi", action="store_true")
    parser.add_argument(
        "--multivi-datasets", nargs="+", default=None, help="run MULTIVI only on these"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rna-likelihood", default="zinb", choices=["zinb", "nb"])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    header = [
        f"{args.folds}-fold CV over cells; DCCA rna_likelihood={args.rna_likelihood!r}; "
        f"MULTIVI {args.multivi_epochs} epochs",
        "",
        "| dataset | method | RNA->epi AUROC | RNA->epi AUPRC | RNA->epi cell r | "
        "epi->RNA cell r | train+predict s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines = []
    for name in args.datasets:
        skip = args.skip_multivi or (
            args.multivi_datasets is not None and name not in args.multivi_datasets
        )
        lines += run_dataset(name, args.folds, args.multivi_epochs, skip, args.rna_likelihood)
    text = "\n".join(header + lines)
    print(text)
    out = Path(__file__).parent / "output"
    out.mkdir(exist_ok=True)
    suffix = "" if args.rna_likelihood == "zinb" else f"_{args.rna_likelihood}"
    (out / f"cross_modal{suffix}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
