"""Results files: merging rows into ``<out>/<dataset>.csv``, the cost figure, the report.

The CSV is long/tidy: one row per ``dataset, task, method, latent, seed`` (see ``run.py``).
Writing replaces every earlier row with the same ``dataset, task, method, seed`` and keeps the
others, so runs with other methods, tasks or seeds add to the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from _metrics import stored_results_table

KEYS = ["dataset", "task", "method", "seed"]
ROW_KEYS = [*KEYS, "latent"]

# columns shown by the report for each task (those present in the CSV)
REPORT_COLUMNS = {
    "embedding": [
        "kmeans_ari",
        "kmeans_nmi",
        "leiden_ari",
        "leiden_nmi",
        "silhouette_label",
        "isolated_labels",
        "clisi",
        "bio_conservation",
        "bio_conservation_graph",
        "ilisi",
        "kbet",
        "graph_connectivity",
        "batch_correction",
        "total",
        "fit_s",
        "peak_rss_mib",
    ],
    "cross_modal": [
        "rna2epi_auroc",
        "rna2epi_auprc",
        "rna2epi_cell_r",
        "rna2epi_region_r",
        "rna2epi_pseudobulk_r",
        "rna2epi_pseudobulk_specific_r",
        "epi2rna_cell_r",
        "epi2rna_gene_r",
        "epi2rna_pseudobulk_r",
        "epi2rna_pseudobulk_specific_r",
        "fit_s",
        "peak_rss_mib",
    ],
    "heldout": ["knn_acc_heldout", "knn_acc_train", "majority_heldout", "fit_s", "peak_rss_mib"],
}
NO_DECIMALS = {"fit_s", "peak_rss_mib"}


def merge(path: Path, rows: list[dict]) -> pd.DataFrame:
    """Write ``rows`` into ``path``, replacing earlier rows with the same keys."""
    new = pd.DataFrame(rows)
    if path.exists():
        old = pd.read_csv(path)
        replaced = old.set_index(KEYS).index.isin(new.set_index(KEYS).index)
        new = pd.concat([old[~replaced], new], ignore_index=True)
    order = {name: i for i, name in enumerate(["embedding", "cross_modal", "heldout"])}
    new = new.sort_values(
        ["dataset", "task", "method", "latent", "seed"],
        key=lambda column: column.map(order) if column.name == "task" else column,
    )
    front = [*ROW_KEYS, "status", "version", "stopped_by"]
    new = new[[c for c in front if c in new] + [c for c in new.columns if c not in front]]
    path.parent.mkdir(parents=True, exist_ok=True)
    new.to_csv(path, index=False)
    return new


def cost_figure(table: pd.DataFrame, path: Path) -> None:
    """Bar charts of fit seconds and peak RSS (MiB) per method, mean ± sd over seeds.

    One bar per method and task (one row per fit: the ``joint`` latent, or ``graph``).
    """
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fits = table[table["latent"].isin(["joint", "graph", "prediction"])]
    if fits.empty:
        return
    fits = fits.assign(name=fits["method"] + " (" + fits["task"] + ")")
    stats = fits.groupby("name")[["fit_s", "peak_rss_mib"]].agg(["mean", "std"])
    stats = stats.sort_values(("fit_s", "mean"))
    figure, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(stats) + 1.5), sharey=True)
    for ax, column, title in (
        (axes[0], "fit_s", "fit wall time (s)"),
        (axes[1], "peak_rss_mib", "peak RSS of the fit process (MiB)"),
    ):
        ax.barh(
            stats.index,
            stats[(column, "mean")],
            xerr=stats[(column, "std")].fillna(0),
            color="tab:blue",
        )
        ax.set_xlabel(title)
        ax.grid(axis="x", alpha=0.3)
    caps = pd.to_numeric(fits.get("max_time_min"), errors="coerce").dropna().unique()
    longest = float(np.nanmax(stats[("fit_s", "mean")])) if len(stats) else 0.0
    for cap in caps:
        if 60 * cap > 1.2 * longest:  # no fit came near the cap: keep the axis readable
            continue
        axes[0].axvline(60 * cap, color="tab:red", linestyle="--", linewidth=1)
        axes[0].text(
            60 * cap, -0.6, f" max_time {cap:g} min per model", color="tab:red", fontsize=8
        )
    dataset = ", ".join(sorted(table["dataset"].unique()))
    figure.suptitle(f"{dataset}: cost per fit (mean ± sd over seeds; cross-modal: sum of folds)")
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)


def _cell(values: pd.Series, column: str) -> str:
    values = values.dropna()
    if values.empty:
        return ""
    fmt = "{:.0f}" if column in NO_DECIMALS else "{:.3f}"
    text = fmt.format(values.mean())
    if len(values) > 1:
        text += " ± " + fmt.format(values.std(ddof=0))
    return text


def report(out: Path) -> str:
    """Markdown tables (mean ± sd over seeds per dataset x method x latent) of every CSV.

    Also redraws each CSV's ``<dataset>_cost.png`` and ``<dataset>_scib.svg`` (scib-metrics'
    results table, mean over seeds, with a PNG copy) from its embedding rows.
    """
    paths = sorted(out.glob("*.csv"))
    if not paths:
        return f"No CSV in {out}."
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    for path in paths:  # redraw the figures from the CSVs as they are now
        rows = pd.read_csv(path)
        embedding = rows[(rows["task"] == "embedding") & (rows["status"].fillna("ok") == "ok")]
        cost_figure(embedding, path.with_name(f"{path.stem}_cost.png"))
        stored_results_table(embedding, path.with_name(f"{path.stem}_scib.svg"))
    sections = []
    for task, columns in REPORT_COLUMNS.items():
        rows = table[table["task"] == task]
        if rows.empty:
            continue
        columns = [c for c in columns if c in rows and rows[c].notna().any()]
        lines = [
            f"### {task}",
            "",
            "| dataset | method | latent | seeds | " + " | ".join(columns) + " |",
            "|" + "---|" * (4 + len(columns)),
        ]
        for (dataset, method, latent), group in rows.groupby(
            ["dataset", "method", "latent"], sort=True
        ):
            ok = group[group["status"].fillna("ok") == "ok"]
            if ok.empty:
                reason = str(group["status"].iloc[0])[:80].replace("|", "/")
                cells = [reason] + [""] * (len(columns) - 1)
            else:
                cells = [_cell(ok[c], c) for c in columns]
            seeds = " ".join(str(int(s)) for s in sorted(ok["seed"].unique())) or "-"
            lines.append(
                f"| {dataset} | {method} | {latent} | {seeds} | " + " | ".join(cells) + " |"
            )
        settings = _settings(rows)
        sections.append("\n".join([*lines, "", settings]))
    return "\n\n".join(sections)


def _settings(rows: pd.DataFrame) -> str:
    """One line naming the settings the rows were run with."""
    parts = []
    for column in ("n_cells", "max_epochs", "max_time_min", "threads", "folds"):
        if column in rows:
            values = sorted({_plain(v) for v in rows[column].dropna().unique()} - {""})
            if values:
                parts.append(f"{column}={'/'.join(values)}")
    return "Settings: " + ", ".join(parts) if parts else ""


def _plain(value) -> str:
    """``3.0`` -> ``"3"``; other values as text."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def numeric(value) -> float:
    """A float, NaN for anything missing."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan
