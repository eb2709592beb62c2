"""The parent process of ``run.py``: data, one worker per fit, scoring, rows, figures."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from _data import BATCH, EPI, LABEL, RNA, Spec, folds, heldout_split, load_compact, rna_pca
from _methods import METHODS
from _metrics import (
    CrossModal,
    add_graph_aggregates,
    graph_scores,
    kmeans_scores,
    knn_accuracy,
    scib_scores,
)
from _provenance import code_version, combined
from _results import cost_figure, merge
from _worker import Outcome, launch


class Context:
    """Everything the tasks share: arguments, data, temporary folder."""

    def __init__(self, args: argparse.Namespace, mdata, tmp: Path) -> None:
        self.args = args
        self.mdata = mdata
        self.tmp = tmp
        self.name = args.data.stem
        self.labels = mdata.obs[LABEL].to_numpy().astype(str)
        self.batch = mdata.obs[BATCH].to_numpy().astype(str) if BATCH in mdata.obs else None
        self.n_cells = mdata.n_obs
        self.version = code_version()

    def base_row(self, task: str, method: str, latent: str, seed: int) -> dict:
        """Keys and settings of one CSV row."""
        a = self.args
        return {
            "dataset": self.name,
            "task": task,
            "method": method,
            "latent": latent,
            "seed": seed,
            "status": "ok",
            "version": self.version,
            "stopped_by": "",
            "n_cells": self.n_cells,
            "max_epochs": a.max_epochs if a.max_epochs is not None else "default",
            "max_time_min": a.max_time or "none",
            "threads": a.threads,
            "folds": a.folds if task == "cross_modal" else "",
            "label": a.label,
            "batch": a.batch or "",
        }

    def fit(self, method: str, task: str, seed: int, train, test, tag: str = "") -> Outcome:
        """Run ``method`` in a worker process."""
        a = self.args
        job = {
            "method": method,
            "task": task,
            "seed": seed,
            "has_batch": self.batch is not None,
            "binarize": a.binarize,
            "max_epochs": a.max_epochs,
            "max_time_min": a.max_time or None,
            "options": self.options(method),
        }
        name = f"{task}_{method}_seed{seed}{tag}"
        if a.checkpoints is not None:
            a.checkpoints.mkdir(parents=True, exist_ok=True)
            job["checkpoint"] = str(a.checkpoints / f"{self.name}_{name}_{_setting(a, train)}")
        python = a.peer_python.get(method)
        return launch(self.tmp, name, job, train, test, a.threads, a.worker_timeout, python)

    def options(self, method: str) -> dict:
        """Method-specific settings for the worker (see ``_methods.Job``)."""
        if method == "scglue":
            table = self.args.gene_table
            return {
                "gene_table": str(table.resolve()) if table else None,
                "gene_dir": str(self.args.data.resolve().parent),
            }
        return {}


def _setting(args: argparse.Namespace, cells) -> str:
    """The training caps and a digest of ``cells``, as kept files name a fit's setting."""
    digest = hashlib.sha1(np.asarray(cells, dtype=np.int64).tobytes()).hexdigest()[:10]
    return f"e{args.max_epochs or 'default'}_t{args.max_time or 'none'}_{digest}"


def _cost(row: dict, outcome: Outcome) -> dict:
    row["fit_s"] = outcome.fit_s
    row["peak_rss_mib"] = outcome.peak_rss_mib
    row["epochs"] = outcome.info.get("epochs", "")
    row["stopped_by"] = outcome.info.get("stopped_by", "")
    if outcome.error:
        row["status"] = f"failed: {outcome.error}"
    return row


# ------------------------------------------------------------------ tasks
def _scored(ctx: Context, method: str) -> bool:
    """Whether the ``rna``/``epi`` latents of ``method`` are scored too (``--latents``)."""
    return ctx.args.latents == "all" or method.startswith("scdcca")


def task_embedding(ctx: Context, methods: list[str], seed: int) -> list[dict]:
    """All cells train; scib-metrics, KMeans and graph scores."""
    everything = np.arange(ctx.n_cells)
    latents: dict[str, np.ndarray] = {}
    rows: dict[str, dict] = {}
    failed = []
    for method in methods:
        outcome = ctx.fit(method, "embedding", seed, everything, everything[:0])
        if outcome.error:
            failed.append(_cost(ctx.base_row("embedding", method, "joint", seed), outcome))
            continue
        if "graph_indices" in outcome.arrays:
            row = _cost(ctx.base_row("embedding", method, "graph", seed), outcome)
            start = time.perf_counter()
            row |= graph_scores(
                outcome.arrays["graph_indices"],
                outcome.arrays["graph_distances"],
                ctx.labels,
                ctx.batch,
            )
            print(f"    graph metrics {time.perf_counter() - start:.0f} s", flush=True)
            rows[f"{method}[graph]"] = add_graph_aggregates(row)
            continue
        for key, z in outcome.arrays.items():
            latent = key.split(":", 1)[1]
            if latent != "joint" and not _scored(ctx, method):
                continue
            name = method if latent == "joint" else f"{method}[{latent}]"
            latents[name] = z
            row = _cost(ctx.base_row("embedding", method, latent, seed), outcome)
            rows[name] = row | kmeans_scores(z, ctx.labels)
    if latents:
        start = time.perf_counter()
        unintegrated = rna_pca(ctx.mdata[RNA].X, everything)
        save = None
        if not ctx.args.no_figures:
            save = ctx.args.out / f"{ctx.name}_seed{seed}_scib"
        scores = scib_scores(
            latents, ctx.labels, ctx.batch, unintegrated, save, n_jobs=ctx.args.threads
        )
        for name, values in scores.items():
            rows[name] |= values
            add_graph_aggregates(rows[name])
        print(
            f"    scib-metrics on {len(latents)} embeddings: {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    return list(rows.values()) + failed


def _fold_fit(ctx: Context, method: str, seed: int, fold: int, train, test) -> Outcome:
    """One cross-modal fold's fit, read from ``--fold-cache`` when an earlier run kept it.

    With ``--fold-cache DIR`` every successful fold's predictions and cost are kept in DIR
    under the data set, method, seed, fold count, fold, training caps and the held-out cells,
    so a run cut short (``--worker-timeout``, a stopped machine) resumes at its first missing
    fold; a fold that failed is fitted again.
    """
    a = ctx.args
    if a.fold_cache is None:
        return ctx.fit(method, "cross_modal", seed, train, test, f"_fold{fold}")
    name = f"{ctx.name}_{method}_seed{seed}_{a.folds}folds{fold}_{_setting(a, test)}"
    path = a.fold_cache / f"{name}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as kept:
            meta = json.loads(str(kept["meta"]))
            arrays = {k: kept[k] for k in kept.files if k != "meta"}
        print(f"    {method} fold {fold}: kept from {path}", flush=True)
        return Outcome(arrays, meta["fit_s"], meta["peak_rss_mib"], meta["info"])
    outcome = ctx.fit(method, "cross_modal", seed, train, test, f"_fold{fold}")
    if not outcome.error:
        a.fold_cache.mkdir(parents=True, exist_ok=True)
        meta = {"fit_s": outcome.fit_s, "peak_rss_mib": outcome.peak_rss_mib}
        meta["info"] = outcome.info
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, meta=json.dumps(meta), **outcome.arrays)
        partial.replace(path)
    return outcome


def task_cross_modal(ctx: Context, methods: list[str], seed: int) -> list[dict]:
    """``--folds``-fold prediction of each modality from the other."""
    splits = folds(ctx.n_cells, ctx.args.folds, seed)
    rna = sparse.csr_matrix(ctx.mdata[RNA].X, dtype=np.float32)
    calls = sparse.csr_matrix(ctx.mdata[EPI].X > 0, dtype=np.float32)
    rows = []
    for method in ["knn", "label_mean", *[m for m in methods if m not in ("knn", "label_mean")]]:
        scores = CrossModal()
        fit_s, peak, info, stops, error = 0.0, 0.0, [], [], None
        for fold, (train, test) in enumerate(splits):
            outcome = _fold_fit(ctx, method, seed, fold, train, test)
            if outcome.error:
                error = outcome
                break
            fit_s += outcome.fit_s
            peak = max(peak, outcome.peak_rss_mib)
            info.append(str(outcome.info.get("epochs", "")))
            stops.append(outcome.info.get("stopped_by", ""))
            true_rna = rna[test].toarray()
            true_rna /= np.maximum(true_rna.sum(1, keepdims=True), 1)
            scores.add(
                outcome.arrays["pred_epi"],
                calls[test].toarray(),
                outcome.arrays["pred_rna"],
                true_rna,
                ctx.labels[test],
            )
        row = ctx.base_row("cross_modal", method, "prediction", seed)
        if error is not None:
            rows.append(_cost(row, error))
            continue
        row |= {"fit_s": fit_s, "peak_rss_mib": peak, "epochs": "/".join(info).strip("/")}
        row["stopped_by"] = combined(stops)
        row |= scores.result()
        rows.append(row)
        print(
            f"    {method}: "
            + ", ".join(
                f"{k}={v:.3f}" for k, v in row.items() if k.startswith(("rna2epi", "epi2rna"))
            ),
            flush=True,
        )
    return rows


def task_heldout(ctx: Context, methods: list[str], seed: int) -> list[dict]:
    """Train on 80 % of the cells; kNN label accuracy of held-out vs training cells."""
    train, test = heldout_split(ctx.labels, seed)
    _, counts = np.unique(ctx.labels[test], return_counts=True)
    majority = float(counts.max() / len(test))
    rows = []
    for method in methods:
        outcome = ctx.fit(method, "heldout", seed, train, test)
        if outcome.error:
            rows.append(_cost(ctx.base_row("heldout", method, "joint", seed), outcome))
            continue
        for key, z in outcome.arrays.items():
            latent = key.split(":", 1)[1]
            row = _cost(ctx.base_row("heldout", method, latent, seed), outcome)
            row["knn_acc_heldout"] = knn_accuracy(z, ctx.labels, train, test)
            row["knn_acc_train"] = knn_accuracy(z, ctx.labels, train, train)
            row["majority_heldout"] = majority
            rows.append(row)
            print(
                f"    {method}[{latent}]: held-out {row['knn_acc_heldout']:.3f}, "
                f"train {row['knn_acc_train']:.3f}",
                flush=True,
            )
    return rows


TASKS = {"embedding": task_embedding, "cross_modal": task_cross_modal, "heldout": task_heldout}


# ------------------------------------------------------------------ run
def run(args: argparse.Namespace) -> None:
    """Run the selected tasks x methods x seeds and write the CSV and figures."""
    import mudata

    warnings.filterwarnings("ignore")
    mudata.set_options(pull_on_update=False)
    spec = Spec(args.data, args.rna, args.epi, args.label, args.batch, args.binarize)
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench_{spec.name}_", dir=args.tmp))
    csv = args.out / f"{spec.name}.csv"
    started = time.perf_counter()
    try:
        mdata = load_compact(spec, args.max_cells, args.subsample_seed)
        mdata.write(tmp / "data.h5mu")
        ctx = Context(args, mdata, tmp)
        print(
            f"{spec.name}: {mdata.n_obs} cells, {mdata[RNA].n_vars} genes, "
            f"{mdata[EPI].n_vars} regions, {len(np.unique(ctx.labels))} labels"
            + (f", {len(np.unique(ctx.batch))} batches" if ctx.batch is not None else "")
            + f"; temporary files in {tmp}",
            flush=True,
        )
        max_time = f"{args.max_time:g} min per method, all its fits" if args.max_time else "none"
        timeout = f"{args.worker_timeout:.0f} s" if args.worker_timeout else "none"
        print(
            f"caps: epochs {args.max_epochs or 'each model default'}, training time "
            f"{max_time}, worker timeout {timeout}, {args.threads} thread(s) per process; "
            f"code {ctx.version}",
            flush=True,
        )
        for method, python in args.peer_python.items():
            print(f"{method} runs with {python}", flush=True)
        for seed in args.seeds:
            for task in args.tasks:
                methods = [m for m in args.methods if task in METHODS[m][1]]
                skipped = [m for m in args.methods if task not in METHODS[m][1]]
                if skipped:
                    print(f"  {task}: skipping {skipped} (cannot do this task)", flush=True)
                if not methods:
                    continue
                print(f"[{time.strftime('%H:%M:%S')}] seed {seed}, {task}: {methods}", flush=True)
                rows = TASKS[task](ctx, methods, seed)
                table = merge(csv, rows)
                print(f"  wrote {len(rows)} rows to {csv}", flush=True)
                if task == "embedding" and not args.no_figures:
                    cost_figure(
                        table[table["task"] == "embedding"], args.out / f"{spec.name}_cost.png"
                    )
    finally:
        if args.keep_tmp:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min; {csv}", flush=True)
    table = pd.read_csv(csv)
    print(f"{len(table)} rows in {csv}")
