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
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from mudata import MuData
from scipy import sparse
from scvi import REGISTRY_KEYS
from scvi.utils import track

from scdcca._constants import BATCH_KEY, EPI_KEY, RNA_KEY, Modality
from scdcca._scvi import (
    batch_codes_from_categories,
    de_core,
    de_dsp,
    scatac_raw_counts_properties,
    scrna_raw_counts_properties,
)

from . import _arguments as arguments
from ._access import StreamMixin

logger = logging.getLogger(__name__)

_WHAT = MappingProxyType({"rna": "RNA", "epi": "epigenome"})
_LIKELIHOODS = MappingProxyType({"rna": ("nb", "zinb"), "epi": ("bernoulli",)})
#: Column ``_de_core`` writes into ``adata.obs`` while it runs and removes afterwards.
_DE_CORE_TEMP_KEY = "_scvi_temp_de"


class _RegistryView:
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


class DifferentialMixin(StreamMixin):
    """Differential expression and accessibility for :class:`~scdcca.DCCA`."""

    @de_dsp.dedent
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
        mdata
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
            all cells not in ``idx1``.
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

    @de_dsp.dedent
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
        mdata
            ``None`` or the MuData the model was set up with (the only cells compared).
        groupby
            Column of ``mdata.obs`` with each cell's group.
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
            all cells not in ``idx1``.
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

    # ------------------------------------------------------------------ shared machinery
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
            view = _RegistryView(manager, {REGISTRY_KEYS.X_KEY: RNA_KEY}, self.adata.obs_names)
            stats_fn = partial(_expression_properties, view)
        else:
            stats_fn = partial(_accessibility_properties, manager)
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
                f"differential_{method} compares decoded {_WHAT[modality]} proportions or "
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

    def _measured(self, modality: Modality) -> np.ndarray:
        """Whether each registered cell has ``modality`` (all True for paired data)."""
        measured = np.ones(self.adata.n_obs, dtype=bool)
        cells = self._observed_cells(modality)
        if cells is not None:
            measured[:] = False
            measured[cells] = True
        return measured

    def _comparisons(
        self,
        modality: Modality,
        groupby: str | None,
        group1: str | Iterable[str] | None,
        group2: str | None,
        idx1,
        idx2,
    ) -> list[tuple[Any, Any, np.ndarray, np.ndarray]]:
        """``(label1, label2, cells1, cells2)`` for each test, as masks of registered cells.

        Cells come in the registered order, which is the user's (the padded twin of unpaired
        data keeps the MuData's cells in its order); labels are ``None`` for ``idx1``.
        """
        source = getattr(self, "_unpaired_source", None)
        obs = (self.adata if source is None else source).obs
        measured = self._measured(modality)
        if idx1 is None and idx2 is not None:
            raise ValueError(
                "idx2 is given without idx1: pass idx1 (the first population) too, or use "
                "groupby with group1/group2."
            )
        if idx1 is not None:
            if groupby is not None or group1 is not None or group2 is not None:
                raise ValueError(
                    "Pass either groupby (with group1/group2) or idx1/idx2, not both: idx1 "
                    "would silently override the groups."
                )
            cells1 = _cell_mask("idx1", idx1, obs)
            cells2 = ~cells1 if idx2 is None else _cell_mask("idx2", idx2, obs)
            _check_disjoint(cells1, cells2)
            return [(None, None, *self._measured_only(modality, measured, cells1, cells2, None))]
        if groupby is None:
            raise ValueError(
                "Say which cells to compare: groupby=<column of mdata.obs> (with group1 and "
                "optionally group2), or idx1 (and optionally idx2)."
            )
        if groupby not in obs.columns:
            raise KeyError(
                f"groupby={groupby!r} is not a column of mdata.obs (columns: "
                f"{_preview(obs.columns)}). Add it there, or for a modality's column run "
                f"`mdata.pull_obs()` and pass '<modality>:{groupby}'."
            )
        labels = obs[groupby]
        groups = [g for g in labels.astype("category").cat.categories if (labels == g).any()]
        if group2 is not None and group1 is None:
            raise ValueError(
                f"group2={group2!r} is given without group1: pass group1 (the groups to compare "
                "with group2), or drop group2 to compare each group with the rest of the cells."
            )
        if group1 is None:
            if len(groups) < 2:
                raise ValueError(
                    f"Column {groupby!r} holds a single group ({_preview(groups)}): "
                    "differential tests need two; pass idx1/idx2 to choose cells directly."
                )
            group1 = groups
        elif isinstance(group1, str) or not isinstance(group1, Iterable):
            group1 = [group1]
        group1 = list(group1)
        unknown = [g for g in [*group1, *([] if group2 is None else [group2])] if g not in groups]
        if unknown:
            raise ValueError(
                f"No cells of group {_preview(unknown)} in mdata.obs[{groupby!r}]; its groups "
                f"are {_preview(groups)}. Pass group names as they appear there."
            )
        if group2 is not None and group2 in group1:
            raise ValueError(
                f"group2={group2!r} is also in group1: a group cannot be compared with itself; "
                "drop it from group1."
            )
        comparisons = []
        for g1 in group1:
            cells1 = (labels == g1).to_numpy()
            cells2 = ~cells1 if group2 is None else (labels == group2).to_numpy()
            label2 = "Rest" if group2 is None else group2
            masks = self._measured_only(modality, measured, cells1, cells2, (g1, label2))
            comparisons.append((g1, label2, *masks))
        return comparisons

    @staticmethod
    def _measured_only(
        modality: Modality,
        measured: np.ndarray,
        cells1: np.ndarray,
        cells2: np.ndarray,
        labels: tuple | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both populations without cells lacking ``modality``; an error if one is empty."""
        if labels is None:
            names = ("idx1", "idx2")
        else:
            names = (f"Group {labels[0]!r}", f"Group {labels[1]!r}")
            if labels[1] == "Rest":
                names = (names[0], f"The rest of the cells (besides group {labels[0]!r})")
        what = _WHAT[modality]
        kept = []
        for name, cells in zip(names, (cells1, cells2), strict=True):
            inside = cells & measured
            if not inside.any():
                reason = f" with the {what} measured" if cells.any() else ""
                raise ValueError(
                    f"{name} has no cells{reason}: both populations need cells measured by "
                    f"the {what}; choose other cells."
                )
            left_out = int(cells.sum() - inside.sum())
            if left_out:
                logger.info("%s: %d cells without the %s left out.", name, left_out, what)
            kept.append(inside)
        return kept[0], kept[1]

    @torch.inference_mode()
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
        codes = batch_codes_from_categories(self.adata_manager, transform_batch)
        vae = self.module.vae(modality)
        blocks = []
        for tensors in self._minibatches(adata, indices, batch_size, (modality,)):
            inference = self.module.inference(
                tensors.get(RNA_KEY),
                tensors.get(EPI_KEY),
                tensors.get(BATCH_KEY),
                modalities=(modality,),
            )
            z = inference[f"qz_{modality}"].sample()
            library = self.module.typical_library(modality, z)
            observed = tensors.get(BATCH_KEY)
            decoded = []
            for code in codes:
                if code is None:
                    batch = None if observed is None else observed.to(z.device)
                else:
                    batch = torch.full((z.shape[0], 1), int(code), device=z.device)
                decoded.append(vae.normalized(vae.decode(z, library, batch)))
            blocks.append(torch.stack(decoded).mean(0).cpu().numpy())
        return np.concatenate(blocks)


def _cell_mask(name: str, selection, obs: pd.DataFrame) -> np.ndarray:
    """Boolean mask of ``idx1``/``idx2``: a mask, positions, or a query on ``obs``.

    A boolean :class:`pandas.Series` is aligned by cell name; its index must hold exactly
    the cells of ``obs``.
    """
    if isinstance(selection, str):
        return obs.index.isin(obs.query(selection).index)
    if isinstance(selection, pd.Series) and pd.api.types.is_bool_dtype(selection.dtype):
        return _aligned_mask(name, selection, obs.index)
    try:
        positions = arguments.cell_indices(selection, len(obs))
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name}: {error}") from error
    mask = np.zeros(len(obs), dtype=bool)
    mask[positions] = True
    return mask


def _aligned_mask(name: str, selection: pd.Series, cells: pd.Index) -> np.ndarray:
    """A boolean Series as a mask in the order of ``cells``, matched by cell name."""
    index = selection.index
    if not index.is_unique or len(index) != len(cells) or not index.isin(cells).all():
        problems = []
        missing, other = cells.difference(index), index.difference(cells)
        if len(missing):
            problems.append(f"{len(missing)} of the MuData's cells missing")
        if len(other):
            problems.append(f"{len(other)} labels that are no cell, e.g. {_preview(other, 3)}")
        if not index.is_unique:
            problems.append(f"{int(index.duplicated().sum())} repeated labels")
        raise ValueError(
            f"{name} is a boolean Series, which is matched by cell name, but its index is not "
            f"the MuData's cell names ({'; '.join(problems)}). Pass a Series indexed by "
            f"mdata.obs_names (e.g. built from mdata.obs), or `{name}.to_numpy()` for a mask "
            "in the MuData's cell order."
        )
    if selection.isna().any():
        raise ValueError(
            f"{name} is a boolean Series with {int(selection.isna().sum())} missing values: "
            "say True or False for every cell."
        )
    return selection.reindex(cells).to_numpy(dtype=bool)


def _check_disjoint(cells1: np.ndarray, cells2: np.ndarray) -> None:
    """Refuse populations that share cells (scvi-tools would put those in ``idx2`` only)."""
    shared = int(np.count_nonzero(cells1 & cells2))
    if not shared:
        return
    if np.array_equal(cells1, cells2):
        raise ValueError(
            "idx1 and idx2 select the same cells: a population cannot be compared with "
            "itself. Pass two populations without common cells, or leave idx2=None to "
            "compare idx1 with all other cells."
        )
    raise ValueError(
        f"idx1 and idx2 share {shared} cells (of {int(cells1.sum())} and {int(cells2.sum())}); "
        "each cell can belong to one population only. Remove the shared cells from one of "
        "them, e.g. `idx2 = idx2 & ~idx1` for boolean masks."
    )


def _expression_properties(view: _RegistryView, idx1: np.ndarray, idx2: np.ndarray) -> dict:
    """scvi-tools' count statistics of each gene (cells without RNA have empty rows)."""
    with np.errstate(divide="ignore"):  # empty rows of cells left out of both populations
        return scrna_raw_counts_properties(view, idx1, idx2)


def _accessibility_properties(manager, idx1: np.ndarray, idx2: np.ndarray) -> dict:
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


def _preview(values, n: int = 10) -> str:
    values = [str(v) for v in values]
    shown = ", ".join(repr(v) for v in values[:n])
    return shown + (f", ... ({len(values)} in all)" if len(values) > n else "")
