"""The benchmarked methods, each as one function run inside a worker process.

Every method receives a :class:`Job` (data, task, seed, cell split, training caps) and returns
a dict of NumPy arrays that the worker saves to ``.npz``:

- task ``embedding`` (all cells train): ``latent:<name>`` arrays (``joint`` and, where the
  method has them, ``rna``/``epi``), or for ``wnn`` its neighbour graph as
  ``graph_indices``/``graph_distances`` (self first, then neighbours by WNN distance);
- task ``heldout`` (``job.train`` cells train): ``latent:<name>`` for all cells, the cells
  outside ``job.train`` embedded without retraining;
- task ``cross_modal`` (one fold): ``pred_epi`` (held-out cells x regions, predicted from RNA)
  and ``pred_rna`` (held-out cells x genes, predicted from the epigenome).

Only the training itself runs inside ``job.clock`` (the ``fit_s`` of the results).
Deep models use their own defaults, with early stopping, unless ``job.max_epochs`` is set, and
Lightning's ``max_time`` as a wall-time cap only when ``job.max_time_min`` is set. Every method
puts ``stopped_by`` into ``job.info`` (see ``_provenance.py``): Lightning fits through the
callback of :meth:`Job.trainer_kwargs`, MOFA+ from its training statistics; the worker fills in
``deterministic`` for the methods without training iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anndata as ad
import mudata
import numpy as np
from scipy import sparse

from _data import EPI, LABEL, RNA, epi_lsi, lognorm, rna_pca, scale_block
from _job import Arrays, Job
from _peers import run_multigrate, run_scglue


def _seed_everything(seed: int) -> None:
    import scvi

    scvi.settings.seed = seed


def _adata(job: Job, modality: str, cells: np.ndarray | None = None) -> ad.AnnData:
    x = job.counts(modality)
    obs = job.mdata.obs
    if cells is not None:
        x, obs = x[cells], obs.iloc[cells]
    out = ad.AnnData(x, obs=obs.copy(), var=job.mdata[modality].var[[]].copy())
    return out


def _mdata(job: Job, cells: np.ndarray | None = None) -> mudata.MuData:
    out = mudata.MuData({RNA: _adata(job, RNA, cells), EPI: _adata(job, EPI, cells)})
    out.obs = _adata(job, RNA, cells).obs.copy()
    return out


# ------------------------------------------------------------------ DCCA
def _dcca(job: Job, schedule: str, **train_kwargs) -> Arrays:
    import scdcca

    _seed_everything(job.seed)
    cells = job.train if job.task != "embedding" else None
    fit = _mdata(job, cells)
    scdcca.DCCA.setup_mudata(
        fit,
        modalities={"rna_layer": RNA, "epi_layer": EPI},
        binarize_epi=job.binarize,
        batch_key=job.batch_key,
    )
    model = scdcca.DCCA(fit)
    kwargs = job.trainer_kwargs()
    if job.max_epochs is not None:
        kwargs["max_epochs_per_phase"] = job.max_epochs
    with job.clock.fit():
        model.train(schedule=schedule, **train_kwargs, **kwargs)
    job.record_stops()  # one Lightning fit per phase (schedule and decoder refinement)
    history = getattr(model, "history_", {}) or {}
    if "epochs" in history:
        job.info["epochs"] = len(history["epochs"])
    if len(history.get("phases", ())) and len(history["phases"]) != len(job.stops):
        job.info["stopped_by"] = "unknown"  # a phase ended without a recorded reason
    job.info["region_weight"] = round(float(model.module.epi_region_weight), 2)
    job.info["joint_epi_weight"] = round(model.joint_epi_weight, 2)
    if job.task == "cross_modal":
        held = _mdata(job, job.test)
        rna_only = held[RNA].copy()
        epi_only = held[EPI].copy()
        return {
            "pred_epi": np.asarray(
                model.predict_modality(rna_only, source="rna", return_numpy=True)
            ),
            "pred_rna": np.asarray(
                model.predict_modality(epi_only, source="epi", return_numpy=True)
            ),
        }
    everything = _mdata(job) if job.task == "heldout" else None
    return {
        f"latent:{m}": model.get_latent_representation(everything, modality=m)
        for m in ("rna", "epi", "joint")
    }


def run_scdcca(job: Job) -> Arrays:
    """DCCA with the package defaults (``schedule="alternating"``)."""
    return _dcca(job, "alternating")


def run_scdcca_cycle(job: Job) -> Arrays:
    """DCCA with the paper's schedule (``schedule="cycle"``)."""
    return _dcca(job, "cycle")


def run_scdcca_no_transfer(job: Job) -> Arrays:
    """DCCA's defaults without attention transfer: ``beta1=0`` and ``beta2=0``.

    Both VAEs train on their own data only (the same alternating schedule, phases, decoder
    refinement and joint latent), so the comparison with ``scdcca`` isolates what the
    teacher/student pull of the latents adds.
    """
    return _dcca(job, "alternating", beta1=0.0, beta2=0.0)


# ------------------------------------------------------------------ classical baselines
def run_pca_lsi(job: Job) -> Arrays:
    """PCA (50) of log-normalised RNA and muon LSI (50, first dropped) of the epigenome.

    Each block is centred and scaled to unit total variance, then the two are concatenated.
    For ``heldout`` both are fitted on the training cells and the others projected.
    """
    train = job.train if job.task == "heldout" else np.arange(job.mdata.n_obs)
    with job.clock.fit():
        z_rna = rna_pca(job.counts(RNA), train)
        z_epi = epi_lsi(job.counts(EPI), train)
        joint = np.hstack([scale_block(z_rna, train), scale_block(z_epi, train)])
    return {"latent:rna": z_rna, "latent:epi": z_epi, "latent:joint": joint}


def run_pca_rna(job: Job) -> Arrays:
    """PCA (50) of log-normalised RNA alone: the RNA half of :func:`run_pca_lsi`.

    Its one latent is stored as ``joint`` (the method's embedding). For ``heldout`` the PCA is
    fitted on the training cells and the others projected.
    """
    train = job.train if job.task == "heldout" else np.arange(job.mdata.n_obs)
    with job.clock.fit():
        z_rna = rna_pca(job.counts(RNA), train)
    return {"latent:joint": z_rna}


def run_wnn(job: Job) -> Arrays:
    """Weighted nearest neighbours (muon ``mu.pp.neighbors``) on RNA PCA + epigenome LSI.

    Per modality: the PCA/LSI of :func:`run_pca_lsi`, L2-normalised (``mu.pp.l2norm``, as
    muon advises to be close to Seurat), 20-neighbour graphs (Seurat's ``k.nn``); the WNN
    graph keeps 90 neighbours per cell, the largest neighbourhood scib-metrics uses (cLISI,
    iLISI), so that its 15- and 50-neighbour subsets feed the other graph metrics.
    """
    import muon as mu
    import scanpy as sc

    everything = np.arange(job.mdata.n_obs)
    with job.clock.fit():
        rna = ad.AnnData(sparse.csr_matrix(job.mdata[RNA].shape), obs=job.mdata.obs[[]].copy())
        rna.obsm["X_pca"] = rna_pca(job.counts(RNA), everything)
        epi = ad.AnnData(sparse.csr_matrix(job.mdata[EPI].shape), obs=job.mdata.obs[[]].copy())
        epi.obsm["X_lsi"] = epi_lsi(job.counts(EPI), everything)
        both = mudata.MuData({RNA: rna, EPI: epi})
        mu.pp.l2norm(both[RNA], rep="X_pca")
        mu.pp.l2norm(both[EPI], rep="X_lsi")
        for key, rep in ((RNA, "X_pca"), (EPI, "X_lsi")):
            sc.pp.neighbors(both[key], use_rep=rep, transformer=_exact_knn(20))
        n_neighbors = min(90, job.mdata.n_obs - 1)
        mu.pp.neighbors(both, n_neighbors=n_neighbors, key_added="wnn", random_state=job.seed)
    distances = sparse.csr_matrix(both.obsp["wnn_distances"])
    return dict(zip(("graph_indices", "graph_distances"), graph_to_knn(distances), strict=True))


def _exact_knn(n_neighbors: int):
    """Exact neighbours for ``sc.pp.neighbors`` as a SciPy ``csr_matrix``.

    scanpy 1.11's own pynndescent path (above 4,096 cells) hands scanpy a ``csr_array``
    that scanpy then cannot read with SciPy >= 1.15 (``getnnz``); exact search is cheap on
    50 dimensions. sklearn counts each cell as its own neighbour, so ``n_neighbors - 1``.
    """
    from sklearn.neighbors import KNeighborsTransformer

    class CsrKNeighborsTransformer(KNeighborsTransformer):
        def fit_transform(self, X, y=None):
            return sparse.csr_matrix(super().fit_transform(X))

        def transform(self, X):
            return sparse.csr_matrix(super().transform(X))

    return CsrKNeighborsTransformer(n_neighbors=n_neighbors - 1, mode="distance")


def graph_to_knn(distances: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Sparse distance graph to fixed-width neighbour arrays, each cell itself first.

    Width: the smallest number of stored neighbours of any cell, plus one (self).
    """
    distances = sparse.csr_matrix(distances)
    distances.setdiag(0)
    distances.eliminate_zeros()
    per_row = np.diff(distances.indptr)
    k = int(per_row.min())
    indices = np.empty((distances.shape[0], k + 1), dtype=np.int64)
    values = np.zeros((distances.shape[0], k + 1), dtype=np.float32)
    for cell in range(distances.shape[0]):
        start, end = distances.indptr[cell], distances.indptr[cell + 1]
        order = np.argsort(distances.data[start:end])[:k]
        indices[cell, 0] = cell
        indices[cell, 1:] = distances.indices[start:end][order]
        values[cell, 1:] = distances.data[start:end][order]
    return indices, values


def run_mofa(job: Job) -> Arrays:
    """MOFA+ (mofapy2 through ``muon.tl.mofa``), 10 factors (muon's default).

    Views: log-normalised RNA (the 2,000 most variable genes by scanpy's ``seurat``
    dispersion, or all genes if fewer) and muon TF-IDF of the epigenome (its 5,000 most
    often open regions), Gaussian likelihoods, ``scale_views=True`` (the two views differ in
    scale), ``convergence_mode="fast"``; iterations: mofapy2's 1,000 or ``--max-epochs``.
    """
    import muon as mu
    import scanpy as sc

    with job.clock.fit():
        rna = ad.AnnData(lognorm(job.counts(RNA)), obs=job.mdata.obs[[]].copy())
        rna.var_names = job.mdata[RNA].var_names
        if rna.n_vars > 2000:
            sc.pp.highly_variable_genes(rna, n_top_genes=2000)
            rna = rna[:, rna.var["highly_variable"].to_numpy()].copy()
        calls = job.counts(EPI)
        frequency = np.asarray((calls > 0).sum(0)).ravel()
        top = np.sort(np.argsort(-frequency, kind="stable")[: min(5000, calls.shape[1])])
        epi = ad.AnnData(calls[:, top].astype(np.float64), obs=job.mdata.obs[[]].copy())
        epi.var_names = job.mdata[EPI].var_names[top]
        mu.atac.pp.tfidf(epi, scale_factor=1e4)
        both = mudata.MuData({RNA: rna, EPI: epi})
        mu.tl.mofa(
            both,
            use_var=None,  # features were selected above (muon reads use_var from mdata.var)
            n_factors=10,
            scale_views=True,
            n_iterations=job.max_epochs or 1000,
            gpu_mode=False,
            seed=job.seed,
            outfile=str(job.workdir / "mofa.hdf5"),
            quiet=True,
            verbose=False,
        )
    _mofa_stop(job, job.workdir / "mofa.hdf5", job.max_epochs or 1000)
    return {"latent:joint": np.asarray(both.obsm["X_mofa"])}


def _mofa_stop(job: Job, path: Path, n_iterations: int) -> None:
    """``converged`` or ``max_epochs`` and the iterations run, from mofapy2's saved statistics.

    mofapy2 keeps ``n_iterations + 1`` ELBO slots (iteration 0 is the initialisation) and cuts
    them to the iterations run when its convergence criterion is met.
    """
    import h5py

    try:
        with h5py.File(path, "r") as stored:
            slots = len(stored["training_stats/elbo"])
    except (OSError, KeyError):
        job.info["stopped_by"] = "unknown"
        return
    if slots <= n_iterations:
        job.info |= {"stopped_by": "converged", "epochs": slots}
    else:
        job.info |= {"stopped_by": "max_epochs", "epochs": n_iterations - 1}


# ------------------------------------------------------------------ scvi-tools
def _scvi_train(model, job: Job, share: float = 1.0) -> None:
    """The model's own ``train`` defaults with ``early_stopping=True`` (its own patience).

    ``share``: the most of the job's time budget this fit may use (see :func:`budget_timer`).
    """
    kwargs = job.trainer_kwargs(share, resumable=True)
    if job.max_epochs is not None:
        kwargs["max_epochs"] = job.max_epochs
    with job.clock.fit():
        model.train(early_stopping=True, **kwargs)


def run_scvi_peakvi(job: Job) -> Arrays:
    """scVI on RNA counts and PeakVI on the epigenome, latents side by side.

    scVI: its defaults (``max_epochs`` heuristic ``min(400, 20000 / n_cells * 400)``) with
    early stopping switched on (scVI's ``early_stopping`` default is off); PeakVI: its
    defaults (500 epochs, early stopping with patience 50). Under a time budget scVI may use
    half of it and PeakVI what is left.
    """
    import scvi

    _seed_everything(job.seed)
    cells = job.train if job.task == "heldout" else None
    latents = {}
    epochs = {}
    for key, cls, share in ((RNA, scvi.model.SCVI, 0.5), (EPI, scvi.model.PEAKVI, 1.0)):
        fit = _adata(job, key, cells)
        cls.setup_anndata(fit, batch_key=job.batch_key)
        model = cls(fit)
        _scvi_train(model, job, share)
        epochs[key] = job.fit_epochs[-1]
        latents[key] = model.get_latent_representation(
            _adata(job, key) if job.task == "heldout" else None
        )
    job.info["epochs"] = f"scvi={epochs[RNA]};peakvi={epochs[EPI]}"
    job.info["stops"] = f"scvi={job.stops[0]};peakvi={job.stops[-1]}"
    job.record_stops()
    return {
        "latent:rna": latents[RNA],
        "latent:epi": latents[EPI],
        "latent:joint": np.hstack([latents[RNA], latents[EPI]]),
    }


def run_scvi_rna(job: Job) -> Arrays:
    """scVI on the RNA counts alone: as the scVI half of :func:`run_scvi_peakvi`.

    Its defaults (``max_epochs`` heuristic ``min(400, 20000 / n_cells * 400)``) with early
    stopping switched on (scVI's own patience, 45 epochs). Its one latent is stored as
    ``joint``; for ``heldout`` the cells outside the training set are embedded by the encoder.
    """
    import scvi

    _seed_everything(job.seed)
    cells = job.train if job.task == "heldout" else None
    fit = _adata(job, RNA, cells)
    scvi.model.SCVI.setup_anndata(fit, batch_key=job.batch_key)
    model = scvi.model.SCVI(fit)
    _scvi_train(model, job)
    job.info["epochs"] = job.fit_epochs[-1]
    job.record_stops()
    latent = model.get_latent_representation(_adata(job, RNA) if job.task == "heldout" else None)
    return {"latent:joint": latent}


def _multivi(job: Job, fit: mudata.MuData):
    import scvi

    scvi.model.MULTIVI.setup_mudata(
        fit, modalities={"rna_layer": RNA, "atac_layer": EPI}, batch_key=job.batch_key
    )
    model = scvi.model.MULTIVI(fit, n_genes=fit[RNA].n_vars, n_regions=fit[EPI].n_vars)
    _scvi_train(model, job)
    job.info["epochs"] = job.fit_epochs[-1]
    job.record_stops()
    return model


def run_multivi(job: Job) -> Arrays:
    """MULTIVI (scvi-tools) on the paired cells; defaults (500 epochs, early stopping).

    ``cross_modal``: trained on the fold's training cells only (paired), as DCCA and kNN
    are. Each held-out cell is then given with one modality set to zero, which MULTIVI reads
    as missing (its encoders use the rows with counts): ``get_normalized_accessibility`` of
    the RNA-only cells (``normalize_regions=True``: with MULTIVI's region factors, since the
    prediction is compared with measured calls) and ``get_normalized_expression`` of the
    epigenome-only cells.
    """
    _seed_everything(job.seed)
    if job.task == "cross_modal":
        return _multivi_cross_modal(job)
    cells = job.train if job.task == "heldout" else None
    model = _multivi(job, _mdata(job, cells))
    target = None
    if job.task == "heldout":
        target = _mdata(job)
        target.obs["_indices"] = np.arange(target.n_obs)  # MULTIVI's setup_mudata adds it
    names = {"joint": "joint", "rna": "expression", "epi": "accessibility"}
    return {
        f"latent:{ours}": np.asarray(model.get_latent_representation(target, modality=theirs))
        for ours, theirs in names.items()
    }


def _multivi_cross_modal(job: Job) -> Arrays:
    model = _multivi(job, _mdata(job, job.train))

    def held_out(missing: str) -> mudata.MuData:
        held = _mdata(job, job.test)
        held.mod[missing].X = sparse.csr_matrix(held[missing].shape, dtype=np.float32)
        held.obs["_indices"] = np.arange(held.n_obs)  # MULTIVI's setup_mudata adds it
        return held

    # region factors back in: the prediction is compared with measured calls, not bias-corrected
    to_epi = model.get_normalized_accessibility(
        held_out(EPI), normalize_regions=True, return_numpy=True
    )
    to_rna = model.get_normalized_expression(held_out(RNA), return_numpy=True)
    return {"pred_epi": np.asarray(to_epi), "pred_rna": np.asarray(to_rna)}


# ------------------------------------------------------------------ kNN (cross-modal only)
def knn_average(
    embedding: np.ndarray,
    target: sparse.spmatrix,
    train: np.ndarray,
    test: np.ndarray,
    k: int = 15,
) -> np.ndarray:
    """Mean target profile of each test cell's ``k`` nearest training cells."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=min(k, len(train))).fit(embedding[train])
    _, neighbours = index.kneighbors(embedding[test])
    k = neighbours.shape[1]
    rows = np.repeat(np.arange(len(test)), k)
    average = sparse.csr_matrix(
        (np.full(rows.size, 1.0 / k), (rows, neighbours.ravel())), shape=(len(test), len(train))
    )
    return np.asarray((average @ sparse.csr_matrix(target[train], dtype=np.float64)).todense())


def run_knn(job: Job) -> Arrays:
    """15 nearest training cells in the source modality's PCA/LSI space, targets averaged.

    RNA -> epigenome: neighbours in 50 PCs of log-normalised RNA, their 0/1 calls averaged.
    Epigenome -> RNA: neighbours in LSI of the epigenome, their RNA proportions averaged.
    Both spaces are fitted on the training cells of the fold.
    """
    rna, calls = job.counts(RNA), job.counts(EPI)
    with job.clock.fit():
        z_rna = rna_pca(rna, job.train)
        z_epi = epi_lsi(calls, job.train)
        fraction = sparse.diags(1 / np.maximum(rna.sum(1).A1, 1)) @ rna
        binary = sparse.csr_matrix(calls > 0, dtype=np.float32)
        to_epi = knn_average(z_rna, binary, job.train, job.test)
        to_rna = knn_average(z_epi, fraction, job.train, job.test)
    return {"pred_epi": to_epi, "pred_rna": to_rna}


def run_label_mean(job: Job) -> Arrays:
    """A reference that knows the labels: each held-out cell gets its label's training mean.

    RNA -> epigenome: the mean 0/1 calls of the training cells with the cell's label;
    epigenome -> RNA: their mean RNA proportions. It shows how much label-specific signal the
    held-out cells' measurements let any predictor recover.
    """
    rna, calls = job.counts(RNA), job.counts(EPI)
    labels = job.mdata.obs[LABEL].astype(str).to_numpy()
    with job.clock.fit():
        fraction = sparse.diags(1 / np.maximum(rna.sum(1).A1, 1)) @ rna
        binary = sparse.csr_matrix(calls > 0, dtype=np.float32)
        to_epi = np.empty((len(job.test), calls.shape[1]))
        to_rna = np.empty((len(job.test), rna.shape[1]))
        for label in np.unique(labels[job.test]):
            rows = labels[job.test] == label
            pool = job.train[labels[job.train] == label]
            to_epi[rows] = binary[pool].mean(0) if len(pool) else binary[job.train].mean(0)
            to_rna[rows] = fraction[pool].mean(0) if len(pool) else fraction[job.train].mean(0)
    return {"pred_epi": to_epi, "pred_rna": to_rna}


# ------------------------------------------------------------------ registry
METHODS: dict[str, tuple[Callable[[Job], Arrays], tuple[str, ...]]] = {
    "scdcca": (run_scdcca, ("embedding", "cross_modal", "heldout")),
    "scdcca_cycle": (run_scdcca_cycle, ("embedding", "cross_modal", "heldout")),
    "scdcca_no_transfer": (run_scdcca_no_transfer, ("embedding", "cross_modal", "heldout")),
    "pca_lsi": (run_pca_lsi, ("embedding", "heldout")),
    "pca_rna": (run_pca_rna, ("embedding", "heldout")),
    "wnn": (run_wnn, ("embedding",)),
    "mofa": (run_mofa, ("embedding",)),
    "scvi_peakvi": (run_scvi_peakvi, ("embedding", "heldout")),
    "scvi_rna": (run_scvi_rna, ("embedding", "heldout")),
    "multivi": (run_multivi, ("embedding", "cross_modal", "heldout")),
    "scglue": (run_scglue, ("embedding",)),
    "multigrate": (run_multigrate, ("embedding", "heldout")),
    "knn": (run_knn, ("cross_modal",)),
    "label_mean": (run_label_mean, ("cross_modal",)),
}
