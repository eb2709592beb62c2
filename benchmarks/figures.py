"""One figure per task of ``benchmarks/README.md``, each training seed a dot, from the CSVs.

Usage::

    python benchmarks/figures.py --out benchmarks/results
    # with the rows kept apart (converged peers, scdcca on the current code):
    python benchmarks/figures.py --out benchmarks/results \
        --extra benchmarks/results/converged benchmarks/results/scdcca

Reads every ``<dataset>.csv`` in ``--out`` (and ``--extra``), keeps the newest row of each
method, data set, latent and seed (``page.newest``: a converged run replaces the capped run of
its seed, a rerun on newer code the older row) and writes
``<figures>/embedding.png``, ``cross_modal.png`` and ``heldout.png`` (``--figures``, default
``<out>/figures``) for the tasks present: one panel per data set and metric of the page's
summary tables (``page.SUMMARY``), one dot per training seed, a bar at the mean. A filled dot:
the training ended on the model's own rule (early stopping, convergence) or the method has no
training iterations; a hollow dot: a cap ended or bounded it (``stopped_by`` ``max_time`` or
``max_epochs``; for rows from before that column, a deep peer run under ``max_epochs`` or
``max_time_min``). Each method's label names what stopped it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from page import DATASETS, NAMES, SUMMARY, _order, entries, load, newest, stop

COLORS = {
    "scdcca": "tab:red", "scdcca_no_transfer": "salmon", "scdcca_cycle": "darkred",
    "pca_lsi": "tab:blue", "pca_rna": "lightsteelblue", "wnn": "tab:cyan", "mofa": "tab:green",
    "scvi_peakvi": "tab:purple", "scvi_rna": "plum", "multivi": "tab:orange", "knn": "tab:gray",
    "label_mean": "black", "scglue": "tab:olive", "multigrate": "tab:pink",
}  # fmt: skip
SHORT = {
    "bio_conservation": "bio conservation", "bio_conservation_graph": "graph bio conservation",
    "kmeans_ari": "KMeans ARI", "rna2epi_auroc": "RNA -> epigenome AUROC",
    "rna2epi_pseudobulk_specific_r": "RNA -> epigenome, label-specific r",
    "epi2rna_pseudobulk_specific_r": "epigenome -> RNA, label-specific r",
    "knn_acc_heldout": "kNN accuracy, held-out cells",
}  # fmt: skip


def draw(table: pd.DataFrame, task: str, path: Path) -> bool:
    """Draw ``task``'s figure into ``path``; ``False`` (nothing written) without its rows."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    rows = table[table["task"] == task]
    specs = [
        (column, latents, title)
        for column, latents, title in SUMMARY[task]
        if column in rows
        and pd.to_numeric(rows.loc[rows["latent"].isin(latents), column], "coerce").notna().any()
    ]
    if not specs:
        return False
    datasets = sorted(rows["dataset"].unique(), key=lambda d: _order(d, DATASETS))
    found = entries(rows)
    labels = [
        label.replace(" (", "\n(", 1) + ("" if ranked else " *") for _, label, _, ranked in found
    ]
    figure, axes = plt.subplots(
        len(specs),
        len(datasets),
        figsize=(3.1 * len(datasets) + 2.2, 0.32 * len(found) * len(specs) + 1.4 * len(specs)),
        sharey=True,
        squeeze=False,
    )
    for i, (column, latents, _) in enumerate(specs):
        for j, dataset in enumerate(datasets):
            ax = axes[i][j]
            here = rows[(rows["dataset"] == dataset) & rows["latent"].isin(latents)]
            for y, (method, _, entry, _) in enumerate(found):
                mine = here[here.index.isin(entry.index)].sort_values("seed")
                values = pd.to_numeric(mine[column], errors="coerce")
                mine, values = mine[values.notna()], values[values.notna()]
                if values.empty:
                    continue
                color = COLORS.get(method, "tab:brown")
                offsets = [0.12 * (k - (len(values) - 1) / 2) for k in range(len(values))]
                for (_, row), value, dy in zip(mine.iterrows(), values, offsets, strict=True):
                    capped = stop(row)[0]
                    ax.scatter(
                        value,
                        y + dy,
                        s=28,
                        marker="o",
                        facecolors="none" if capped else color,
                        edgecolors=color,
                        linewidths=1.3,
                        zorder=3,
                    )
                ax.plot([values.mean()] * 2, [y - 0.3, y + 0.3], color=color, linewidth=1.5)
            if "majority_heldout" in here and here["majority_heldout"].notna().any():
                majority = pd.to_numeric(here["majority_heldout"], errors="coerce").mean()
                ax.axvline(majority, color="gray", linestyle="--", linewidth=1)
            ax.set_yticks(range(len(found)), labels, fontsize=7)
            ax.set_ylim(len(found) - 0.5, -0.5)
            ax.grid(axis="x", alpha=0.3)
            ax.tick_params(axis="x", labelsize=7)
            latent = "" if latents == ("prediction",) else f", {'/'.join(latents)} latent"
            metric = SHORT.get(column, column) + latent
            ax.set_title(f"{NAMES.get(dataset, dataset)}\n{metric}", fontsize=8)
            if j:
                ax.tick_params(axis="y", left=False)
    handles = [
        Line2D([], [], marker="o", linestyle="", color="gray", label="a training seed"),
        Line2D(
            [], [], marker="o", linestyle="", markerfacecolor="none", color="gray",
            label="a training seed, capped (max_time / max_epochs)",
        ),
        Line2D([], [], marker="|", linestyle="", markersize=10, color="gray", label="mean"),
    ]  # fmt: skip
    if "majority_heldout" in rows and rows["majority_heldout"].notna().any():
        handles.append(Line2D([], [], linestyle="--", color="gray", label="majority class"))
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    note = ""
    if not all(ranked for *_, ranked in found):
        note = "  * not ranked: knows the labels, or older code of scdcca"
    figure.suptitle(f"{task}: one dot per training seed{note}", fontsize=9)
    figure.tight_layout(rect=(0, 0.05, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def draw_all(out: Path, figures: Path | None = None, extra: tuple[Path, ...] = ()) -> list[Path]:
    """Every task's figure from the CSVs in ``out`` (and ``extra``); the paths written."""
    table = newest(load(out, *extra))
    figures = figures or out / "figures"
    written = []
    for task in SUMMARY:
        path = figures / f"{task}.png"
        if not table.empty and draw(table, task, path):
            written.append(path)
    return written


def main() -> None:
    """Draw the figures and print their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--extra", type=Path, nargs="*", default=[])
    parser.add_argument("--figures", type=Path, default=None)
    args = parser.parse_args()
    for path in draw_all(args.out, args.figures, tuple(args.extra)):
        print(path)


if __name__ == "__main__":
    main()
