"""Per-epoch time and peak memory of scdcca and scvi-tools MULTIVI, side by side, one process.

Usage::

    python benchmarks/speed.py [--dataset scicar_kidney] [--epochs 6] [--rounds 3]
                               [--batch-size 128] [--threads 2] [--skip-multivi]
                               [--rna-likelihood zinb] [--head-precision auto]
                               [--accelerator cpu] [--data-dir ../shared/data]

Both models train on the same real MuData with the same batch size and number of epochs,
without validation passes (so an epoch is the same amount of data for both). scdcca runs the
alternating schedule, where every minibatch updates both VAEs: one scdcca epoch trains
RNA and epigenome once, as one MULTIVI epoch does. The two alternate for ``--rounds`` rounds
(a fresh model each time), so a slow spell of the machine hits both. Reported per tool: the
median over rounds of each fit's median epoch time after its first epoch, cells/s, peak RSS
of the process during the tool's first fit, and the fraction of the compute floor (matrix
FLOPs of one epoch over this machine's measured GEMM rate in the dtype of scdcca's
decoder heads: bfloat16 where ``--head-precision`` picks it, else float32); the ratio is
the median of the rounds' ratios, with their range. Writes a markdown table to
``benchmarks/output/speed_<dataset>.md`` (``_nb`` appended for ``--rna-likelihood nb``,
``_float32`` for ``--head-precision float32``, ``_gpu`` for ``--accelerator gpu``) and appends
one row per tool to ``--csv`` (``benchmarks/results/speed.csv``) with the date, the code
version, the CPU model and instruction set (``isa``) or GPU name, and the settings. On a GPU
the floor is measured there and the table adds each tool's peak GPU memory (allocated by
torch) during its first fit.
"""

from __future__ import annotations

import argparse
import gc
import time
import warnings
from pathlib import Path

import mudata
import numpy as np
import scvi
import torch

import scdcca
from _provenance import append_rows, code_version, machine
from _timing import (
    EpochTimer,
    PeakRSS,
    dcca_flops_per_cell,
    gpu_peak_gib,
    matmul_gflops,
    reset_gpu_peak,
)
from scdcca.module._precision import HEAD_PRECISIONS, head_dtype

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EPIGENOME = {"scicar_kidney": "atac", "pairedtag_h3k4me3": "histone", "scicar_a549": "atac"}
NO_VALIDATION = {"check_val_every_n_epoch": 10**6, "enable_progress_bar": False}


def time_dcca(
    mdata: mudata.MuData,
    epi: str,
    epochs: int,
    batch_size: int,
    accelerator: str = "cpu",
    **model_kwargs,
) -> dict:
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": epi})
    model = scdcca.DCCA(mdata, **model_kwargs)
    timer = EpochTimer()
    reset_gpu_peak(accelerator)
    with PeakRSS() as memory:
        model.train(
            accelerator=accelerator,
            devices=1,
            max_epochs_per_phase=epochs,
            patience=10**6,
            refine_epi_decoder=False,  # time the schedule's epochs only
            batch_size=batch_size,
            callbacks=[timer],
            **NO_VALIDATION,
        )
    return {"timer": timer, "rss": memory.gib, "gpu": gpu_peak_gib(accelerator)}


def time_multivi(
    mdata: mudata.MuData, epi: str, epochs: int, batch_size: int, accelerator: str = "cpu"
) -> dict:
    scvi.model.MULTIVI.setup_mudata(mdata, modalities={"rna_layer": "rna", "atac_layer": epi})
    model = scvi.model.MULTIVI(mdata, n_genes=mdata["rna"].n_vars, n_regions=mdata[epi].n_vars)
    timer = EpochTimer()
    reset_gpu_peak(accelerator)
    with PeakRSS() as memory:
        model.train(
            accelerator=accelerator,
            devices=1,
            max_epochs=epochs,
            batch_size=batch_size,
            early_stopping=False,
            callbacks=[timer],
            **NO_VALIDATION,
        )
    return {"timer": timer, "rss": memory.gib, "gpu": gpu_peak_gib(accelerator)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="scicar_kidney", choices=list(EPIGENOME))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-multivi", action="store_true")
    parser.add_argument("--rna-likelihood", default="zinb", choices=["zinb", "nb"])
    parser.add_argument("--head-precision", default="auto", choices=HEAD_PRECISIONS)
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument(
        "--csv",
        type=Path,
        default=Path(__file__).parent / "results" / "speed.csv",
        help="CSV the rows are appended to (one per tool; machine and code version included)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    scvi.settings.seed = 0
    epi = EPIGENOME[args.dataset]
    path = args.data_dir / f"{args.dataset}.h5mu"
    device = "cuda" if args.accelerator == "gpu" else "cpu"

    names = [f"scdcca (alternating, {args.rna_likelihood}, heads {args.head_precision})"]
    if not args.skip_multivi:
        names.append("scvi-tools MULTIVI")
    fits: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(args.rounds):
        fits[names[0]].append(
            time_dcca(
                mudata.read_h5mu(path),
                epi,
                args.epochs,
                args.batch_size,
                args.accelerator,
                rna_likelihood=args.rna_likelihood,
                head_precision=args.head_precision,
            )
        )
        gc.collect()
        if not args.skip_multivi:
            fits[names[1]].append(
                time_multivi(
                    mudata.read_h5mu(path), epi, args.epochs, args.batch_size, args.accelerator
                )
            )
            gc.collect()

    mdata = mudata.read_h5mu(path)
    n_train = round(0.9 * mdata.n_obs)
    rna, atac = mdata["rna"].X, mdata[epi].X
    flops = n_train * dcca_flops_per_cell(
        rna.shape[1],
        atac.shape[1],
        rna.nnz / rna.shape[0],
        atac.nnz / atac.shape[0],
        rna_heads=2 if args.rna_likelihood == "zinb" else 1,
    )
    # the heads multiply in bfloat16 where head_precision picks it
    dtype = head_dtype(args.head_precision, torch.device(device), training=True) or torch.float32
    gflops = matmul_gflops(atac.shape[1], batch=args.batch_size, dtype=dtype, device=device)
    floor = flops / (gflops * 1e9)
    dtype_name = str(dtype).removeprefix("torch.")

    lines = [
        f"dataset {args.dataset}: {mdata.n_obs} cells ({n_train} training), "
        f"{rna.shape[1]} genes, {atac.shape[1]} regions; batch {args.batch_size}, "
        f"{args.rounds} rounds of {args.epochs} epochs, {args.threads} threads, "
        f"{args.accelerator}"
        + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else "")
        + "; "
        f"{dtype_name} GEMM {gflops:.0f} GFLOP/s, "
        f"scdcca floor {floor:.2f} s/epoch ({flops / 1e9:.1f} GFLOP)",
        "",
        "| method | s/epoch | cells/s | peak RSS GiB | peak GPU GiB | fraction of floor |",
        "|---|---|---|---|---|---|",
    ]
    seconds = {name: [run["timer"].median() for run in runs] for name, runs in fits.items()}
    for name, runs in fits.items():
        median = float(np.median(seconds[name]))
        fraction = f"{floor / median:.2f}" if name.startswith("scdcca") else ""
        peak = runs[0]["rss"]  # later rounds inherit memory of the earlier fits
        gpu = "" if device == "cpu" else f"{runs[0]['gpu']:.2f}"
        lines.append(
            f"| {name} | {median:.2f} | {n_train / median:,.0f} | {peak:.2f} | {gpu} "
            f"| {fraction} |"
        )
    if len(fits) == 2:
        ratios = np.divide(seconds[names[1]], seconds[names[0]])
        lines += [
            "",
            f"MULTIVI / scdcca epoch time: {np.median(ratios):.1f}x (rounds: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + ")",
        ]
    text = "\n".join(lines)
    print(text)
    context = {
        "date": time.strftime("%Y-%m-%d"),
        "version": code_version(),
        **machine(args.accelerator),
        "dataset": args.dataset,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "accelerator": args.accelerator,
        "head_dtype": dtype_name,
        "gemm_gflops": round(gflops, 1),
        "floor_s": floor,
    }
    rows = []
    for name, runs in fits.items():
        median = float(np.median(seconds[name]))
        rows.append(
            {
                **context,
                "method": name,
                "s_per_epoch": median,
                "rounds_s": " ".join(f"{s:.3f}" for s in seconds[name]),
                "cells_per_s": n_train / median,
                "peak_rss_gib": runs[0]["rss"],
                "peak_gpu_gib": runs[0].get("gpu"),
                "floor_fraction": floor / median if name.startswith("scdcca") else None,
            }
        )
    append_rows(args.csv, rows)
    out = Path(__file__).parent / "output"
    out.mkdir(exist_ok=True)
    suffix = "" if args.rna_likelihood == "zinb" else f"_{args.rna_likelihood}"
    suffix += "" if args.head_precision == "auto" else f"_{args.head_precision}"
    suffix += "" if args.accelerator == "cpu" else f"_{args.accelerator}"
    (out / f"speed_{args.dataset}{suffix}.md").write_text(text + "\n")
    for name, runs in fits.items():
        for run in runs:
            print(f"{name} epoch seconds: {[round(s, 2) for s in run['timer'].seconds]}")


if __name__ == "__main__":
    main()
