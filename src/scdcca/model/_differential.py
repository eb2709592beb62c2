"""Differential expression and accessibility between groups of cells, as in scvi-tools.

:class:`DifferentialMixin` gives :class:`~scdcca.DCCA` ``differential_expression`` (RNA VAE)
and ``differential_accessibility`` (epigenome VAE) with the interface and output of
:class:`scvi.model.MULTIVI`'s methods of the same names. The statistics are scvi-tools' own:
its internal ``_de_core`` drives :class:`scvi.model.base.DifferentialComputation`, which
compares normalised values decoded from latents drawn from each cell's posterior
``q(z | x)``; the observed-data columns come from scvi-tools' ``scrna_raw_counts_properties``
and ``scatac_raw_counts_properties``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from functools import partial
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd
import torch
from docrep import DocstringProcessor
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.utils import track

from scdcca._constants import RNA_KEY, Modality
from scdcca._scvi import de_core, de_dsp

from . import _arguments as arguments
from ._access import StreamMixin
from ._de_statistics import (
    RegistryView,
    accessibility_columns,
    accessibility_properties,
    expression_properties,
)
from ._populations import WHAT, population_pairs

logger = logging.getLogger(__name__)

#: scvi-tools' differential-test parameters, plus the populations both DCCA tests share.
_docs = DocstringProcessor(
    **de_dsp.params,
    dcca_populations="""mdata
    ``None`` or the MuData the model was set up with (the only cells compared).
groupby
    Column of ``mdata.obs`` with each cell's group (a modality's column is there as
    ``"<modality>:<column>"`` after ``mdata.pull_obs()``).
group1
    Group or groups of ``groupby`` to test, each against ``group2``; ``None``: every
    group.
group2
    Group to compare with; ``None``: each group of ``group1`` against all other
    cells ("Rest"). Needs ``group1``.
idx1
    Instead of ``groupby``: the cells of the first population, as a boolean mask,
    positions, or a :meth:`pandas.DataFrame.query` string on ``mdata.obs``. A
    boolean :class:`pandas.Series` is matched by cell name (its index must be
    ``mdata.obs_names``, in any order); arrays and lists are read in cell order.
idx2
    The second population, in the same forms, without cells of ``idx1``; ``None``:
    all cells not in ``idx1``.""",
)
_LIKELIHOODS = MappingProxyType({"rna": ("nb", "zinb"), "epi": ("bernoulli",)})
#: Column ``_de_core`` writes into ``adata.obs`` while it runs and removes afterwards.
_DE_CORE_TEMP_KEY = "_scvi_temp_de"


class DifferentialMixin(StreamMixin):
    """Differential expression and accessibility for :class:`~scdcca.DCCA`."""

    @_docs.dedent
    def differential_expression(
        self,
        mdata: MuData | None = None,
        groupby: str | None = None,
        group1: str | Iterable[str] | None = None,
        group2: str | None = None,
        idx1: Sequence[int] | Sequence[bool] | str | None = None,
        idx2: Sequence[int] | Sequence[bool] | str | None = None,
        mode: Literal["vanilla", "change"] = "change",
        delta: float = 0.25,
        batch_size: int | None = None,
        all_stats: bool = True,
        batch_correction: bool = False,
        batchid1: Iterable[str] | None = None,
        batchid2: Iterable[str] | None = None,
        fdr_target: float = 0.05,
        silent: bool = False,
        pseudocounts: float = 1e-6,
        **kwargs,
    ) -> pd.DataFrame:
        r"""Differential expression between groups of cells, from the RNA VAE.

        scvi-tools' ``"vanilla"`` (Lopez et al., 2018) and ``"change"`` (Boyeau et al., 2019)
        tests, run by :class:`scvi.model.base.DifferentialComputation` on gene proportions
        decoded from latents drawn from each cell's posterior ``q(z_rna | x_rna)``.

        Parameters
        ----------
        %(dcca_populations)s
        %(de_mode)s
        %(de_delta)s
        %(de_batch_size)s
        %(de_all_stats)s
        %(de_batch_correction)s
        %(de_batchid1)s
        %(de_batchid2)s
        %(de_fdr_target)s
        %(de_silent)s
        pseudocounts
            Offset added to the proportions before their log-fold change (``"change"``).
        **kwargs
            Passed to :meth:`scvi.model.base.DifferentialComputation.get_bayes_factors`, e.g.
            ``n_samples_overall`` (posterior draws per population, 5000 by default).

        Returns
        -------
        A DataFrame indexed by gene with scvi-tools' columns: with ``mode="change"``
        ``proba_de``, ``proba_not_de``, ``bayes_factor``, ``scale1``, ``scale2``,
        ``pseudocounts``, ``delta``, ``lfc_mean``, ``lfc_median``, ``lfc_std``, ``lfc_min``,
        ``lfc_max`` (log2 fold change of population 1 over population 2) and
        ``is_de_fdr_<fdr_target>``; with ``"vanilla"`` ``proba_m1``, ``proba_m2``,
        ``bayes_factor``, ``scale1``, ``scale2``. ``all_stats`` adds ``raw_mean1``,
        ``raw_mean2``, ``non_zeros_proportion1``, ``non_zeros_proportion2``,
        ``raw_normalized_mean1`` and ``raw_normalized_mean2`` (from the registered counts),
        and ``groupby`` adds ``comparison``, ``group1`` and ``group2``. Rows are sorted by
        ``proba_de`` (``bayes_factor`` in vanilla mode) within each comparison, comparisons
        one after the other.

        Raises
        ------
        ValueError
            For unknown groups, ``group2`` without ``group1``, both ``groupby`` and ``idx1``,
            ``idx1`` and ``idx2`` sharing cells, a boolean Series not indexed by the cell
            names, a population without cells with RNA, ``pseudocounts=None``, or
            ``rna_likelihood="gaussian"`` (no proportions to compare).
        KeyError
            When ``groupby`` is not a column of ``mdata.obs``.

        Notes
        -----
        With unpaired cells, cells without RNA are left out of both populations (their
        expression would only be predicted from the epigenome); the number left out is
        logged.

        Examples
        --------
        >>> de = model.differential_expression(groupby="cell_type", group1="Podocyte")
        >>> de[de["is_de_fdr_0.05"]].sort_values("lfc_mean", ascending=False).head()
        >>> pairwise = model.differential_expression(
        ...     groupby="cell_type", group1=["Podocyte"], group2="Endothelial cells"
        ... )
        """
        return self._differential(
            "rna",
            mdata,
            groupby,
            group1,
            group2,
            idx1,
            idx2,
            mode=mode,
            delta=delta,
            batch_size=batch_size,
            all_stats=all_stats,
            batch_correction=batch_correction,
            batchid1=batchid1,
            batchid2=batchid2,
            fdr=fdr_target,
            silent=silent,
            pseudocounts=pseudocounts,
            **kwargs,
        )

    @_docs.dedent
    def differential_accessibility(
        self,
        mdata: MuData | None = None,
        groupby: str | None = None,
        group1: str | Iterable[str] | None = None,
        group2: str | None = None,
        idx1: Sequence[int] | Sequence[bool] | str | None = None,
        idx2: Sequence[int] | Sequence[bool] | str | None = None,
        mode: Literal["vanilla", "change"] = "change",
        delta: float = 0.05,
        batch_size: int | None = None,
        all_stats: bool = True,
        batch_correction: bool = False,
        batchid1: Iterable[str] | None = None,
        batchid2: Iterable[str] | None = None,
        fdr_target: float = 0.05,
        silent: bool = False,
        pseudocounts: float = 1e-6,
        **kwargs,
    ) -> pd.DataFrame:
        r"""Differential accessibility between groups of cells, from the epigenome VAE.

        The tests of :meth:`differential_expression`, on open probabilities (at the mean
        sequencing depth) decoded from latents drawn from ``q(z_epi | x_epi)``; the output
        has the columns of :meth:`scvi.model.MULTIVI.differential_accessibility`.

        Parameters
        ----------
        %(dcca_populations)s
        %(de_mode)s
        %(de_delta)s
        %(de_batch_size)s
        all_stats
            Add the observed detection rates (``emp_*`` columns).
        %(de_batch_correction)s
        %(de_batchid1)s
        %(de_batchid2)s
        %(de_fdr_target)s
        %(de_silent)s
        pseudocounts
            Offset added to the probabilities before their log-fold change (``"change"``).
        **kwargs
            Passed to :meth:`scvi.model.base.DifferentialComputation.get_bayes_factors`.

        Returns
        -------
        A DataFrame indexed by region, sorted by ``prob_da`` within each comparison, with
        MULTIVI's columns:

        ``prob_da``
            Probability that the region is differentially accessible (``proba_de``; the
            probability that population 1 is more open, in vanilla mode).
        ``is_da_fdr``
            Whether the region passes the posterior expected FDR at ``fdr_target``
            (``None`` in vanilla mode).
        ``bayes_factor``
            Log Bayes factor of the test.
        ``effect_size``
            ``est_prob2 - est_prob1`` (positive: more open in population 2).
        ``emp_effect``
            ``emp_prob2 - emp_prob1``.
        ``est_prob1``, ``est_prob2``
            Mean model open probability in each population.
        ``emp_prob1``, ``emp_prob2``
            Observed fraction of cells with the region open (non-zero) in each population,
            over measured entries (NaN entries are left out).

        Without ``all_stats`` the ``emp_*`` columns are left out; with ``groupby``,
        ``comparison``, ``group1`` and ``group2`` are added.

        Raises
        ------
        ValueError
            As :meth:`differential_expression`, and for ``epi_likelihood="gaussian"``.
        KeyError
            When ``groupby`` is not a column of ``mdata.obs``.

        Notes
        -----
        With unpaired cells, cells without the epigenome are left out of both populations.

        Examples
        --------
        >>> da = model.differential_accessibility(groupby="cell_type", group1="Podocyte")
        >>> da[da["is_da_fdr"]].sort_values("effect_size").head()  # most open in podocytes
        """
        result = self._differential(
            "epi",
            mdata,
            groupby,
            group1,
            group2,
            idx1,
            idx2,
            mode=mode,
            delta=delta,
            batch_size=batch_size,
            all_stats=all_stats,
            batch_correction=batch_correction,
            batchid1=batchid1,
            batchid2=batchid2,
            fdr=fdr_target,
            silent=silent,
            pseudocounts=pseudocounts,
            **kwargs,
        )
        return accessibility_columns(result, mode, fdr_target, all_stats)

    def _differential(
        self,
        modality: Modality,
        mdata: MuData | None,
        groupby: str | None,
        group1: str | Iterable[str] | None,
        group2: str | None,
        idx1,
        idx2,
        *,
        batch_size: int | None,
        all_stats: bool,
        fdr: float,
        silent: bool,
        pseudocounts: float | None,
        mode: str,
        **de_kwargs,
    ) -> pd.DataFrame:
        """Run scvi-tools' ``_de_core`` once per comparison on ``modality``'s VAE."""
        self._check_differential_input(modality, mdata, mode, pseudocounts, batch_size)
        comparisons = self._comparisons(modality, groupby, group1, group2, idx1, idx2)
        manager = self.adata_manager
        if modality == "rna":
            view = RegistryView(manager, {REGISTRY_KEYS.X_KEY: RNA_KEY}, self.adata.obs_names)
            stats_fn = partial(expression_properties, view)
        else:
            stats_fn = partial(accessibility_properties, manager)
        model_fn = partial(self._posterior_values, modality=modality, batch_size=batch_size)
        results = []
        try:
            for label1, label2, cells1, cells2 in track(
                comparisons, description="DE...", disable=silent or len(comparisons) == 1
            ):
                result = de_core(
                    adata_manager=manager,
                    model_fn=model_fn,
                    representation_fn=None,
                    groupby=None,
                    group1=None,
                    group2=None,
                    idx1=cells1,
                    idx2=cells2,
                    all_stats=all_stats,
                    all_stats_fn=lambda _, i1, i2: stats_fn(i1, i2),
                    col_names=self.model_features(modality),
                    fdr=fdr,
                    silent=True,
                    pseudocounts=pseudocounts,
                    mode=mode,
                    **de_kwargs,
                )
                if label1 is not None:
                    result["comparison"] = f"{label1} vs {label2}"
                    result["group1"] = label1
                    result["group2"] = label2
                results.append(result)
        finally:
            obs = self.adata.obs
            if _DE_CORE_TEMP_KEY in obs.columns:  # left behind only if _de_core failed
                del obs[_DE_CORE_TEMP_KEY]
        return pd.concat(results, axis=0)

    def _check_differential_input(
        self,
        modality: Modality,
        mdata: MuData | None,
        mode: str,
        pseudocounts: float | None,
        batch_size: int | None,
    ) -> None:
        if not self._is_setup_data(mdata):
            raise ValueError(
                "Differential tests compare cells of the MuData the model was set up with: pass "
                "mdata=None (or that MuData). For other cells, set them up and train a model on "
                "them, or compare them by latent with `get_latent_representation(new_mdata)`."
            )
        likelihood = self.module.vae(modality).likelihood
        if likelihood not in _LIKELIHOODS[modality]:
            method = "expression" if modality == "rna" else "accessibility"
            raise ValueError(
                f"differential_{method} compares decoded {WHAT[modality]} proportions or "
                f"probabilities, which a {likelihood!r} likelihood does not give; it needs "
                f"{modality}_likelihood in {_LIKELIHOODS[modality]}."
            )
        if mode not in ("vanilla", "change"):
            raise ValueError(f"mode must be 'vanilla' or 'change', got {mode!r}.")
        if pseudocounts is None:
            raise ValueError(
                "pseudocounts=None (estimated from scvi-tools' 'X' registry) is not available "
                "for DCCA: pass a small number, e.g. pseudocounts=1e-6."
            )
        arguments.finite_number("pseudocounts", pseudocounts, 0.0)
        if batch_size is not None:
            arguments.positive_int("batch_size", batch_size)

    def _comparisons(self, modality: Modality, *selection) -> list:
        """The tests to run (see :func:`~scdcca.model._populations.population_pairs`)."""
        source = self._unpaired_source
        obs = (self.adata if source is None else source).obs
        return population_pairs(obs, self._measured(modality), modality, *selection)

    def _measured(self, modality: Modality) -> np.ndarray:
        """Whether each registered cell has ``modality`` (all True for paired data)."""
        measured = np.ones(self.adata.n_obs, dtype=bool)
        cells = self._observed_cells(modality)
        if cells is not None:
            measured[:] = False
            measured[cells] = True
        return measured

    def _posterior_values(
        self,
        adata: MuData | None,
        indices: Sequence[int] | np.ndarray,
        transform_batch: str | int | None = None,
        n_samples_overall: int | None = None,
        *,
        modality: Modality,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Normalised values decoded from latents drawn from the posterior ``q(z | x)``.

        The model function :class:`~scvi.model.base.DifferentialComputation` calls: with
        ``n_samples_overall``, that many cells are drawn (with replacement) from ``indices``
        and one latent is sampled for each; otherwise one per cell of ``indices``. RNA gives
        gene proportions (rows sum to one), the epigenome open probabilities at the mean
        sequencing depth. ``transform_batch`` decodes in that batch (``None``: each cell's own).

        Returns
        -------
        Array of shape ``(n_samples_overall or len(indices), n_features)``.
        """
        indices = np.asarray(indices)
        if n_samples_overall is not None:
            # torch's generator: seeded by ``scvi.settings.seed`` like the latent draws
            picks = torch.randint(len(indices), (int(n_samples_overall),)).numpy()
            indices = np.sort(indices[picks])
        if self.adata_manager.registry["setup_args"].get("batch_key") is None:
            transform_batch = None  # one batch: scvi-tools' batch correction names it anyway
        blocks = self._denoised_batches(
            modality, adata, indices, batch_size, transform_batch=transform_batch, sample=True
        )
        return np.concatenate(list(blocks))
