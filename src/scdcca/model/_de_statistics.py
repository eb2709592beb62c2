"""The observed-data columns of differential tests, from scvi-tools' count statistics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from scdcca._constants import EPI_KEY
from scdcca._scvi import scatac_raw_counts_properties, scrna_raw_counts_properties


class RegistryView:
    """The pieces of an :class:`~scvi.data.AnnDataManager` scvi's count statistics read.

    ``scrna_raw_counts_properties`` reads ``REGISTRY_KEYS.X_KEY``, which DCCA registers as
    :data:`~scdcca._constants.RNA_KEY`, and caches per-cell scaling factors in
    ``adata.obs``; this view serves the RNA counts under scvi's key and a throwaway
    ``.obs``, so the user's MuData is not changed.
    """

    def __init__(self, manager: Any, keys: dict[str, str], obs_names: pd.Index):
        self._manager, self._keys = manager, keys
        self.adata = _ObsOnly(pd.DataFrame(index=obs_names))

    def get_from_registry(self, registry_key: str):
        return self._manager.get_from_registry(self._keys.get(registry_key, registry_key))


class _ObsOnly:
    def __init__(self, obs: pd.DataFrame):
        self.obs = obs


def expression_properties(view: RegistryView, idx1: np.ndarray, idx2: np.ndarray) -> dict:
    """scvi-tools' count statistics of each gene (cells without RNA have empty rows)."""
    with np.errstate(divide="ignore"):  # empty rows of cells left out of both populations
        return scrna_raw_counts_properties(view, idx1, idx2)


def accessibility_properties(manager, idx1: np.ndarray, idx2: np.ndarray) -> dict:
    """scvi-tools' detection rates of each region, over measured (non-NaN) entries only."""
    properties = scatac_raw_counts_properties(manager, idx1, idx2, registry_key=EPI_KEY)
    data = manager.get_from_registry(EPI_KEY)
    for key, cells in (("emp_mean1", idx1), ("emp_mean2", idx2)):
        measured = _measured_fraction(data[cells])
        if measured is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                properties[key] = np.where(measured > 0, properties[key] / measured, np.nan)
    properties["emp_effect"] = properties["emp_mean1"] - properties["emp_mean2"]
    return properties


def _measured_fraction(block) -> np.ndarray | None:
    """Fraction of non-NaN entries of each column, or ``None`` when nothing is NaN."""
    if sparse.issparse(block):
        block = sparse.csr_matrix(block)
        nan = np.isnan(block.data)
        if not nan.any():
            return None
        missing = np.bincount(block.indices[nan], minlength=block.shape[1])
    else:
        nan = np.isnan(np.asarray(block, dtype=float))
        if not nan.any():
            return None
        missing = nan.sum(0)
    return 1.0 - missing / block.shape[0]


def accessibility_columns(
    result: pd.DataFrame, mode: str, fdr_target: float, all_stats: bool
) -> pd.DataFrame:
    """scvi-tools' differential-test ``result`` under MULTIVI's accessibility column names."""
    change = mode == "change"
    columns = {
        "prob_da": result["proba_de" if change else "proba_m1"],
        "is_da_fdr": result[f"is_de_fdr_{fdr_target}"] if change else None,
        "bayes_factor": result["bayes_factor"],
        "effect_size": result["scale2"] - result["scale1"],
    }
    if all_stats:
        columns["emp_effect"] = result["emp_mean2"] - result["emp_mean1"]
    columns["est_prob1"] = result["scale1"]
    columns["est_prob2"] = result["scale2"]
    if all_stats:
        columns["emp_prob1"] = result["emp_mean1"]
        columns["emp_prob2"] = result["emp_mean2"]
    for label in ("comparison", "group1", "group2"):
        if label in result:
            columns[label] = result[label]
    return pd.DataFrame(
        {k: v.to_numpy() if isinstance(v, pd.Series) else v for k, v in columns.items()},
        index=result.index,
    )
