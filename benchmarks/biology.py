"""Regulation on real data, raw vs DCCA-denoised: marker peak-set activity, links, agreement.

Usage::

    python benchmarks/biology.py [--threads 1] [--cache DIR] [--n-markers 100]
                                 [--marker-window 50000] [--link-window 500000] [--seed 0]
                                 [--datasets scicar_kidney scicar_a549 snare_cortex]

For each dataset (sci-CAR kidney, A549, SNARE cortex with its libraries as batches) DCCA is
trained with the default settings and its results written into the MuData (``--cache DIR``
keeps that MuData and reuses it next time).

1. Kidney and SNARE cortex, no genome sequence needed: for each cell type, the peaks within
   ``--marker-window`` bp of the TSS of its top ``--n-markers`` marker genes (Wilcoxon on
   log-normalised raw RNA) form a peak set; ``motif_activity`` (chromVAR) scores every set on
   raw accessibility, on the denoised layer (mean depth) and on the denoised layer shifted
   to each cell's measured number of open peaks (and, with batches, on the denoised layer
   averaged over every batch, ``transform_batch``), and we count how often the cell type with
   the highest mean z-score (and mean deviation) is the set's own and the mean rank of the
   own type; the same for the plain set mean over each cell's mean over all peaks (no
   chromVAR), which shows whether a difference comes from the data or from chromVAR; and, cell
   by cell, how well each set's z-score picks out its own type's cells (AUROC, mean over sets).
2. Every dataset: peak-gene links (``--link-window``, FDR 0.05) on raw and denoised data, and
   ``crossomics_agreement`` (Cohen's kappa of the two modalities' clusterings; mean
   gene-peak correlation over all pairs within the window and over the links found).

Prints markdown and writes ``benchmarks/output/biology.md`` and a heatmap per dataset of 1.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import matplotlib
import mudata
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse
import scvi
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

import scdcca
from _data import rna_pca

matplotlib.use("Agg")

#: the denoised layer averaged over every batch (``transform_batch``), for data with batches
ACROSS_BATCHES = "dcca_denoised_across_batches"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).parent / "output"
#: name -> (gene table, label column, setup arguments, marker peak sets scored)
DATASETS = {
    "scicar_kidney": ("genes_mm10.tsv.gz", "cell_type", {}, True),
    "scicar_a549": ("genes_hg19.tsv.gz", "treatment_time", {}, False),
    "snare_cortex": (
        "genes_mm10.tsv.gz",
        "subclass",
        {"binarize_epi": True, "batch_key": "sample"},
        True,
    ),
}


def trained(name: str, cache: Path | None, seed: int) -> tuple[mudata.MuData, float]:
    path = None if cache is None else cache / f"{name}_dcca_seed{seed}.h5mu"
    if path is not None and path.exists():
        return mudata.read_h5mu(path), float("nan")
    scvi.settings.seed = seed
    mdata = mudata.read_h5mu(DATA / f"{name}.h5mu")
    setup = DATASETS[name][2]
    modalities = {"rna_layer": "rna", "epi_layer": "atac"}
    scdcca.DCCA.setup_mudata(mdata, modalities=modalities, **setup)
    model = scdcca.DCCA(mdata)
    start = time.perf_counter()
    model.train(enable_progress_bar=False)
    elapsed = time.perf_counter() - start
    model.write_results(mdata, denoised=True)
    batch_key = setup.get("batch_key")
    if batch_key is not None:
        libraries = list(mdata.obs[batch_key].astype("category").cat.categories)
        mdata["atac"].layers[ACROSS_BATCHES] = model.get_normalized_accessibility(
            transform_batch=libraries, return_numpy=True
        )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        mdata.write(path)
    return mdata, elapsed


def marker_sets(mdata: mudata.MuData, labels: str, n_markers: int) -> dict[str, list[str]]:
    rna = mdata["rna"].copy()
    sc.pp.normalize_total(rna, target_sum=1e4)
    sc.pp.log1p(rna)
    rna.obs[labels] = mdata.obs[labels].astype("category").to_numpy()
    sc.tl.rank_genes_groups(rna, labels, method="wilcoxon", n_genes=n_markers)
    groups = rna.obs[labels].cat.categories
    return {g: list(sc.get.rank_genes_groups_df(rna, g)["names"][:n_markers]) for g in groups}


def at_measured_depth(mdata: mudata.MuData) -> np.ndarray:
    """The denoised layer with each cell's logits shifted to its measured open regions."""
    from scdcca.module._components import logits_at_depth

    atac = mdata["atac"]
    probs = torch.as_tensor(np.asarray(atac.layers["dcca_denoised"]), dtype=torch.float32)
    depth = torch.as_tensor(np.asarray((atac.X > 0).sum(1)), dtype=torch.float32).view(-1, 1)
    logits = torch.logit(probs.clamp(1e-6, 1 - 1e-6))
    return torch.sigmoid(logits_at_depth(logits, depth)).numpy()


def own_type_ranks(scores: pd.DataFrame, labels: np.ndarray) -> tuple[pd.DataFrame, pd.Series]:
    """Label means of each set's score, and the rank (1 = highest) of each set's own type."""
    mean = scores.groupby(labels, observed=True).mean()
    return mean, pd.Series({s: mean[s].rank(ascending=False)[s] for s in mean.columns})


def _first_and_mean_rank(ranks: pd.Series) -> tuple[int, float]:
    """How many sets rank their own type first, and the own type's mean rank."""
    return int((ranks == 1).sum()), float(ranks.mean())


def type_separation(mdata: mudata.MuData, labels: np.ndarray) -> pd.DataFrame:
    """Per type, how often a cell's 15 nearest neighbours (5-fold cross-validated) share its type.

    In the epigenome latent, from which the denoised layer is decoded, and in 50 PCs of
    log-normalised RNA, which shows whether the data themselves tell the type apart.
    """
    pca = rna_pca(mdata["rna"].X, np.arange(mdata.n_obs))
    spaces = {"epi latent": mdata["atac"].obsm["X_dcca"], "PCA of RNA": pca}
    out = {}
    for name, space in spaces.items():
        guess = cross_val_predict(KNeighborsClassifier(15), np.asarray(space), labels, cv=5)
        out[name] = pd.Series(guess == labels).groupby(labels).mean()
    return pd.DataFrame(out)


def rank_by_type(
    ranks: dict[str, pd.Series], labels: np.ndarray, separation: pd.DataFrame
) -> list[str]:
    """Markdown rows: each type's own-set rank per accessibility and its kNN accuracy."""
    cells = pd.Series(labels).value_counts()
    table = pd.DataFrame(ranks).join(separation).assign(cells=cells).sort_values("cells")
    head = (
        "| cell type | cells | "
        + " | ".join(f"own rank, {k}" for k in ranks)
        + " | "
        + " | ".join(f"kNN acc., {k}" for k in separation.columns)
        + " |"
    )
    rows = [head, "|---|---|" + "---|" * (len(ranks) + separation.shape[1])]
    for name, row in table.iterrows():
        values = [f"{row[k]:.0f}" for k in ranks] + [f"{row[k]:.2f}" for k in separation]
        rows.append(f"| {name} | {int(row['cells'])} | " + " | ".join(values) + " |")
    separated = table["epi latent"] >= 0.5
    for kind, group in (("at least", table[separated]), ("below", table[~separated])):
        firsts = ", ".join(f"{k} {int((group[k] == 1).sum())}" for k in ranks)
        rows += [
            "",
            f"Types whose epigenome-latent kNN accuracy is {kind} 0.5 ({len(group)}): own "
            f"type first on {firsts}.",
        ]
    return rows


def own_type_auroc(scores: pd.DataFrame, labels: np.ndarray) -> float:
    """Mean over sets of the AUROC with which a set's per-cell score picks its own type's cells.

    Cells without a score (chromVAR leaves cells with no read in a set's background
    undefined) count as 0.
    """
    return float(
        np.mean([roc_auc_score(labels == s, scores[s].fillna(0.0)) for s in scores.columns])
    )


def set_means(
    matrix, var_names: pd.Index, peak_sets: dict[str, list[str]], calls: bool
) -> pd.DataFrame:
    """Each set's mean accessibility per cell over the cell's mean over all peaks (no chromVAR).

    With ``calls`` (raw data) entries are read as open (> 0) or not, as the model reads them.
    """
    if calls:
        matrix = scipy.sparse.csr_matrix(matrix > 0, dtype=np.float32)
    elif scipy.sparse.issparse(matrix):
        matrix = scipy.sparse.csr_matrix(matrix, dtype=np.float32)
    else:
        matrix = np.asarray(matrix, dtype=np.float32)
    cell_mean = np.asarray(matrix.mean(1)).ravel().clip(1e-9)
    columns = {p: i for i, p in enumerate(var_names)}
    scores = {}
    for name, peaks in peak_sets.items():
        block = matrix[:, [columns[p] for p in peaks]]
        scores[name] = np.asarray(block.mean(1)).ravel() / cell_mean
    return pd.DataFrame(scores)


def marker_activity(mdata, genes, labels, args) -> tuple[list[str], dict[str, pd.DataFrame]]:
    sets = marker_sets(mdata, labels, args.n_markers)
    peak_sets = scdcca.tl.peaks_near_genes(
        mdata["atac"].var_names, genes, sets, window=args.marker_window
    )
    sizes = [len(p) for p in peak_sets.values()]
    atac = mdata["atac"].copy()
    atac.layers["measured_depth"] = at_measured_depth(mdata)
    cell_labels = mdata.obs[labels].to_numpy()
    rows, means, ranks = [], {}, {}
    variants = (
        ("raw", None),
        ("denoised", "dcca_denoised"),
        ("denoised, each cell's measured depth", "measured_depth"),
    )
    if ACROSS_BATCHES in atac.layers:
        variants += (("denoised, averaged over batches", ACROSS_BATCHES),)
    for name, layer in variants:
        start = time.perf_counter()
        deviation, z = scdcca.tl.motif_activity(
            atac, peak_sets, layer=layer, seed=args.seed, inplace=False
        )
        elapsed = time.perf_counter() - start
        mean, own = own_type_ranks(z, cell_labels)
        hits, rank = _first_and_mean_rank(own)
        dev_hits, dev_rank = _first_and_mean_rank(own_type_ranks(deviation, cell_labels)[1])
        auroc = own_type_auroc(z, cell_labels)
        matrix = atac.X if layer is None else atac.layers[layer]
        plain = set_means(matrix, atac.var_names, peak_sets, calls=layer is None)
        plain_hits, plain_rank = _first_and_mean_rank(own_type_ranks(plain, cell_labels)[1])
        if layer in (None, "dcca_denoised"):
            means[name] = mean
            ranks[name] = own
        n_sets = len(mean.columns)
        rows.append(
            f"| {name} | {hits} / {n_sets} | {rank:.1f} | {dev_hits} / {n_sets} | "
            f"{dev_rank:.1f} | {plain_hits} / {n_sets} | {plain_rank:.1f} | {auroc:.3f} | "
            f"{np.mean(sizes):.0f} ({min(sizes)}-{max(sizes)}) | {elapsed:.1f} |"
        )
        print(rows[-1], flush=True)
    n_types = len(sets)
    head = [
        f"| accessibility | top z in own cell type | mean rank of own type (of {n_types}) "
        "| top deviation in own type | mean rank (deviations) | top set mean in own type "
        "| mean rank (set means) | own type's cells vs the rest, AUROC (z) | peaks per set | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    return [
        *head,
        *rows,
        "",
        "Own type's rank by chromVAR z, per set:",
        "",
        *rank_by_type(ranks, cell_labels, type_separation(mdata, cell_labels)),
    ], means


def heatmaps(means: dict[str, pd.DataFrame], dataset: str) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    for ax, (name, mean) in zip(axes, means.items(), strict=True):
        values = mean.T.to_numpy()  # sets x cell types
        limit = float(np.nanmax(np.abs(values)))
        image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(mean.shape[0]), mean.index, rotation=90, fontsize=7)
        ax.set_yticks(range(mean.shape[1]), [f"{c} markers" for c in mean.columns], fontsize=7)
        ax.set_title(f"{name}: mean chromVAR z of marker peak sets")
        fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(OUT / f"biology_{dataset}_marker_activity.png", dpi=110)
    plt.close(fig)


def links_and_agreement(name, mdata, genes, labels, args) -> list[str]:
    everything = scdcca.tl.peak_gene_links(
        mdata, genes, window=args.link_window, layer="dcca_denoised", fdr=None, seed=args.seed
    )
    found = {}
    for kind, layer in (("raw", None), ("denoised", "dcca_denoised")):
        start = time.perf_counter()
        found[kind] = scdcca.tl.peak_gene_links(
            mdata, genes, window=args.link_window, layer=layer, seed=args.seed
        )
        print(
            f"{name}: {len(found[kind])} {kind} links ({time.perf_counter() - start:.1f} s)",
            flush=True,
        )
    agreement = scdcca.tl.crossomics_agreement(mdata, everything, labels=labels)
    union = pd.concat([found["raw"], found["denoised"]])[["gene", "peak"]].drop_duplicates()
    linked = (
        scdcca.tl.crossomics_agreement(mdata, union, labels=labels, seeds=(0,))
        if len(union)
        else None
    )
    rows = []
    for kind in ("raw", "denoised"):
        a = agreement.loc[kind]
        linked_r = "" if linked is None else f"{linked.loc[kind, 'mean_r']:.3f}"
        rows.append(
            f"| {name} | {kind} | {a.kappa:.3f} | {a.mean_r:.4f} | {a.median_r:.4f} "
            f"| {a.frac_positive:.3f} | {int(a.n_pairs)} | {len(found[kind])} | {linked_r} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--n-markers", type=int, default=100)
    parser.add_argument("--marker-window", type=int, default=50_000)
    parser.add_argument("--link-window", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    OUT.mkdir(exist_ok=True)
    report = [
        f"Command: `python benchmarks/biology.py --threads {args.threads}` "
        f"(markers {args.n_markers}, marker window {args.marker_window} bp, link window "
        f"{args.link_window} bp, seed {args.seed})",
        "",
    ]
    agreement_rows = [
        "| dataset | data | kappa | mean r (all pairs) | median r | r > 0 | pairs "
        "| links (FDR 0.05) | mean r (links found) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.datasets:
        gene_file, labels, _, markers = DATASETS[name]
        mdata, elapsed = trained(name, args.cache, args.seed)
        print(f"{name}: DCCA trained in {elapsed:.0f} s", flush=True)
        genes = DATA / gene_file
        if markers:
            rows, means = marker_activity(mdata, genes, labels, args)
            heatmaps(means, name)
            report += [f"{name} marker peak sets (chromVAR z, mean per label):", ""]
            report += [*rows, ""]
        agreement_rows += links_and_agreement(name, mdata, genes, labels, args)
    report += ["Agreement of RNA and ATAC, raw vs denoised:", "", *agreement_rows]
    text = "\n".join(report)
    print(text)
    (OUT / "biology.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
