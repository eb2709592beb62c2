"""Training throughput and memory from 10k to 1M cells, on data resampled from real cells.

Usage::

    python benchmarks/scale.py [--cells 10000 100000 1000000] [--regions 100000]
                               [--epochs 2] [--batch-size 128] [--threads 2]
                               [--accelerator cpu] [--data-dir ../shared/data]

For each size a child process builds the MuData (``make_scaled``: cells drawn with
replacement from sci-CAR kidney; the 10,000 peaks widened to ``--regions`` by drawing each
new peak's column from a real peak, so every cell's calls are real calls and accessibility
stays as sparse as in the data), trains DCCA's alternating schedule (both VAEs every
minibatch, no validation pass) for ``--epochs`` epochs, and reports the median epoch time,
cells/s and the child's peak RSS (``ru_maxrss``, data included; on a GPU also the peak GPU
memory allocated by torch). Writes ``benchmarks/output/scale_b<batch size>.md`` (``_gpu``
appended for ``--accelerator gpu``) and appends one row per size to ``--csv``
(``benchmarks/results/scale.csv``, with the code version and the machine)."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import anndata as ad
import mudata
import numpy as np
import scvi
import torch
from scipy import sparse

import scdcca
from _provenance import append_rows, code_version, machine
from _timing import EpochTimer, gpu_peak_gib

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def make_scaled(
    n_cells: int, n_regions: int, seed: int = 0, data_dir: Path = DATA
) -> mudata.MuData:
    """Real sci-CAR kidney cells resampled to ``n_cells``, peaks resampled to ``n_regions``."""
    source = mudata.read_h5mu(data_dir / "scicar_kidney.h5mu")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.integers(0, source.n_obs, n_cells))
    atac = sparse.csr_matrix(source["atac"].X, dtype=np.float32)
    columns = rng.integers(0, atac.shape[1], n_regions)
    widened = atac[:, columns].tocsr()  # every new peak copies a real peak's calls
    rna = sparse.csr_matrix(source["rna"].X, dtype=np.float32)[rows]
    cells = [f"cell{i}" for i in range(n_cells)]
    rna_adata = ad.AnnData(
        rna, obs={"obs_names": cells}, var={"var_names": source["rna"].var_names}
    )
    atac_adata = ad.AnnData(
        widened[rows],
        obs={"obs_names": cells},
        var={"var_names": [f"peak{j}" for j in range(n_regions)]},
    )
    return mudata.MuData({"rna": rna_adata, "atac": atac_adata})


def run_one(args: argparse.Namespace) -> dict:
    n_cells, n_regions, batch_size = args.cells[0], args.regions, args.batch_size
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    scvi.settings.seed = 0
    start = time.perf_counter()
    mdata = make_scaled(n_cells, n_regions, data_dir=args.data_dir)
    build = time.perf_counter() - start
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": "atac"})
    model = scdcca.DCCA(mdata)
    timer = EpochTimer()
    model.train(
        accelerator=args.accelerator,
        devices=1,
        max_epochs_per_phase=args.epochs,
        patience=10**6,
        refine_epi_decoder=False,  # time the schedule's epochs only
        batch_size=batch_size,
        train_size=1.0,
        callbacks=[timer],
        check_val_every_n_epoch=10**6,
        enable_progress_bar=False,
    )
    seconds = timer.median()
    return {
        "cells": n_cells,
        "regions": n_regions,
        "batch_size": batch_size,
        "build_s": build,
        "epoch_s": seconds,
        "epochs_s": timer.seconds,
        "cells_per_s": n_cells / seconds,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_gpu_gib": gpu_peak_gib(args.accelerator),
        "nnz_atac_per_cell": mdata["atac"].X.nnz / n_cells,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--regions", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument(
        "--csv",
        type=Path,
        default=Path(__file__).parent / "results" / "scale.csv",
        help="CSV the rows are appended to (one per size; machine and code version included)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_one(args)
        print("RESULT " + json.dumps(result), flush=True)
        return
    lines = [
        f"alternating schedule, batch {args.batch_size}, {args.threads} threads, "
        f"{args.epochs} epochs, no validation, {args.accelerator}",
        "",
        "| cells | regions | ATAC nnz/cell | s/epoch | cells/s | peak RSS GiB | peak GPU GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for n_cells in args.cells:
        command = [
            sys.executable, __file__, "--child", "--cells", str(n_cells),
            "--regions", str(args.regions), "--epochs", str(args.epochs),
            "--batch-size", str(args.batch_size), "--threads", str(args.threads),
            "--accelerator", args.accelerator, "--data-dir", str(args.data_dir),
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=False)
        found = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
        if not found:
            print(output.stderr[-3000:])
            lines.append(f"| {n_cells:,} | {args.regions:,} | failed (exit {output.returncode}) |")
            continue
        r = json.loads(found[0][len("RESULT ") :])
        print(r, flush=True)
        context = {"date": time.strftime("%Y-%m-%d"), "version": code_version()}
        context |= machine(args.accelerator) | {"threads": args.threads, "epochs": args.epochs}
        row = {k: v for k, v in r.items() if k != "epochs_s"}
        append_rows(args.csv, [{**context, "accelerator": args.accelerator, **row}])
        lines.append(
            f"| {n_cells:,} | {args.regions:,} | {r['nnz_atac_per_cell']:.0f} | "
            f"{r['epoch_s']:.1f} | {r['cells_per_s']:,.0f} | {r['peak_rss_gib']:.2f} | "
            + ("" if r["peak_gpu_gib"] is None else f"{r['peak_gpu_gib']:.2f}")
            + " |"
        )
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).parent / "output"
    out.mkdir(exist_ok=True)
    suffix = "" if args.accelerator == "cpu" else f"_{args.accelerator}"
    (out / f"scale_b{args.batch_size}{suffix}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
