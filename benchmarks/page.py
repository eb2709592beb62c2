"""Print the compact tables of ``benchmarks/README.md`` from the runner's CSVs.

Usage::

    python benchmarks/page.py --out benchmarks/results      # markdown on stdout

One table per task: for each data set, every method's joint embedding (and DCCA's RNA and
epigenome latents), mean ± standard deviation over the training seeds present. The full tables,
every metric of every latent, come from ``python benchmarks/run.py --report --out ...``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from _results import _cell, _plain, numeric

DATASETS = ["snare_cortex", "scicar_kidney", "pairedtag_h3k4me3", "scicar_a549"]
METHODS = ["scdcca", "scdcca_cycle", "pca_lsi", "wnn", "mofa", "scvi_peakvi", "multivi", "knn"]
COLUMNS = {
    "embedding": {
        "kmeans_ari": "KMeans ARI",
        "kmeans_nmi": "KMeans NMI",
        "leiden_ari": "Leiden ARI",
        "bio_conservation": "bio cons.",
        "bio_conservation_graph": "bio cons. (graph)",
        "batch_correction": "batch corr.",
        "fit_s": "fit s",
        "peak_rss_mib": "peak MiB",
        "epochs": "epochs",
    },
    "cross_modal": {
        "rna2epi_auroc": "RNA->epi AUROC",
        "rna2epi_auprc": "AUPRC",
        "rna2epi_cell_r": "cell r",
        "rna2epi_pseudobulk_r": "pseudo-bulk r",
        "rna2epi_pseudobulk_specific_r": "label-specific r",
        "epi2rna_cell_r": "epi->RNA cell r",
        "epi2rna_gene_r": "gene r",
        "epi2rna_pseudobulk_specific_r": "label-specific r (RNA)",
        "fit_s": "fit s (folds)",
        "epochs": "epochs (folds)",
    },
    "heldout": {
        "knn_acc_heldout": "kNN acc. held-out",
        "knn_acc_train": "kNN acc. training",
        "majority_heldout": "majority class",
        "fit_s": "fit s",
        "epochs": "epochs",
    },
}


def _epochs(values: pd.Series) -> str:
    """Epochs of each seed's fit, in seed order (``"scvi=...;peakvi=..."`` kept as text)."""
    return " / ".join(
        _plain(numeric(v)) if numeric(v) == numeric(v) else str(v) for v in values.dropna()
    )


def tables(out: Path) -> str:
    """Markdown tables of every task found in ``out``'s CSVs."""
    frames = [pd.read_csv(p) for p in sorted(out.glob("*.csv"))]
    if not frames:
        return f"No CSV in {out}."
    table = pd.concat(frames, ignore_index=True)
    table = table[table["status"].fillna("ok") == "ok"]
    sections = []
    for task, columns in COLUMNS.items():
        rows = table[table["task"] == task]
        if rows.empty:
            continue
        present = [c for c in columns if c in rows and rows[c].notna().any()]
        header = ["dataset", "method", "latent", "seeds", *(columns[c] for c in present)]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        order = {name: i for i, name in enumerate(DATASETS + METHODS)}
        rows = rows.sort_values("seed")
        for (dataset, method, latent), group in sorted(
            rows.groupby(["dataset", "method", "latent"]),
            key=lambda item: (order.get(item[0][0], 99), order.get(item[0][1], 99), item[0][2]),
        ):
            if task == "embedding" and latent not in ("joint", "graph") and method != "scdcca":
                continue
            seeds = " ".join(str(int(s)) for s in sorted(group["seed"].unique()))
            cells = [
                _epochs(group[c]) if c == "epochs" else _cell(pd.to_numeric(group[c]), c)
                for c in present
            ]
            row = [dataset, method, latent, seeds, *cells]
            lines.append("| " + " | ".join(row) + " |")
        sections.append(f"### {task}\n\n" + "\n".join(lines))
    return "\n\n".join(sections)


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    print(tables(parser.parse_args().out))


if __name__ == "__main__":
    main()
