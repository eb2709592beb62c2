"""Which cells differential tests compare: groups of an obs column, or masks, positions, queries.

Each test is a pair of boolean masks over the registered cells (the user's cell order), without
cells lacking the tested modality; bad selections are refused with the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from scdcca._constants import Modality

from . import _arguments as arguments

logger = logging.getLogger(__name__)

#: How messages name each modality.
WHAT = MappingProxyType({"rna": "RNA", "epi": "epigenome"})


def population_pairs(
    obs: pd.DataFrame,
    measured: np.ndarray,
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
        return [(None, None, *measured_only(modality, measured, cells1, cells2, None))]
    if groupby is None:
        raise ValueError(
            "Say which cells to compare: groupby=<column of mdata.obs> (with group1 and "
            "optionally group2), or idx1 (and optionally idx2)."
        )
    if groupby not in obs.columns:
        raise KeyError(
            f"groupby={groupby!r} is not a column of mdata.obs (columns: "
            f"{preview(obs.columns)}). Add it there, or for a modality's column run "
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
                f"Column {groupby!r} holds a single group ({preview(groups)}): "
                "differential tests need two; pass idx1/idx2 to choose cells directly."
            )
        group1 = groups
    elif isinstance(group1, str) or not isinstance(group1, Iterable):
        group1 = [group1]
    group1 = list(group1)
    unknown = [g for g in [*group1, *([] if group2 is None else [group2])] if g not in groups]
    if unknown:
        raise ValueError(
            f"No cells of group {preview(unknown)} in mdata.obs[{groupby!r}]; its groups "
            f"are {preview(groups)}. Pass group names as they appear there."
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
        masks = measured_only(modality, measured, cells1, cells2, (g1, label2))
        comparisons.append((g1, label2, *masks))
    return comparisons


def measured_only(
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
    what = WHAT[modality]
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
            problems.append(f"{len(other)} labels that are no cell, e.g. {preview(other, 3)}")
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


def preview(values, n: int = 10) -> str:
    values = [str(v) for v in values]
    shown = ", ".join(repr(v) for v in values[:n])
    return shown + (f", ... ({len(values)} in all)" if len(values) > n else "")
