"""KMeans ARI/NMI of DCCA latents on real paired datasets, for both schedules.

Usage::

    python benchmarks/accuracy.py [--datasets scicar_kidney pairedtag_h3k4me3 scicar_a549]
                                  [--schedules cycle alternating] [--seeds 0 1 2]
                                  [--threads 2]

Prints a markdown table (k = number of labels, KMeans mean over 3 KMeans seeds, then mean and
standard deviation over the training seeds ``--seeds``) and writes it to
``benchmarks/output/accuracy.md``. Baselines in the same table: PCA (50 components) of
log-normalised RNA, and the epigenome VAE trained without transfer (``n_cycles=0``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import mudata
import numpy as np
import scanpy as sc
import scvi
import torch

import scdcca

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = {
    "scicar_kidney": ("atac", "cell_type"),
    "pairedtag_h3k4me3": ("histone", "cell_type"),
    "scicar_a549": ("atac", "treatment_time"),
}


def pca_rna(mdata: mudata.MuData) -> np.ndarray:
    rna = mdata["rna"].copy()
    sc.pp.normalize_total(rna, target_sum=1e4)
    sc.pp.log1p(rna)
    sc.pp.pca(rna, n_comps=50, random_state=0)
    return rna.obsm["X_pca"]


def run(name: str, schedule: str, seed: int, n_cycles: int = 1) -> tuple[dict, float]:
    epi, _ = DATASETS[name]
    scvi.settings.seed = seed
    mdata = mudata.read_h5mu(DATA / f"{name}.h5mu")
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": epi})
    model = scdcca.DCCA(mdata)
    start = time.perf_counter()
    model.train(schedule=schedule, n_cycles=n_cycles, enable_progress_bar=False)
    elapsed = time.perf_counter() - start
    return {m: model.get_latent_representation(modality=m) for m in ("rna", "epi", "joint")}, (
        elapsed
    )


def _row(name: str, label: str, latent: str, per_seed: list, seconds: float) -> str:
    """Markdown row: mean ± sd over training seeds of ARI and NMI, each seed's ARI."""
    ari = np.array([score.ari for score in per_seed])
    nmi = np.array([score.nmi for score in per_seed])
    each = " / ".join(f"{value:.3f}" for value in ari)
    return (
        f"| {name} | {label} | {latent} | {ari.mean():.3f} ± {ari.std():.3f} "
        f"| {nmi.mean():.3f} ± {nmi.std():.3f} | {each} | {seconds:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--schedules", nargs="+", default=["cycle", "alternating"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    rows = [
        "| dataset | method | latent | ARI | NMI | ARI per seed | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in args.datasets:
        labels = mudata.read_h5mu(DATA / f"{name}.h5mu").obs[DATASETS[name][1]]
        baseline = scdcca.tl.clustering_scores(
            pca_rna(mudata.read_h5mu(DATA / f"{name}.h5mu")), labels
        )
        rows.append(f"| {name} | PCA of RNA | rna | {baseline.ari:.3f} | {baseline.nmi:.3f} | | |")
        runs = [(f"DCCA {s}", s, 1) for s in args.schedules] + [("no transfer", "cycle", 0)]
        for label, schedule, n_cycles in runs:
            scores: dict[str, list] = {}
            times = []
            for seed in args.seeds:
                latents, elapsed = run(name, schedule, seed, n_cycles)
                times.append(elapsed)
                for key, z in latents.items():
                    if n_cycles == 0 and key != "epi":
                        continue
                    scores.setdefault(key, []).append(scdcca.tl.clustering_scores(z, labels))
            for key, per_seed in scores.items():
                rows.append(_row(name, label, key, per_seed, float(np.mean(times))))
                print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    out = Path(__file__).parent / "output"
    out.mkdir(exist_ok=True)
    (out / "accuracy.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
