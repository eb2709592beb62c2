"""Plots of regulation results: activity heatmap by group and the top TF -> target network."""

from __future__ import annotations

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from ._plots import _finish


def _scores(data: AnnData | MuData, key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``obsm[key]`` data frame and the obs table that goes with it."""
    if isinstance(data, MuData):
        holders = [name for name, mod in data.mod.items() if key in mod.obsm]
        if not holders:
            raise KeyError(
                f"No modality has obsm[{key!r}]; run `scdcca.tl.motif_activity(mdata['atac'])` "
                "first (it writes 'chromvar_z')."
            )
        mod = data.mod[holders[0]]
        obs = data.obs.reindex(mod.obs_names).combine_first(mod.obs)
        return mod.obsm[key], obs
    if key not in data.obsm:
        raise KeyError(f"adata.obsm has no {key!r}; run `scdcca.tl.motif_activity` first.")
    return data.obsm[key], data.obs


def activity_heatmap(
    data: AnnData | MuData,
    groupby: str,
    key: str = "chromvar_z",
    annotations: list[str] | None = None,
    n_top: int = 30,
    cmap: str = "RdBu_r",
    ax: plt.Axes | None = None,
    save: str | None = None,
) -> list:
    """Mean activity z-score of each annotation (rows) in each group of cells (columns).

    Parameters
    ----------
    data
        AnnData with ``obsm[key]`` (from :func:`scdcca.tl.motif_activity`) or a MuData with
        it in one modality.
    groupby
        Column of ``obs`` (of the MuData or of the modality).
    key
        ``obsm`` key of a cells x annotations data frame.
    annotations
        Annotations to show; default the ``n_top`` whose group means vary most.
    n_top
        How many annotations to show when ``annotations`` is not given.
    cmap
        Diverging colour map, centred on 0.
    ax
        Axes to draw on.
    save
        File to save the figure to.

    Returns
    -------
    The heatmap's axes and the colour bar's axes.
    """
    scores, obs = _scores(data, key)
    if not isinstance(scores, pd.DataFrame):
        scores = pd.DataFrame(np.asarray(scores), index=obs.index)
    if groupby not in obs:
        raise KeyError(f"{groupby!r} is not a column of obs; columns: {list(obs)}.")
    means = scores.groupby(obs[groupby].reindex(scores.index).to_numpy(), observed=True).mean()
    means = means.T  # annotations x groups
    if annotations is not None:
        unknown = [a for a in annotations if a not in means.index]
        if unknown:
            raise KeyError(f"Annotations {unknown[:3]} are not columns of obsm[{key!r}].")
        means = means.loc[annotations]
    else:
        means = means.loc[means.var(1).sort_values(ascending=False).index[:n_top]]
    if ax is None:
        height = max(3.0, 0.22 * len(means) + 1.5)
        _, ax = plt.subplots(figsize=(max(4.0, 0.35 * means.shape[1] + 3), height))
    limit = float(np.nanmax(np.abs(means.to_numpy()))) or 1.0
    image = ax.imshow(means.to_numpy(), aspect="auto", cmap=cmap, vmin=-limit, vmax=limit)
    ax.set_xticks(range(means.shape[1]), [str(c) for c in means.columns], rotation=90)
    ax.set_yticks(range(means.shape[0]), [str(i) for i in means.index], fontsize=8)
    ax.set_xlabel(groupby)
    bar = ax.figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label(f"mean {key}")
    return _finish(ax.figure, save)


def tf_network(
    network: pd.DataFrame,
    group: str | None = None,
    n_top: int = 40,
    ax: plt.Axes | None = None,
    seed: int = 0,
    save: str | None = None,
) -> plt.Axes:
    """The strongest TF -> target edges of a network as a graph.

    TFs are drawn large and orange, targets small and grey; edge colour is the sign of the
    coefficient (red activating, blue repressing), edge width its size.

    Parameters
    ----------
    network
        Output of :func:`scdcca.tl.tf_target_network`.
    group
        Which group's network (required if there are several).
    n_top
        Edges with the largest ``|coef|`` to draw.
    ax
        Axes to draw on.
    seed
        Layout seed.
    save
        File to save the figure to.

    Returns
    -------
    The axes.
    """
    missing = [c for c in ("tf", "target", "coef") if c not in network]
    if missing:
        raise ValueError(f"`network` lacks {missing}; pass scdcca.tl.tf_target_network output.")
    edges = network
    if "group" in network and network["group"].nunique() > 1:
        if group is None:
            raise ValueError(
                f"The network has groups {sorted(network['group'].unique())[:5]}...; pass "
                "`group=`."
            )
    if group is not None:
        edges = network[network["group"] == group]
        if edges.empty:
            raise KeyError(f"No edges for group {group!r}.")
    if "kept" in edges:
        edges = edges[edges["kept"]]
    edges = edges.loc[edges["coef"].abs().sort_values(ascending=False).index[:n_top]]
    graph = nx.DiGraph()
    for row in edges.itertuples():
        graph.add_edge(row.tf, row.target, coef=row.coef)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 6))
    tfs = set(edges["tf"])
    pos = nx.spring_layout(graph, seed=seed, k=1.5 / np.sqrt(max(len(graph), 1)))
    nodes = list(graph.nodes)
    nx.draw_networkx_nodes(
        graph,
        pos,
        nodelist=nodes,
        node_color=["tab:orange" if n in tfs else "lightgrey" for n in nodes],
        node_size=[500 if n in tfs else 120 for n in nodes],
        ax=ax,
    )
    coefs = np.array([graph.edges[e]["coef"] for e in graph.edges])
    width = 0.5 + 3 * np.abs(coefs) / max(float(np.abs(coefs).max()), 1e-12) if len(coefs) else []
    nx.draw_networkx_edges(
        graph,
        pos,
        edge_color=["tab:red" if c > 0 else "tab:blue" for c in coefs],
        width=width,
        arrows=True,
        arrowsize=8,
        ax=ax,
    )
    nx.draw_networkx_labels(graph, pos, font_size=7, ax=ax)
    ax.set_title(f"top {len(edges)} TF -> target edges" + (f" ({group})" if group else ""))
    ax.set_axis_off()
    _finish(ax.figure, save)
    return ax
