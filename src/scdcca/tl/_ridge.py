"""Cross-validated ridge regressions of many targets on their own subsets of regulators."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class RidgeFit:
    """Result of :func:`cv_ridge` for one target."""

    alpha: float
    r2: float
    coefs: np.ndarray  # folds x candidates, in standardised units


def fold_ids(n: int, cv: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each of ``n`` samples: a random permutation cut into ``cv`` near-equal parts."""
    ids = np.empty(n, dtype=np.int64)
    ids[rng.permutation(n)] = np.arange(n) % cv
    return ids


class FoldGrams:
    """Per-fold centred Gram matrices of regulators and their products with targets.

    Columns of ``regulators`` and ``targets`` should be standardised over all samples. For
    fold ``f`` the training samples are those not in ``f``, centred with their own means.
    """

    def __init__(self, regulators: np.ndarray, targets: np.ndarray, folds: np.ndarray):
        self.x, self.y, self.folds = regulators, targets, folds
        self.n_folds = int(folds.max()) + 1
        self.gram, self.xy, self.x_mean, self.y_mean, self.n_train = [], [], [], [], []
        for f in range(self.n_folds):
            train = folds != f
            x_mean, y_mean = regulators[train].mean(0), targets[train].mean(0)
            xc = regulators[train] - x_mean
            self.gram.append(xc.T @ xc)
            self.xy.append(xc.T @ (targets[train] - y_mean))
            self.x_mean.append(x_mean)
            self.y_mean.append(y_mean)
            self.n_train.append(int(train.sum()))

    def fit(self, target: int, candidates: np.ndarray, alphas: Sequence[float]) -> RidgeFit:
        """Fit target ``target`` on regulators ``candidates`` for each alpha and fold.

        The penalty is ``alpha * n_train * ||beta||^2``, so ``alpha`` is on the scale of
        correlations. The alpha with the highest pooled out-of-fold R^2 is kept.
        """
        alphas = np.asarray(alphas, dtype=np.float64)
        y = self.y[:, target]
        residual = np.zeros(len(alphas))
        coefs = np.zeros((self.n_folds, len(alphas), len(candidates)))
        for f in range(self.n_folds):
            gram = self.gram[f][np.ix_(candidates, candidates)]
            values, vectors = np.linalg.eigh(gram)
            projected = vectors.T @ self.xy[f][candidates, target]
            shrink = 1.0 / (np.maximum(values, 0)[None, :] + alphas[:, None] * self.n_train[f])
            beta = (projected[None, :] * shrink) @ vectors.T  # alphas x candidates
            coefs[f] = beta
            test = self.folds == f
            x_test = self.x[np.ix_(test, candidates)] - self.x_mean[f][candidates]
            predicted = x_test @ beta.T + self.y_mean[f][target]
            residual += ((y[test, None] - predicted) ** 2).sum(0)
        total = ((y - y.mean()) ** 2).sum()
        r2 = 1 - residual / total if total > 0 else np.full(len(alphas), np.nan)
        best = int(np.nanargmax(r2)) if np.isfinite(r2).any() else 0
        return RidgeFit(float(alphas[best]), float(r2[best]), coefs[:, best, :])
