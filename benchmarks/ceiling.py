"""How well the epigenome alone predicts the labels of held-out cells, with the labels given.

Usage::

    python benchmarks/ceiling.py [--datasets snare_cortex scicar_kidney ...] [--seeds 0]

The held-out task of ``run.py`` scores unsupervised latents by the 15-NN label accuracy of
held-out cells. This script asks what a *supervised* reader of the same peaks reaches on the
same split (``_data.heldout_split``): classifiers trained on the training cells' binary calls
(TF-IDF weighted, as for LSI) and their labels, scored on the held-out cells. A multilayer
perceptron with one hidden layer of 128 units has the shape of DCCA's epigenome encoder; one
four times as wide, with stronger L2 regularisation, asks whether more capacity reads more. The
figures bound what the peaks let a model of that kind recover, so they say how far an
unsupervised epigenome latent can be expected to go. Writes ``benchmarks/output/ceiling.md``
and appends one row per data set, classifier and seed to ``--csv``
(``benchmarks/results/ceiling.csv``).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import mudata
import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from _data import heldout_split
from _provenance import append_rows, code_version

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUTPUT = Path(__file__).resolve().parent / "output"
#: data set -> (epigenome modality, label column)
DATASETS = {
    "snare_cortex": ("atac", "subclass"),
    "scicar_kidney": ("atac", "cell_type"),
    "pairedtag_h3k4me3": ("histone", "cell_type"),
    "scicar_a549": ("atac", "treatment_time"),
}


def classifiers(seed: int) -> dict:
    """The supervised readers of the peaks, by name."""
    return {
        "logistic (C=1)": LogisticRegression(C=1.0, max_iter=300),
        "logistic (C=10)": LogisticRegression(C=10.0, max_iter=300),
        "MLP, 128 hidden": MLPClassifier(
            (128,), alpha=1e-4, early_stopping=True, random_state=seed, max_iter=200
        ),
        "MLP, 512 hidden, L2 0.01": MLPClassifier(
            (512,), alpha=1e-2, early_stopping=True, random_state=seed, max_iter=200
        ),
    }


def held_out_accuracy(name: str, seeds: list[int]) -> dict[str, list[float]]:
    """Held-out accuracy of each classifier on ``name``, one value per seed."""
    epi, label = DATASETS[name]
    mdata = mudata.read_h5mu(DATA / f"{name}.h5mu")
    labels = mdata.obs[label].astype(str).to_numpy()
    calls = sparse.csr_matrix(mdata[epi].X, dtype=np.float64)
    calls.data[:] = 1.0
    scores: dict[str, list[float]] = {}
    for seed in seeds:
        train, test = heldout_split(labels, seed)
        tfidf = TfidfTransformer().fit(calls[train])
        x_train, x_test = tfidf.transform(calls[train]), tfidf.transform(calls[test])
        for method, model in classifiers(seed).items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x_train, labels[train])
            scores.setdefault(method, []).append(float(model.score(x_test, labels[test])))
            print(f"{name} seed {seed} {method}: {scores[method][-1]:.3f}", flush=True)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--csv",
        type=Path,
        default=Path(__file__).parent / "results" / "ceiling.csv",
        help="CSV the scores are appended to (one row per data set, classifier and seed)",
    )
    args = parser.parse_args()
    rows = ["| data | classifier | held-out accuracy |", "|---|---|---|"]
    for name in args.datasets:
        with threadpool_limits(args.threads):
            scores = held_out_accuracy(name, args.seeds)
        version = code_version()
        append_rows(
            args.csv,
            [
                {"version": version, "dataset": name, "classifier": method, "seed": seed,
                 "heldout_accuracy": value}
                for method, values in scores.items()
                for seed, value in zip(args.seeds, values, strict=True)
            ],
        )  # fmt: skip
        for method, values in scores.items():
            spread = f" ± {np.std(values):.3f}" if len(values) > 1 else ""
            rows.append(f"| {name} | {method} | {np.mean(values):.3f}{spread} |")
    table = "\n".join(rows)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "ceiling.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
