"""The tables of ``benchmarks/README.md`` and ``benchmarks/DETAILS.md`` from the runner's CSVs.

Usage::

    python benchmarks/page.py --out benchmarks/results      # README's summary tables
    python benchmarks/page.py --budget benchmarks/results/budget  # one training-time budget

Summary: one table per task, methods by data set, mean ± sample standard deviation over the
training seeds present, each method named with what ended or capped its training. DETAILS'
tables and targets: ``details.py``. Every metric of every latent: ``python benchmarks/run.py
--report --out ...``.

Comparisons (:func:`verdict`): a method is "ahead" of or "behind" another only where the 95 %
t-interval of their paired per-seed differences excludes zero (where both have two or more
seeds in common; otherwise where the gap of the means exceeds both methods' spread over
seeds); otherwise "level".
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from _results import _plain, numeric

DATASETS = ["snare_cortex", "scicar_kidney", "pairedtag_h3k4me3", "scicar_a549"]
METHODS = [
    "scdcca", "scdcca_no_transfer", "scdcca_cycle", "pca_lsi", "pca_rna", "wnn", "mofa",
    "scvi_peakvi", "scvi_rna", "multivi", "scglue", "multigrate", "knn", "label_mean",
]  # fmt: skip
NAMES = {
    "snare_cortex": "SNARE cortex", "scicar_kidney": "sci-CAR kidney",
    "pairedtag_h3k4me3": "Paired-Tag", "scicar_a549": "sci-CAR A549",
    "scdcca": "scdcca", "scdcca_no_transfer": "scdcca, no transfer",
    "scdcca_cycle": "scdcca, cycle schedule", "pca_lsi": "PCA + LSI",
    "pca_rna": "PCA of RNA", "wnn": "WNN (graph)", "mofa": "MOFA+",
    "scvi_peakvi": "scVI + PeakVI", "scvi_rna": "scVI of RNA", "multivi": "MULTIVI",
    "scglue": "scGLUE", "multigrate": "Multigrate",
    "knn": "kNN", "label_mean": "label means (knows labels)",
}  # fmt: skip
#: Deep peers: their training may have been cut by a cap.
DEEP_PEERS = {"multivi", "scvi_peakvi", "scvi_rna", "scglue", "multigrate"}
#: ``stopped_by`` values that say a cap, not the model's own rule, ended a fit.
CAPS = {"max_time", "max_epochs"}
#: Not ranked among the methods: the reference that knows the labels.
UNRANKED = {"label_mean"}
#: scdcca's own methods: their rows without a ``version`` ran older code of the package.
OWN = {"scdcca", "scdcca_no_transfer", "scdcca_cycle"}
#: The summary tables: per task, (column, latents, title).
SUMMARY = {
    "embedding": (
        ("bio_conservation", ("joint",), "bio conservation (scib-metrics), joint latent"),
        ("bio_conservation_graph", ("joint", "graph"),
         "graph bio conservation (Leiden NMI, Leiden ARI, cLISI), WNN included"),
    ),
    "cross_modal": (
        ("rna2epi_auroc", ("prediction",), "RNA -> epigenome AUROC, held-out cells"),
        ("rna2epi_pseudobulk_specific_r", ("prediction",),
         "RNA -> epigenome, label-specific pseudo-bulk r"),
        ("epi2rna_pseudobulk_specific_r", ("prediction",),
         "epigenome -> RNA, label-specific pseudo-bulk r"),
    ),
    "heldout": (
        ("knn_acc_heldout", ("joint",), "kNN accuracy of held-out cells, joint latent"),
        ("knn_acc_heldout", ("epi",), "kNN accuracy of held-out cells, epigenome latent"),
    ),
}  # fmt: skip


def load(out: Path, *extra: Path) -> pd.DataFrame:
    """The ``ok`` rows of every ``<dataset>.csv`` in ``out`` (and ``extra`` folders).

    ``version`` and ``stopped_by`` are added, empty, where a CSV predates them.
    """
    paths = [p for folder in (out, *extra) for p in sorted(Path(folder).glob("*.csv"))]
    if not paths:
        return pd.DataFrame(columns=["dataset", "task", "method", "latent", "seed", "status"])
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    for column in ("version", "stopped_by", "max_epochs", "max_time_min"):
        if column not in table:
            table[column] = pd.NA
    return table[table["status"].fillna("ok") == "ok"].reset_index(drop=True)


#: What one row measures; a later row with the same key replaces an earlier one.
ROW_KEY = ["dataset", "task", "method", "latent", "seed"]


def _versions(table: pd.DataFrame) -> pd.Series:
    """Each row's ``version``, missing (``pd.NA``) where it is empty."""
    return table["version"].astype("string").str.strip().replace("", pd.NA)


def newest(table: pd.DataFrame) -> pd.DataFrame:
    """The newest row of each measurement (:data:`ROW_KEY`).

    Rows with a ``version`` replace rows without one, and a later row (later folder, later in
    its CSV, as :func:`load` reads them) an earlier one. So a peer's run to its own stopping
    rule replaces its capped run of the same seed, and a rerun on newer code the older row.
    """
    versioned = _versions(table).notna()
    order = table.assign(_versioned=versioned.to_numpy(), _position=range(len(table)))
    order = order.sort_values(["_versioned", "_position"], kind="stable")
    kept = order.drop_duplicates(ROW_KEY, keep="last").sort_values("_position")
    return kept.drop(columns=["_versioned", "_position"]).reset_index(drop=True)


def stop(row: pd.Series) -> tuple[bool, str]:
    """``(capped, label)`` of one row: whether a cap ended (or bounded) its training.

    From ``stopped_by`` where the row records it. Older rows leave it empty: a deep peer among
    them counts as capped when it ran under ``max_epochs`` or ``max_time_min`` (the label then
    names the cap it ran under; whether the cap was reached was not recorded).
    """
    stopped = row.get("stopped_by")
    if isinstance(stopped, str) and stopped.strip():
        return stopped in CAPS, stopped
    if row.get("method") not in DEEP_PEERS:
        return False, ""
    epochs = numeric(row.get("max_epochs"))
    if epochs == epochs:
        return True, f"capped at {epochs:g} epochs"
    minutes = numeric(row.get("max_time_min"))
    if minutes == minutes and minutes > 0:
        return True, f"capped at {minutes:g} min per fit"
    return False, ""


def stop_label(rows: pd.DataFrame) -> str:
    """What ended the training of a method's rows, e.g. ``capped at 20 epochs``."""
    labels = sorted({stop(row)[1] for _, row in rows.iterrows()} - {"", "deterministic"})
    return ", ".join(labels)


def stats(values: pd.Series) -> tuple[float, float, int]:
    """``(mean, sample sd, n)`` over seeds; sd ``nan`` with one seed."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return (float(values.mean()) if len(values) else math.nan), sd, len(values)


def verdict(a: pd.Series, b: pd.Series, level: float = 0.95) -> str:
    """``"ahead"``, ``"behind"`` or ``"level"``: ``a``'s seeds against ``b``'s.

    ``a`` and ``b`` are indexed by training seed. With two or more seeds in common, from the
    paired differences ``a - b``: ahead or behind where their ``level`` t-interval excludes 0,
    so the seeds of both methods count. Otherwise (a method with one seed, or no seed in
    common) ahead or behind only where the gap of the means exceeds the larger of the two
    sample standard deviations over seeds (a method with one seed contributes no spread).
    """
    a = pd.to_numeric(a, errors="coerce").dropna()
    b = pd.to_numeric(b, errors="coerce").dropna()
    common = a.index.intersection(b.index)
    if len(common) >= 2:
        from scipy import stats as scipy_stats

        differences = a[common].to_numpy() - b[common].to_numpy()
        gap = float(differences.mean())
        n = len(differences)
        sd = float(differences.std(ddof=1))
        half = float(scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
        if abs(gap) <= half:
            return "level"
        return "ahead" if gap > 0 else "behind"
    (ma, sa, _), (mb, sb, _) = stats(a), stats(b)
    spread = max((s for s in (sa, sb) if not math.isnan(s)), default=0.0)
    gap = ma - mb
    if abs(gap) <= spread:
        return "level"
    return "ahead" if gap > 0 else "behind"


def by_seed(rows: pd.DataFrame, column: str) -> pd.Series:
    """``column`` of ``rows`` indexed by training seed (rows of one seed averaged)."""
    values = pd.to_numeric(rows[column], errors="coerce")
    return values.groupby(rows["seed"].to_numpy()).mean()


def _order(name: str, names: list[str]) -> tuple[int, str]:
    return (names.index(name) if name in names else len(names), name)


def _figure(values: pd.Series) -> str:
    mean, sd, n = stats(values)
    if n == 0:
        return ""
    if n == 1:
        return f"{mean:.3f} (1 seed)"
    return f"{mean:.3f} ± {sd:.3f}"


def entries(rows: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame, bool]]:
    """``(method, label, rows, ranked)`` per method, rows that must not be mixed apart.

    A peer's capped rows and its rows trained to its own stopping rule are never averaged
    together: each gets its own entry, labelled with what stopped it (``"MULTIVI (capped at
    20 epochs)"``, ``"MULTIVI (early_stopping)"``). Rows of scdcca's own methods without a
    ``version``, where the method also has versioned rows, ran older code of the package:
    they get an entry labelled ``"(older code)"`` and are not ranked, nor is the reference
    that knows the labels. Ordered as :data:`METHODS`, uncapped first.
    """
    if rows.empty:
        return []
    capped = rows.apply(lambda row: stop(row)[0], axis=1).astype(bool)
    versioned = _versions(rows).notna()
    found = []
    for method in sorted(rows["method"].unique(), key=lambda m: _order(m, METHODS)):
        of_method = rows["method"] == method
        # rows of older code, where the method has versioned rows to set them apart from
        has_newer = method in OWN and bool((of_method & versioned).any())
        older = of_method & ~versioned & has_newer
        name = NAMES.get(method, method)
        for flag in (False, True):
            mine = rows[of_method & (capped == flag) & ~older]
            if not mine.empty:
                note = stop_label(mine)
                label = f"{name} ({note})" if note else name
                found.append((method, label, mine, method not in UNRANKED))
        if (of_method & older).any():
            found.append((method, f"{name} (older code)", rows[of_method & older], False))
    return found


def summary_table(table: pd.DataFrame, task: str, column: str, latents: tuple[str, ...]) -> str:
    """Methods by data set: mean ± sample sd over seeds of ``column``, leaders in bold.

    Bold: the best mean of a data set and every method level with it (:func:`verdict`);
    entries that :func:`entries` does not rank are left out of the comparison.
    """
    rows = table[(table["task"] == task) & table["latent"].isin(latents)]
    if column not in rows:
        return ""
    rows = rows[pd.to_numeric(rows[column], errors="coerce").notna()]
    if rows.empty:
        return ""
    datasets = sorted(rows["dataset"].unique(), key=lambda d: _order(d, DATASETS))
    found = entries(rows)
    bold: dict[str, set[str]] = {}
    for dataset in datasets:
        seeds = {
            label: by_seed(mine[mine["dataset"] == dataset], column)
            for _, label, mine, ranked in found
            if ranked and (mine["dataset"] == dataset).any()
        }
        if seeds:
            best = max(seeds, key=lambda label: stats(seeds[label])[0])
            bold[dataset] = {k for k in seeds if verdict(seeds[k], seeds[best]) == "level"}
    header = ["method", *(NAMES.get(d, d) for d in datasets)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for _, label, mine, _ in found:
        cells = [label]
        for dataset in datasets:
            text = _figure(mine.loc[mine["dataset"] == dataset, column])
            cells.append(f"**{text}**" if text and label in bold.get(dataset, ()) else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def provenance(table: pd.DataFrame) -> str:
    """One line: the code versions of the rows, and how many rows predate the column."""
    versions = _versions(table)
    named = sorted(versions.dropna().unique())
    missing = int(versions.isna().sum())
    if not named:
        return (
            f"None of these {len(table)} rows records a `version` or `stopped_by`: they"
            " predate the columns."
        )
    line = f"Code versions: {', '.join(named)}."
    if missing:
        line += f" {missing} of {len(table)} rows without a version predate the column."
    return line


def summary(out: Path, *extra: Path) -> str:
    """The README's tables: one section per task, one table per headline metric.

    From the newest row of each method, data set, latent and seed (:func:`newest`).
    """
    table = newest(load(out, *extra))
    if table.empty:
        return f"No CSV in {out}."
    sections = []
    for task, specs in SUMMARY.items():
        part = [f"### {task}"]
        for column, latents, title in specs:
            text = summary_table(table, task, column, latents)
            if text:
                part += ["", f"{title}:", "", text]
        rows = table[table["task"] == task]
        if len(part) > 1:
            sections.append("\n".join([*part, "", provenance(rows)]))
    return "\n\n".join(sections)


def budget_table(folder: Path) -> str:
    """Every deep method under one training-time budget: a table per data set of ``folder``.

    The rows come from runs with ``--max-time`` (one budget per method fit, all its fits
    together): the budget, the training time each used, its epochs, what stopped it, and
    its joint latent's bio conservation and KMeans ARI (mean ± sample sd over seeds).
    """
    table = newest(load(folder))
    rows = table[(table["task"] == "embedding") & (table["latent"] == "joint")]
    if rows.empty:
        return f"No embedding rows in {folder}."
    sections = []
    for dataset, mine in sorted(rows.groupby("dataset"), key=lambda d: _order(d[0], DATASETS)):
        lines = [
            "| method | budget (min) | fit s | epochs | stopped by | bio conservation "
            "| KMeans ARI | seeds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method, group in sorted(mine.groupby("method"), key=lambda m: _order(m[0], METHODS)):
            cells = [
                NAMES.get(method, method),
                " / ".join(sorted({_plain(numeric(v)) for v in group["max_time_min"]})),
                f"{pd.to_numeric(group['fit_s']).mean():.0f}",
                " / ".join(str(v) for v in group["epochs"]),
                " / ".join(sorted(set(group["stopped_by"].astype(str)))),
                _figure(by_seed(group, "bio_conservation")),
                _figure(by_seed(group, "kmeans_ari")),
                str(group["seed"].nunique()),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        sections.append(f"{NAMES.get(dataset, dataset)}:\n\n" + "\n".join(lines))
    return "\n\n".join(sections)


def main() -> None:
    """Print the README's summary tables, or with ``--budget`` the equal-budget table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--extra",
        type=Path,
        nargs="*",
        default=[],
        help="more folders of <dataset>.csv read after --out",
    )
    parser.add_argument(
        "--budget",
        type=Path,
        default=None,
        help="instead: the table of a folder of runs under one training-time budget",
    )
    args = parser.parse_args()
    if args.budget is not None:
        print(budget_table(args.budget))
    else:
        print(summary(args.out, *args.extra))


if __name__ == "__main__":
    main()
