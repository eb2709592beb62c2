"""Benchmark runner: DCCA against multi-omics peers on any paired ``.h5mu``.

Usage::

    python benchmarks/run.py --data ../shared/data/snare_cortex.h5mu --rna rna --epi atac \\
        --label subclass --batch sample --binarize \\
        --methods scdcca,scdcca_cycle,pca_lsi,wnn,mofa,scvi_peakvi,multivi \\
        --seeds 0 1 2 --tasks embedding,cross_modal,heldout --out results/
    python benchmarks/run.py --report --out results/     # markdown tables of all CSVs

Quick development run: add ``--max-cells 600 --max-epochs 5 --threads 1 --seeds 0``.

Each method fit runs in its own Python process (``run.py --worker``, see ``_worker.py``),
one at a time, with ``--threads`` torch/BLAS/OpenMP threads (default 1; the parent's scoring
uses the same number); ``fit_s`` is the wall time of the training only and ``peak_rss_mib``
the worker's peak resident memory (``ru_maxrss``: imports and data included).

Methods (``_methods.py``): ``scdcca`` (package defaults, alternating schedule),
``scdcca_cycle`` (``schedule="cycle"``), ``scdcca_no_transfer`` (the defaults with both
attention-transfer weights at 0, ``beta1=0, beta2=0``), ``pca_lsi`` (PCA of log-normalised RNA
+ muon LSI of the epigenome, each block scaled to unit total variance, concatenated),
``pca_rna`` (the PCA of log-normalised RNA alone, pca_lsi's RNA half), ``wnn`` (muon's
weighted nearest neighbours on the same PCA and LSI: a graph, scored with graph metrics only),
``mofa`` (MOFA+ through ``muon.tl.mofa``), ``scvi_peakvi`` (scVI on RNA and PeakVI on the
epigenome, latents side by side), ``scvi_rna`` (scVI on RNA alone), ``multivi`` (scvi-tools'
MULTIVI); the RNA-only methods (``pca_rna``, ``scvi_rna``) store their one latent as
``joint``; for ``cross_modal`` also
``knn`` (always run there as the baseline) and ``label_mean`` (a reference that knows the
labels: each held-out cell predicted as its label's mean over the training cells). A method
is skipped for tasks it cannot do.

Two more peers run only when named in ``--methods`` (they need packages beyond the project's
own; ``_peers.py`` has their exact recipes and settings): ``scglue`` (scGLUE 0.4.1,
``fit_SCGLUE`` with ``PairedSCGLUEModel`` and ``use_obs_names=True``, its tutorial's defaults;
embedding only; ``pip install scglue==0.4.1`` plus the ``bedtools`` program) builds its guidance
graph from a gene coordinate table (columns ``gene, chrom, tss, strand, start, end``,
1-based): ``--gene-table``, by default the ``genes_*.tsv.gz`` beside ``--data`` whose gene
names match the most genes; region names ``chrom-start-end`` or ``chrom:start-end`` give the
regions' coordinates (``chr`` is added where the table has it and the names lack it). Latents
``rna``/``epi`` (each modality's encoding) and ``joint`` (their mean). The ``fit_s`` of both
includes their own preprocessing (feature selection, normalisation, PCA/LSI, guidance graph).
``multigrate`` (Multigrate 1.0.1 ``MultiVAE``, ``losses=["nb", "mse"]`` on RNA counts and
log-normalised epigenome, its defaults; embedding and heldout; latents ``joint`` =
``X_multigrate``, ``rna``/``epi`` = its per-modality latents) needs scvi-tools >= 1.4.3 and
so a side environment; ``--peer-python multigrate=PYTHON`` starts its workers with that
interpreter (any method can be sent to another interpreter this way; it must import
``benchmarks/_methods.py``'s dependencies). Building the side environment from the
repository root::

    V=/work/venvs/stack; python3 -m venv $V && $V/bin/pip install torch==2.13.0
    $V/bin/pip install -e '.[test,bench]'
    $V/bin/pip install --no-deps --ignore-requires-python scvi-tools==1.5.1 multigrate==1.0.1
    $V/bin/pip install docrep ml-collections 'sparse>=0.14' xarray 'numba>=0.60' \\
        session-info2 requests
    python benchmarks/run.py --methods multigrate --peer-python multigrate=$V/bin/python ...

Training caps: deep models train until their own early stopping stops them (DCCA: at most 200
epochs per phase with its plateau stopping; scVI: ``min(400, 20000/n_cells*400)`` epochs, early
stopping switched on, patience 45; PeakVI and MULTIVI: 500 epochs, early stopping, patience 50;
scGLUE: its data-size heuristic for epochs and patience, twice (pretraining and fine-tuning);
Multigrate: 200 epochs, early stopping, patience 10). ``--max-epochs N`` replaces the epoch
limits (DCCA: per phase; MOFA: iterations; scGLUE: both fits), and ``--max-time M`` (minutes;
default 0: no wall-clock cap) is one training budget per method fit, shared by all of its fits
(DCCA's phases, scVI then PeakVI, scGLUE's two fits): each fit stops at the first step (scGLUE:
epoch) past what the earlier ones left (scVI: half the budget, PeakVI the rest), which puts
every deep method on the same wall clock.
A worker still running after ``--worker-timeout`` seconds
(default: none without ``--max-time``, else ``3 * max-time + 10 min``) is killed and recorded
as failed. Every row says what ended its training in ``stopped_by`` (``early_stopping``,
``max_epochs``, ``max_time``, ``diverged``, ``converged`` for MOFA+, ``deterministic`` for the
methods without training iterations; ``_provenance.py``), so a cap that was hit never passes
silently; a method with several fits (scVI + PeakVI, DCCA's phases, folds) names the cap any of
them hit.

Tasks:

- ``embedding``: all cells train. scib-metrics' ``Benchmarker`` on all embeddings of one seed
  together (bio conservation: isolated labels, Leiden NMI/ARI, KMeans NMI/ARI, silhouette
  label, cLISI; with ``--batch`` batch correction: BRAS, iLISI, kBET, graph connectivity, PCR
  comparison), raw values (no min-max scaling) and its aggregates ``bio_conservation``,
  ``batch_correction``, ``total``; plus plain KMeans ``kmeans_ari``/``kmeans_nmi`` (k = number
  of labels, mean over 3 KMeans seeds). Latents: ``joint`` of every method; ``rna``/``epi`` of
  scdcca, scdcca_cycle and, unless ``--latents joint``, of pca_lsi (PCA / LSI alone),
  scvi_peakvi (scVI / PeakVI), multivi (its expression / accessibility latents), scglue and
  multigrate (their per-modality latents); each
  scored embedding costs about a minute of scib-metrics on 10,000 cells with one thread.
  ``wnn`` (latent ``graph``) has only the graph metrics (Leiden NMI/ARI and graph
  connectivity on its 15 nearest WNN neighbours, kBET on 50, cLISI/iLISI on 90), no KMeans,
  silhouette, isolated labels, PCR or BRAS, hence no ``bio_conservation`` or
  ``batch_correction``; ``bio_conservation_graph`` (mean of Leiden NMI, Leiden ARI, cLISI)
  and ``batch_correction_graph`` (mean of iLISI, kBET, graph connectivity) are given for
  every method and compare graphs with embeddings. Figures in
  ``--out``: ``<dataset>_seed<k>_scib/scib_results.svg`` (scib-metrics' results table of
  that run) and ``<dataset>_cost.png`` (fit time and peak RSS per method); ``--report``
  redraws ``<dataset>_cost.png`` and ``<dataset>_scib.svg`` (the results table of every
  stored row, mean over seeds) from the CSVs.
- ``cross_modal``: ``--folds`` folds over cells (shuffled with the seed); methods scdcca
  (and scdcca_cycle, scdcca_no_transfer if selected), multivi, knn and label_mean; latent
  ``prediction``; scores in
  ``_metrics.CrossModal`` (RNA -> epigenome AUROC, AUPRC, per-cell and per-region Pearson,
  pseudo-bulk per label within each fold, plain and label-specific; epigenome -> RNA
  per-cell, per-gene and pseudo-bulk Pearson). ``fit_s`` is summed over folds,
  ``peak_rss_mib`` the largest fold. ``--fold-cache DIR`` keeps each finished fold, so a
  run cut short resumes at its first missing fold.
- ``heldout``: train on 80 % of the cells (split stratified by label, fixed per seed); 15-NN
  label accuracy of the held-out cells with the training cells' embeddings and labels
  (``knn_acc_heldout``) and leave-one-out on the training cells (``knn_acc_train``), per
  latent; methods that can embed new cells: scdcca, scdcca_cycle, scdcca_no_transfer,
  pca_lsi and pca_rna (projection with the training fit), scvi_peakvi, scvi_rna, multivi,
  multigrate (its encoder).
  ``majority_heldout``: share of the held-out cells' commonest label.

Output: ``<out>/<dataset>.csv`` (dataset = file stem), long format, one row per ``dataset,
task, method, latent, seed`` with columns ``status`` (``ok`` or the error), ``version`` (the
scdcca version and short commit of the code that ran, ``-dirty`` with uncommitted changes in
``src/`` or ``benchmarks/``, e.g. ``0.1.0+g2e3331e``), ``stopped_by``, ``n_cells``,
``fit_s``, ``peak_rss_mib``, ``epochs``, the task's scores (``kmeans_ari``, ``kmeans_nmi``,
``bio_conservation``, ``batch_correction``, ... / ``rna2epi_auroc``, ... /
``knn_acc_heldout``, ...) and the settings ``max_epochs``, ``max_time_min`` (``none``: no
cap), ``threads``,
``folds``, ``label``, ``batch``. Rows of a ``dataset, task, method, seed`` that is run again
are replaced; the CSV is rewritten after every seed and task. ``--report`` prints the
markdown tables (mean ± sd over seeds, ``_results.report``) of all CSVs in ``--out``. Use a
separate ``--out`` for subsampled runs: rows are keyed by the data set name, not the cells.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ALL_METHODS = [
    "scdcca",
    "scdcca_cycle",
    "scdcca_no_transfer",
    "pca_lsi",
    "pca_rna",
    "wnn",
    "mofa",
    "scvi_peakvi",
    "scvi_rna",
    "multivi",
]
#: Run only when named: they need packages beyond the project's environment (``_peers.py``).
PEER_METHODS = ["scglue", "multigrate"]
ALL_TASKS = ["embedding", "cross_modal", "heldout"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="paired .h5mu file")
    parser.add_argument("--rna", default="rna", help="RNA modality (raw counts)")
    parser.add_argument("--epi", default="atac", help="epigenome modality")
    parser.add_argument("--label", help="obs column with the cell labels")
    parser.add_argument("--batch", default=None, help="obs column with the batch (optional)")
    parser.add_argument("--binarize", action="store_true", help="epigenome counts -> 0/1")
    parser.add_argument("--methods", default=",".join(ALL_METHODS), help="comma-separated")
    parser.add_argument("--tasks", default="embedding", help=f"comma-separated of {ALL_TASKS}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "--latents",
        choices=["all", "joint"],
        default="all",
        help="embedding task: score every method's rna/epi latents too (all) or only "
        "scdcca's (joint)",
    )
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--folds", type=int, default=5, help="cross_modal folds")
    parser.add_argument(
        "--fold-cache",
        type=Path,
        default=None,
        help="cross_modal: keep each finished fold's predictions here and reuse them, so a "
        "run cut short resumes at its first missing fold",
    )
    parser.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="Lightning fits of the peers (scvi-tools models, Multigrate) keep their training "
        "state here after every epoch and resume from it when run again, so a run cut short "
        "continues where it stopped; a finished fit's state is removed",
    )
    parser.add_argument("--max-cells", type=int, default=None, help="subsample (seeded)")
    parser.add_argument("--subsample-seed", type=int, default=0)
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="epoch cap (default: each model's own)"
    )
    parser.add_argument(
        "--max-time",
        type=float,
        default=0.0,
        help="training budget in minutes per method fit, shared by all its fits "
        "(default 0: no wall-clock cap)",
    )
    parser.add_argument(
        "--worker-timeout",
        type=float,
        default=None,
        help="seconds (default: none without --max-time, else 3 * max-time + 10 min)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads")
    parser.add_argument(
        "--peer-python",
        action="append",
        default=[],
        metavar="METHOD=PYTHON",
        help="start METHOD's workers with the interpreter PYTHON (repeatable), e.g. "
        "multigrate=/work/venvs/stack/bin/python",
    )
    parser.add_argument(
        "--gene-table",
        type=Path,
        default=None,
        help="scglue: gene coordinates (gene, chrom, tss, strand, start, end; 1-based TSV); "
        "default: the genes_*.tsv.gz beside --data matching the most genes",
    )
    parser.add_argument("--tmp", type=Path, default=None, help="folder for worker files")
    parser.add_argument("--keep-tmp", action="store_true")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--report", action="store_true", help="print tables of --out's CSVs")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.report or args.worker:
        return args
    if args.data is None or args.label is None:
        parser.error("--data and --label are required (or --report)")
    args.methods = [m for m in args.methods.split(",") if m]
    args.tasks = [t for t in args.tasks.split(",") if t]
    known = [*ALL_METHODS, *PEER_METHODS]
    unknown = set(args.methods) - {*known, "knn", "label_mean"}
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {known}")
    peers = {}
    for item in args.peer_python:
        method, _, python = item.partition("=")
        if method not in {*known, "knn", "label_mean"} or not python:
            parser.error(f"--peer-python {item!r}: expected METHOD=PYTHON with a known method")
        if not os.access(python, os.X_OK):
            parser.error(f"--peer-python {item!r}: {python} is not an executable file")
        peers[method] = python
    args.peer_python = peers
    if args.gene_table is not None and not args.gene_table.is_file():
        parser.error(f"--gene-table {args.gene_table}: no such file")
    if set(args.tasks) - set(ALL_TASKS):
        parser.error(f"unknown tasks {sorted(set(args.tasks) - set(ALL_TASKS))}")
    if args.max_time < 0:
        parser.error("--max-time must be >= 0 (0: no wall-clock cap)")
    if args.worker_timeout is None and args.max_time > 0:
        args.worker_timeout = 3 * 60 * args.max_time + 600
    if args.worker_timeout is not None and args.worker_timeout <= 0:
        args.worker_timeout = None
    return args


def main(argv: list[str] | None = None) -> None:
    """Entry point: worker, report or benchmark run."""
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.worker:
        from _worker import work

        work(args.worker)
        return
    if args.report:
        from _results import report

        print(report(args.out))
        return
    from _worker import thread_environment

    os.environ.update(thread_environment(args.threads))
    from _pipeline import run

    run(args)


if __name__ == "__main__":
    main()
