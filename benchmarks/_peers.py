"""scGLUE and Multigrate: two peers that need packages beyond the project's own environment.

Both follow their authors' tutorials and defaults; ``fit_s`` covers each method's own
preprocessing (feature selection, normalisation, PCA/LSI, guidance graph) and its training, not
the final encoding of the cells.

scGLUE (``scglue`` 0.4.1, any Python 3) installs into the project's environment without
changing its pinned packages; its guidance graph needs the ``bedtools`` program::

    pip install scglue==0.4.1
    apt-get install bedtools        # or: conda install -c bioconda bedtools

Multigrate (``multigrate`` 1.0.1) needs scvi-tools >= 1.4.3, which the project's pins exclude,
and declares Python >= 3.12; it runs on Python 3.11 from a side virtual environment built
like this from the repository root (``--peer-python multigrate=$V/bin/python`` then points the
runner at it)::

    V=/work/venvs/stack; python3 -m venv $V && $V/bin/pip install torch==2.13.0
    $V/bin/pip install -e '.[test,bench]'
    $V/bin/pip install --no-deps --ignore-requires-python scvi-tools==1.5.1 multigrate==1.0.1
    $V/bin/pip install docrep ml-collections 'sparse>=0.14' xarray 'numba>=0.60' \\
        session-info2 requests
    $V/bin/pip check
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from _data import BATCH, EPI, RNA, lognorm
from _job import Arrays, Job

#: File names of the gene coordinate tables searched beside the data set.
GENE_TABLE_GLOB = "genes_*.tsv.gz"
#: ``chrom-start-end`` or ``chrom:start-end``: the chromosome is the shortest leading part.
_REGION = re.compile(r"^(?P<chrom>[^:]+?)[:-](?P<start>\d+)-(?P<end>\d+)$")


def _obs(job: Job) -> pd.DataFrame:
    """The cells' ``obs`` with only the batch column (when the job has one)."""
    columns = [BATCH] if job.has_batch else []
    return job.mdata.obs[columns].copy()


def _version(package: str) -> str:
    from importlib.metadata import version

    return f"{package} {version(package)}"


# ------------------------------------------------------------------ scGLUE
def gene_table(genes: pd.Index, path: str | None, search: str | None) -> Path:
    """The gene coordinate table to use.

    Parameters
    ----------
    genes
        The RNA modality's gene names.
    path
        A table given by the user (``--gene-table``); used as it is.
    search
        Folder searched for ``genes_*.tsv.gz`` when ``path`` is ``None`` (the data set's
        folder): the table whose ``gene`` column holds the most of ``genes`` wins.
    """
    if path:
        return Path(path)
    candidates = sorted(Path(search).glob(GENE_TABLE_GLOB)) if search else []
    if not candidates:
        raise FileNotFoundError(
            f"no {GENE_TABLE_GLOB} in {search}: give scglue's gene coordinates with --gene-table"
        )

    def matches(candidate: Path) -> int:
        names = pd.read_csv(candidate, sep="\t", usecols=["gene"])["gene"]
        return int(genes.isin(names).sum())

    return max(candidates, key=matches)


def gene_coordinates(genes: pd.Index, table: pd.DataFrame) -> pd.DataFrame:
    """BED coordinates (0-based start) and strand of ``genes``; NaN where the table lacks one.

    ``table`` has the columns ``gene, chrom, start, end, strand`` with 1-based starts (as a
    GTF). A name listed on several chromosomes keeps its last row after sorting by chromosome,
    as ``scglue.data.get_gene_annotation`` does with a GTF.
    """
    rows = table.sort_values("chrom").drop_duplicates("gene", keep="last").set_index("gene")
    found = rows.reindex(genes)
    return pd.DataFrame(
        {
            "chrom": found["chrom"].to_numpy(),
            "chromStart": found["start"].to_numpy() - 1,
            "chromEnd": found["end"].to_numpy(),
            "strand": found["strand"].to_numpy(),
        },
        index=genes,
    )


def region_coordinates(names: pd.Index, add_chr: bool) -> pd.DataFrame:
    """Coordinates parsed from region names ``chrom-start-end`` or ``chrom:start-end``.

    With ``add_chr`` a chromosome without the ``chr`` prefix gets it (hg19 ``1-9963-10665``
    becomes ``chr1``; ``MT`` becomes ``chrM``). Names that do not parse get NaN.
    """
    parsed = pd.Series(names, index=names).str.extract(_REGION)
    chrom = parsed["chrom"]
    if add_chr:
        bare = chrom.notna() & ~chrom.fillna("").str.startswith("chr")
        chrom = chrom.where(~bare, "chr" + chrom.fillna("").replace({"MT": "M"}))
    return pd.DataFrame(
        {
            "chrom": chrom.to_numpy(),
            "chromStart": pd.to_numeric(parsed["start"]).to_numpy(),
            "chromEnd": pd.to_numeric(parsed["end"]).to_numpy(),
        },
        index=names,
    )


@contextmanager
def _exact_neighbors() -> Iterator[None]:
    """``sc.pp.neighbors`` with exact search (``transformer="sklearn"``) inside the block.

    scGLUE's balancing weights call scanpy's neighbours (cosine metric); above 4,096 cells
    scanpy 1.11 switches to pynndescent, whose ``csr_array`` it then cannot read with
    SciPy >= 1.15 (``getnnz``). Exact search is what scanpy itself uses below that size.
    """
    import scanpy as sc

    original = sc.pp.neighbors

    def neighbors(adata, *args, **kwargs):
        kwargs.setdefault("transformer", "sklearn")
        return original(adata, *args, **kwargs)

    sc.pp.neighbors = neighbors
    try:
        yield
    finally:
        sc.pp.neighbors = original


def _sorted_graph(graph):
    """A copy of a networkx multigraph with nodes and edges in sorted order.

    scGLUE's guidance graph is built partly from Python sets, so its edge order (which the
    graph minibatches follow) would otherwise change with the interpreter's string hashing
    and make a seed's fit differ between runs.
    """
    import networkx as nx

    ordered = nx.MultiDiGraph()
    ordered.add_nodes_from(sorted(graph.nodes(data=True), key=lambda node: node[0]))
    edges = sorted(graph.edges(keys=True, data=True), key=lambda edge: edge[:3])
    ordered.add_edges_from(edges)
    return ordered


@contextmanager
def _glue_stops(job: Job) -> Iterator[None]:
    """Record why each scGLUE fit ended into ``job.stops`` (and apply ``--max-time``).

    scGLUE trains with pytorch-ignite; this hooks one more handler into each fit's engine
    when scGLUE attaches its own early stopping: ``early_stopping`` when that handler ended
    the run, ``diverged`` when ignite's ``TerminateOnNan`` did, ``max_epochs`` when all epochs
    ran, ``max_time`` when the job's budget (``job.max_time_min`` over both fits, timed by
    ``job.clock``) is spent (checked after every epoch, the run then ends like an early stop
    and restores scGLUE's best checkpoint). Epoch counts go to
    ``job.info["epochs"]`` (``pretrain=N;finetune=M``).
    """
    import torch
    from ignite.engine import Events
    from scglue.models import plugins

    original = plugins.EarlyStopping.attach
    epochs: list[int] = []

    def attach(self, net, trainer, train_engine, *args, **kwargs):
        original(self, net, trainer, train_engine, *args, **kwargs)
        ended = {"terminated": False, "max_time": False}

        def on_epoch(engine) -> None:
            if job.max_time_min and job.seconds_left() <= 0:
                ended["max_time"] = True
                engine.terminate()

        def on_terminate(engine) -> None:
            ended["terminated"] = True

        def on_completed(engine) -> None:
            output = engine.state.output or {}
            finite = all(bool(torch.isfinite(v).all()) for v in output.values())
            if ended["max_time"]:
                reason = "max_time"
            elif ended["terminated"]:
                reason = "early_stopping" if finite else "diverged"
            elif engine.state.epoch >= engine.state.max_epochs:
                reason = "max_epochs"
            else:
                reason = "unknown"
            job.stops.append(reason)
            epochs.append(int(engine.state.epoch))

        train_engine.add_event_handler(Events.EPOCH_COMPLETED, on_epoch)
        train_engine.add_event_handler(Events.TERMINATE, on_terminate)
        train_engine.add_event_handler(Events.COMPLETED, on_completed)

    plugins.EarlyStopping.attach = attach
    try:
        yield
    finally:
        plugins.EarlyStopping.attach = original
        job.info["epochs"] = ";".join(
            f"{name}={n}" for name, n in zip(("pretrain", "finetune"), epochs, strict=False)
        )


def run_scglue(job: Job) -> Arrays:
    """scGLUE (``scglue.models.fit_SCGLUE``) with its tutorial's preprocessing and defaults.

    Genes get coordinates from a gene table (``job.options["gene_table"]``, ``--gene-table``;
    by default the ``genes_*.tsv.gz`` beside the data set whose names match the most genes);
    genes without coordinates are left out, as are regions whose names do not parse as
    ``chrom-start-end`` / ``chrom:start-end`` (``chr`` is added to bare chromosome names when
    the gene table's have it). Then, as in scGLUE's tutorial: 2,000 highly variable genes
    (scanpy ``seurat_v3`` on the counts; all genes when there are fewer), normalised,
    log-transformed, scaled, 100 PCs as the RNA encoder's input (``use_rep="X_pca"``);
    ``scglue.data.lsi`` (100 components, ``n_iter=15``) of all regions as the epigenome
    encoder's input; the guidance graph ``rna_anchored_guidance_graph`` (gene body plus 2 kb
    promoter, overlapping regions linked) restricted to the highly variable features (regions
    linked to a highly variable gene). Both modalities are decoded with scGLUE's default
    ``prob_model="NB"`` (RNA from the counts, the epigenome from its values as given, 0/1
    calls for binary data). ``use_batch`` is the job's batch column when it has one.

    The cells are paired: both datasets are configured with ``use_obs_names=True`` and fitted
    with ``model=scglue.models.PairedSCGLUEModel`` (scGLUE's partially paired model, which adds
    cross-prediction and cosine terms for cells present in both). Training: ``fit_SCGLUE``'s
    defaults (pretraining, balancing weights, fine-tuning; epochs, patience and learning-rate
    schedule from its data-size heuristic, early stopping on the validation loss) with
    ``random_seed=job.seed``; ``--max-epochs`` caps both fits. ``stopped_by`` names what ended
    the fits (see :func:`_glue_stops`). A pretraining cut very short (e.g. ``--max-epochs 2``
    on a few hundred cells) can leave no pair of RNA and epigenome clusters similar enough for
    scGLUE's balancing weights, which then become 0/0, and the fine-tuning diverges: the job
    then fails with a ``RuntimeError`` that says so.

    Latents: ``rna`` and ``epi`` are ``encode_data`` (posterior means) of each modality;
    ``joint`` is their mean, the joint embedding the paired model uses for cells with both.
    """
    import scanpy as sc
    import scglue

    scglue.config.GRAPH_SHUFFLE_NUM_WORKERS = 0  # shuffle in this process (--threads)
    scglue.config.ARRAY_SHUFFLE_NUM_WORKERS = 0
    scglue.config.DATALOADER_NUM_WORKERS = 0
    if job.task != "embedding":
        raise ValueError("scglue runs the embedding task only")
    genes = job.mdata[RNA].var_names
    table_path = gene_table(genes, job.options.get("gene_table"), job.options.get("gene_dir"))
    table = pd.read_csv(table_path, sep="\t")
    gene_var = gene_coordinates(genes, table)
    add_chr = bool(table["chrom"].astype(str).str.startswith("chr").mean() > 0.5)
    region_var = region_coordinates(job.mdata[EPI].var_names, add_chr)
    keep_genes = gene_var["chrom"].notna().to_numpy()
    keep_regions = region_var["chrom"].notna().to_numpy()
    job.info |= {
        "package": _version("scglue"),
        "gene_table": table_path.name,
        "genes": f"{keep_genes.sum()}/{len(genes)}",
        "regions": f"{keep_regions.sum()}/{len(keep_regions)}",
    }
    gene_var = gene_var[keep_genes].astype({"chromStart": int, "chromEnd": int})
    region_var = region_var[keep_regions].astype({"chromStart": int, "chromEnd": int})
    rna = ad.AnnData(job.counts(RNA)[:, keep_genes], obs=_obs(job), var=gene_var)
    atac = ad.AnnData(job.counts(EPI)[:, keep_regions], obs=_obs(job), var=region_var)
    rna.layers["counts"] = rna.X.copy()
    batch = BATCH if job.has_batch else None
    with job.clock.fit():
        if rna.n_vars > 2000:
            sc.pp.highly_variable_genes(rna, n_top_genes=2000, flavor="seurat_v3")
        else:
            rna.var["highly_variable"] = True
        sc.pp.normalize_total(rna)
        sc.pp.log1p(rna)
        sc.pp.scale(rna)
        n_hvg = int(rna.var["highly_variable"].sum())
        sc.tl.pca(rna, n_comps=min(100, n_hvg - 1, rna.n_obs - 1), svd_solver="auto")
        scglue.data.lsi(atac, n_components=min(100, atac.n_vars - 1, atac.n_obs - 1), n_iter=15)
        guidance = scglue.genomics.rna_anchored_guidance_graph(rna, atac)
        scglue.models.configure_dataset(
            rna,
            "NB",
            use_highly_variable=True,
            use_layer="counts",
            use_rep="X_pca",
            use_batch=batch,
            use_obs_names=True,
        )
        scglue.models.configure_dataset(
            atac,
            "NB",
            use_highly_variable=True,
            use_rep="X_lsi",
            use_batch=batch,
            use_obs_names=True,
        )
        features = chain(
            rna.var.query("highly_variable").index, atac.var.query("highly_variable").index
        )
        guidance_hvf = _sorted_graph(guidance.subgraph(features))
        job.info["graph_edges"] = guidance_hvf.number_of_edges()
        fit_kws: dict = {"directory": str(job.workdir / "glue")}
        if job.max_epochs is not None:
            fit_kws["max_epochs"] = job.max_epochs
        with _glue_stops(job), _exact_neighbors():
            model = scglue.models.fit_SCGLUE(
                {"rna": rna, "atac": atac},
                guidance_hvf,
                model=scglue.models.PairedSCGLUEModel,
                init_kws={"random_seed": job.seed},
                fit_kws=fit_kws,
            )
    job.record_stops()
    try:
        z_rna = np.asarray(model.encode_data("rna", rna))
        z_epi = np.asarray(model.encode_data("atac", atac))
    except ValueError as error:  # torch rejects the non-finite means of a diverged net
        if "diverged" not in job.stops:
            raise
        raise RuntimeError(
            f"scGLUE diverged (non-finite loss, no finite checkpoint; fits: {job.stops})"
        ) from error
    return {"latent:rna": z_rna, "latent:epi": z_epi, "latent:joint": (z_rna + z_epi) / 2}


# ------------------------------------------------------------------ Multigrate
def _top_variable(
    logged: sparse.csr_matrix, cells: np.ndarray, n_top: int, batch: pd.Series | None
) -> np.ndarray:
    """Indices of the ``n_top`` most variable features of log data (scanpy's ``seurat``).

    Selected on ``cells`` (the training cells), per batch when ``batch`` is given (scanpy's
    ``batch_key``); all features when there are at most ``n_top``.
    """
    import scanpy as sc

    if logged.shape[1] <= n_top:
        return np.arange(logged.shape[1])
    fit = ad.AnnData(logged[cells])
    key = None
    if batch is not None:
        fit.obs["batch"] = batch.to_numpy()[cells]
        key = "batch"
    sc.pp.highly_variable_genes(fit, n_top_genes=n_top, batch_key=key)
    return np.flatnonzero(fit.var["highly_variable"].to_numpy())


def run_multigrate(job: Job) -> Arrays:
    """Multigrate (``multigrate.model.MultiVAE``) as in its paired-integration tutorials.

    Data as the tutorials prepare a multiome data set (docs ``paired_integration_cite-seq``:
    "Gene expression: negative binomial, ``"nb"``, no normalization; chromatin accessibility:
    normal, ``"mse"``, total-counts + log-normalization"; the NeurIPS 2021 multiome
    preprocessing): RNA raw counts of 2,000 highly variable genes, the epigenome
    ``normalize_total(target_sum=1e4)`` + ``log1p`` of its 20,000 most variable regions (all
    genes or regions when there are fewer), each selected with scanpy's ``seurat`` flavour on
    log-normalised values of the training cells, with the job's batch as ``batch_key``.
    ``mtg.data.organize_multimodal_anndatas([[rna], [epi]])``, ``MultiVAE.setup_anndata`` with
    ``rna_indices_end`` (size factors from the RNA counts) and the batch, when there is one,
    as ``categorical_covariate_keys`` (the tutorials' batch correction), ``MultiVAE(adata,
    losses=["nb", "mse"])`` with every other argument at its default (``z_dim=16``, product of
    experts), ``train()`` with its defaults: at most 200 epochs (``--max-epochs`` replaces it),
    early stopping on the validation reconstruction loss with patience 10, ``scvi.settings.seed
    = job.seed``.

    Latents (``get_model_output(save_unimodal_latent=True)``): ``joint`` is Multigrate's
    ``X_multigrate`` (a draw from the joint posterior, the output its tutorials use), ``rna``
    and ``epi`` its per-modality ``X_unimodal_0`` / ``X_unimodal_1``. ``heldout``: features
    are selected and the model trained on ``job.train``; all cells are then encoded.
    """
    import multigrate as mtg
    import scvi

    scvi.settings.seed = job.seed
    n_cells = job.mdata.n_obs
    cells = job.train if job.task == "heldout" else np.arange(n_cells)
    if job.task not in ("embedding", "heldout"):
        raise ValueError("multigrate runs the embedding and heldout tasks only")
    batch = job.mdata.obs[BATCH].astype(str) if job.has_batch else None
    job.info["package"] = f"{_version('multigrate')}, {_version('scvi-tools')}"
    counts = job.counts(RNA)
    calls = job.counts(EPI)
    with job.clock.fit():
        genes = _top_variable(lognorm(counts), cells, 2000, batch)
        epi_log = lognorm(calls).astype(np.float32)
        regions = _top_variable(epi_log, cells, 20000, batch)
        rna = ad.AnnData(counts[:, genes], obs=_obs(job))
        rna.var_names = job.mdata[RNA].var_names[genes]
        epi = ad.AnnData(epi_log[:, regions], obs=_obs(job))
        epi.var_names = job.mdata[EPI].var_names[regions]
        everything = mtg.data.organize_multimodal_anndatas(adatas=[[rna], [epi]])
        everything.obs["size_factors"] = np.asarray(counts[:, genes].sum(1)).ravel()
        fit = everything[cells].copy() if job.task == "heldout" else everything
        mtg.model.MultiVAE.setup_anndata(
            fit,
            rna_indices_end=len(genes),
            categorical_covariate_keys=[BATCH] if job.has_batch else None,
        )
        model = mtg.model.MultiVAE(fit, losses=["nb", "mse"])
        kwargs = job.trainer_kwargs(resumable=True)
        if job.max_epochs is not None:
            kwargs["max_epochs"] = job.max_epochs
        model.train(**kwargs)
    job.record_stops()
    job.info["epochs"] = job.fit_epochs[-1]
    job.info["features"] = f"genes={len(genes)};regions={len(regions)}"
    model.get_model_output(everything, save_unimodal_latent=True)
    return {
        "latent:rna": np.asarray(everything.obsm["X_unimodal_0"]),
        "latent:epi": np.asarray(everything.obsm["X_unimodal_1"]),
        "latent:joint": np.asarray(everything.obsm["X_multigrate"]),
    }
