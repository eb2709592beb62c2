"""``scdcca.DCCA``: the scvi-tools model class users work with."""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.utilities import rank_zero_info
from mudata import MuData
from scipy import sparse
from scvi.data import fields
from scvi.data._constants import _SCVI_UUID_KEY
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner

from scdcca import __version__
from scdcca._constants import BATCH_KEY, EPI_KEY, MODALITIES, OBSERVED_KEYS, RNA_KEY

from . import _arguments as arguments
from . import _generation as generation
from . import _joint as joint
from . import _results as results
from . import _saving as saving
from . import _validation as validate
from ._access import BatchChoice, sparse_above
from ._callbacks import BestWeights, EpochHistory
from ._components import EpiLikelihood, RNALikelihood
from ._data import SparseDataSplitter, sparse_minibatches_supported
from ._differential import DifferentialMixin
from ._distributed import is_ddp, is_rank_zero
from ._export import ExportMixin
from ._interrupt import is_interruption, restore_sigint
from ._manager import DCCAManager
from ._module import DCCAModule
from ._pairing import OBSERVED_COLUMNS, is_paired, padded_twin, share_registration
from ._phases import only_students_learn, phase_plan_kwargs, phase_record
from ._precision import HeadPrecision, check_head_precision
from ._prediction import PredictionMixin
from ._quiet import quiet_third_party
from ._schedule import Phase, ScheduleName, build_schedule
from ._training_plan import MONITOR, MONITOR_TRAIN, DCCATrainingPlan

logger = logging.getLogger(__name__)

Modality = Literal["rna", "epi"]


class DCCA(PredictionMixin, DifferentialMixin, ExportMixin, BaseModelClass):
    """Deep Cross-omics Cycle Attention (Zuo, Dai & Chen, Bioinformatics 2021).

    One VAE per modality, each with its own ``n_latent``-dimensional latent: RNA with a
    zero-inflated negative-binomial (or NB) decoder and the epigenome (ATAC, histone marks,
    methylation) with a Bernoulli (or Gaussian) decoder. Training alternates teacher and student: a
    student's loss adds ``beta * ||z_teacher - z_student||^2`` with the teacher frozen.

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    n_latent
        Size of each modality's latent space (the joint latent has twice as many columns).
    n_hidden
        Width of hidden layers.
    n_layers
        Hidden layers in each encoder and decoder.
    dropout_rate
        Dropout after each hidden layer.
    rna_likelihood
        ``"zinb"`` (default) or ``"nb"`` for raw counts; ``"gaussian"`` for RNA published only
        as normalised (e.g. log-scale) expression, modelled as it is. ``"zinb"`` adds a
        zero-inflation output per gene; ``"nb"`` trains faster (timings in
        ``benchmarks/README.md``).
    epi_likelihood
        ``"bernoulli"`` for binary calls, ``"gaussian"`` for continuous rates.
    rna_input_dropout
        Fraction of the RNA encoder's (log-normalised) input entries set to zero while
        training, the rest scaled up; 0 turns it off.
    head_precision
        Precision of the decoder output heads' matrix products while training, which hold
        most of a step's arithmetic: ``"bfloat16"`` multiplies bfloat16 copies of their
        inputs and weights and returns float32 (mixed precision; weights, likelihoods and
        optimiser stay float32), ``"float32"`` keeps full precision, and ``"auto"`` (default)
        uses bfloat16 on CPUs with native bfloat16 arithmetic (AVX512-BF16 or AMX), float32
        elsewhere. Validation, getters and generation always run in float32.

    Examples
    --------
    >>> mdata = scdcca.datasets.scicar_kidney()
    >>> scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": "atac"})
    >>> model = scdcca.DCCA(mdata)
    >>> model.train()
    >>> model.write_results(mdata)
    """

    _module_cls = DCCAModule
    _training_plan_cls = DCCATrainingPlan
    _data_splitter_cls = SparseDataSplitter
    _train_runner_cls = TrainRunner

    def __init__(
        self,
        mdata: MuData,
        n_latent: int = 20,
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        rna_likelihood: RNALikelihood = "zinb",
        epi_likelihood: EpiLikelihood = "bernoulli",
        rna_input_dropout: float = 0.3,
        head_precision: HeadPrecision = "auto",
    ):
        arguments.check_architecture(n_latent, n_hidden, n_layers, dropout_rate, rna_input_dropout)
        check_head_precision(head_precision)
        registered = self._registered_data(mdata)
        super().__init__(registered)
        # the user's MuData when it has unpaired cells (the model trains on its padded twin);
        # not a saved attribute: a save holds the data only with ``save_anndata=True``
        self._unpaired_source = None if registered is mdata else mdata
        #: scdcca release that built the model (kept through save and load).
        self.scdcca_version_ = __version__
        args = self.adata_manager.registry["setup_args"]
        self.modalities_ = dict(args["modalities"])
        rna = self.adata_manager.get_from_registry(RNA_KEY)
        epi = self.adata_manager.get_from_registry(EPI_KEY)
        scans = validate.registered_scans(self.adata_manager)
        epi_cells = self._observed_cells("epi")
        depths = scans["epi"].cell_nonzero  # non-zero calls per cell (Bernoulli calls are 0/1)
        depths = depths if epi_cells is None else depths[epi_cells]
        self.module = self._module_cls(
            n_genes=rna.shape[1],
            n_regions=epi.shape[1],
            n_batch=self.summary_stats.n_batch,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            rna_likelihood=rna_likelihood,
            epi_likelihood=epi_likelihood,
            log_mean_epi_depth=float(np.log1p(depths.mean() if len(depths) else 0.0)),
            rna_input_dropout=rna_input_dropout,
            head_precision=head_precision,
        )  # checks the likelihood names
        validate.check_model_input(self.adata_manager, scans, rna_likelihood, epi_likelihood)
        self._model_summary_string = (
            f"DCCA: n_latent={n_latent}, n_hidden={n_hidden}, n_layers={n_layers}, "
            f"rna={rna_likelihood} ({rna.shape[1]} genes), "
            f"epi={epi_likelihood} ({epi.shape[1]} regions)"
        )
        self.schedule_: list[dict] = []
        self.init_params_ = self._get_init_params(locals())

    @classmethod
    def _registered_data(cls, mdata: MuData) -> MuData:
        """The MuData registered for ``mdata``: itself, or the padded twin of unpaired cells."""
        if not isinstance(mdata, MuData):
            raise TypeError(
                f"DCCA takes a MuData set up with `scdcca.DCCA.setup_mudata`, got "
                f"{type(mdata).__name__}."
            )
        manager = cls._setup_adata_manager_store.get(mdata.uns.get(_SCVI_UUID_KEY))
        if manager is None:
            raise ValueError(
                "This MuData is not set up for DCCA: call `scdcca.DCCA.setup_mudata(mdata, "
                "modalities={'rna_layer': ..., 'epi_layer': ...})` first."
            )
        if manager.adata is not mdata and not manager.is_twin_of(mdata):
            raise ValueError(
                "This MuData is a copy of one set up for DCCA, not the object itself: call "
                "`scdcca.DCCA.setup_mudata` on it."
            )
        return manager.adata

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(cls, *args, **kwargs):
        """DCCA needs two modalities: use :meth:`setup_mudata`."""
        raise NotImplementedError(
            "DCCA trains on paired modalities: build a MuData and call `DCCA.setup_mudata`."
        )

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        rna_layer: str | None = None,
        epi_layer: str | None = None,
        batch_key: str | None = None,
        binarize_epi: bool = False,
        modalities: dict[str, str] | None = None,
        **kwargs,
    ) -> None:
        """Register a MuData with paired RNA and epigenome measurements.

        Parameters
        ----------
        mdata
            MuData with an RNA modality (raw counts) and an epigenome modality.
        rna_layer
            Layer of the RNA modality holding raw counts; ``None`` for ``X``.
        epi_layer
            Layer of the epigenome modality; ``None`` for ``X``.
        batch_key
            Column of ``.obs`` with the batch of each cell; ``None`` for one batch. It is read
            from ``mdata.obs`` unless ``modalities["batch_key"]`` names a modality.
        binarize_epi
            Treat every non-zero epigenome value as 1 (for peak count matrices). The data are
            not changed; minibatches are binarised as they are loaded.
        modalities
            Which modality plays which role, for example
            ``{"rna_layer": "rna", "epi_layer": "atac"}``.

        Notes
        -----
        Every value is checked in one streamed pass (blocks of rows; nothing is densified).
        An error naming the modality and the fix is raised here for infinite values, NaN in
        the RNA, duplicated cell or feature names, cells missing from ``mdata.obs_names``
        (run ``mdata.update()``), missing modalities, layers or ``obs`` keys, batch keys
        with gaps, and categorical batch keys with categories no cell has (each would be a
        batch that never trains: run ``.cat.remove_unused_categories()``); and when the model
        is built, for RNA that is not raw counts (negative or non-integer values, with the
        NB/ZINB likelihood) and for an epigenome that is not 0/1 (with the Bernoulli
        likelihood, unless ``binarize_epi=True``). NaN in the epigenome
        marks an entry that was not measured and is left out of the likelihood. Cells measured
        in one modality only, or listed in another order, are paired by name. Cells without
        counts and features that are zero everywhere give a warning saying how many
        (``InputWarning``, a ``UserWarning``).

        Accepted as they are: NumPy arrays in any order and of any integer, float or bool
        dtype, SciPy CSR and CSC matrices and arrays (CSC works but is read more slowly, with a
        warning), dask arrays and backed MuData (``mudata.read_h5mu(path, backed=True)``). A
        backed MuData stays on disk and is read a minibatch at a time, except when its
        modalities hold different cells: the padded copy of the two registered layers that
        pairs them is then built in memory (sparse layers stay sparse).

        The MuData is not modified, except for the fields scvi-tools registers
        (``mdata.obs["_scvi_batch"]``, ``mdata.uns["_scvi_uuid"]`` and
        ``mdata.uns["_scvi_manager_uuid"]``); results are only written by
        :meth:`write_results`.
        """
        modalities = dict(modalities or {})
        batch_modality = modalities.get("batch_key")
        setup_method_args = cls._get_setup_method_args(**locals())
        setup_method_args["setup_args"]["modalities"] = modalities
        scanned = validate.check_setup(
            mdata,
            modalities,
            rna_layer,
            epi_layer,
            batch_key,
            batch_modality,
            source_registry=kwargs.get("source_registry"),
        )
        registered = mdata
        observed_fields = []
        if not is_paired(mdata, modalities):
            # cells measured by one modality only (or listed in another order): train on a
            # padded twin that pairs them by name; the user's MuData is not changed
            if batch_key is not None and batch_modality is not None:
                raise ValueError(
                    "With unpaired cells the batch key must be a column of mdata.obs (one "
                    "value for every cell); run `mdata.update()` or copy it there, and drop "
                    "modalities['batch_key']."
                )
            registered = padded_twin(mdata, modalities, {"rna": rna_layer, "epi": epi_layer})
            observed_fields = [
                fields.NumericalObsField(OBSERVED_KEYS[role], OBSERVED_COLUMNS[role])
                for role in MODALITIES
            ]
        # counts are checked in full above; scvi's format correction would replace the user's
        # non-C-contiguous arrays, so the data are read as they are
        mudata_fields = [
            fields.MuDataLayerField(
                RNA_KEY,
                rna_layer,
                mod_key=modalities["rna_layer"],
                is_count_data=False,
                correct_data_format=False,
                mod_required=True,
            ),
            fields.MuDataLayerField(
                EPI_KEY,
                epi_layer,
                mod_key=modalities["epi_layer"],
                is_count_data=False,
                correct_data_format=False,
                mod_required=True,
            ),
            fields.MuDataCategoricalObsField(BATCH_KEY, batch_key, mod_key=batch_modality),
            *observed_fields,
        ]
        adata_manager = DCCAManager(fields=mudata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(registered, **kwargs)
        adata_manager.keep_scans(scanned)
        cls.register_manager(adata_manager)
        if registered is not mdata:
            share_registration(mdata, registered)
            adata_manager.remember_source(mdata)

    def _validate_anndata(self, adata: MuData | None = None, copy_if_view: bool = True) -> MuData:
        """Check a MuData the model was not set up with, then let scvi-tools transfer it."""
        if adata is not None and adata is self._unpaired_source:
            adata = self.adata  # unpaired cells are read through the padded twin
        validate.check_data_for_model(self, adata)
        return super()._validate_anndata(adata, copy_if_view=copy_if_view)

    # ------------------------------------------------------------------ training
    def train(
        self,
        max_epochs_per_phase: int = 200,
        schedule: ScheduleName = "alternating",
        n_cycles: int = 1,
        first_teacher: Modality = "rna",
        beta1: float = 5.0,
        beta2: float | None = None,
        lr: float = 1e-3,
        batch_size: int = 128,
        patience: int = 5,
        refine_epi_decoder: bool = True,
        train_size: float = 0.9,
        validation_size: float | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Train with DCCA's teacher/student schedule.

        Parameters
        ----------
        max_epochs_per_phase
            Upper bound on each phase's epochs; phases usually stop earlier on a plateau.
            ``max_epochs=N`` (scvi-tools' name) is accepted too and sets the bound for the
            schedule's phases together: ``N // n_phases`` epochs each (at least 1); the
            decoder refinement gets the same bound.
        schedule
            ``"alternating"`` (default: both VAEs every minibatch, each pulled towards the
            other's detached latent) or ``"cycle"`` (the paper's phases, one VAE at a time).
            The two are compared in ``benchmarks/README.md``.
        n_cycles
            Rounds of "epigenome learns from RNA, RNA learns from epigenome" (``"cycle"``).
        first_teacher
            Which modality teaches first (``"rna"`` in the paper).
        beta1
            Attention weight when the epigenome is the student (paper: 5).
        beta2
            Attention weight when RNA is the student. ``None``: the paper's 1 with
            ``schedule="cycle"``, 0.2 with ``"alternating"``, where both VAEs learn at once:
            a weak pull keeps the RNA latent close to its own data while the epigenome
            decoder still sees RNA latents near the epigenome latents it was trained on.
        lr
            Adam learning rate at the start of each phase (decays 10x on each plateau).
        batch_size
            Minibatch size.
        patience
            Epochs without improvement of the monitored loss before the learning rate decays;
            a phase ends after ``2 * patience`` epochs without improvement.
        refine_epi_decoder
            After the schedule, train the epigenome decoder alone on the epigenome encoder's
            posterior means (encoders frozen), stopped like any phase. A VAE decoder trained
            on posterior samples blurs neighbouring cell states into each other where the
            posterior is wide compared with the distances between states, as it is for
            sparse epigenomes; refined, the denoised and generated epigenomes keep more of
            each state's own regions. ``False``: the decoder as the schedule left it.
        train_size, validation_size
            Split of the cells (see :class:`scvi.dataloaders.DataSplitter`). The held-out
            cells decide early stopping; with ``train_size=1.0`` every cell trains and the
            training loss is monitored instead (which trains much longer). On sparse
            epigenomes the held-out cells' epigenome latent is weak, because the epigenome
            encoder fits the training cells' RNA latents (``benchmarks/README.md``).
        accelerator, devices
            Passed to Lightning (``"cpu"``, ``"gpu"``, ``"auto"``; device ids or counts).
        plan_kwargs
            More arguments of :class:`~scdcca.model.DCCATrainingPlan`.
        datasplitter_kwargs
            More arguments of :class:`scvi.dataloaders.DataSplitter`.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (``strategy``, ``num_nodes``,
            ``callbacks``, ...). For several devices or nodes use ``strategy="ddp"``; each
            process then sees its share of the cells, and Lightning reduces the logged losses
            over all of them.

        Notes
        -----
        Each phase is one Lightning fit of :class:`~scdcca.model.DCCATrainingPlan`: the VAEs
        that are not its students are frozen; the learning rate decays 10x after
        ``patience`` epochs without a relative improvement of 0.1 % of the monitored loss
        (the students' loss with the KL weight at 1, on the held-out cells), the phase stops
        after ``2 * patience`` epochs without improvement (Lightning's
        :class:`~lightning.pytorch.callbacks.EarlyStopping`), and the students' weights of
        the best epoch are kept, also after Ctrl+C or a divergence. The KL weight of each
        VAE rises over its first 10 epochs of training, in whichever phases they fall.
        ``model.history["epochs"]`` and ``model.history["phases"]`` hold one row per epoch
        and per phase.

        After training (also after an interruption that kept the best weights), two fits
        make generated binary epigenomes (:meth:`predict_modality`) realistic: their depth,
        ``log1p`` of each paired cell's open regions on ``log1p`` of its RNA library size and
        its RNA latent (ridge least squares), and their profile: the training cells' region
        frequencies plus each cell's deviation from the decoder's mean profile, shrunk by
        the weight under which the validation cells' measured calls are most likely given
        their RNA (0, no shrinkage, without validation cells).
        The weight of the epigenome half of the joint latent (:attr:`joint_epi_weight`) is
        then fitted on the paired validation cells.

        Raises
        ------
        TrainingDivergedError
            When the loss becomes NaN or infinite. The model keeps the best weights of the
            phase; it counts as trained (the getters work) if at least one epoch ended.
        """
        phases = build_schedule(schedule, n_cycles, first_teacher, beta1, beta2)
        if "max_epochs" in trainer_kwargs:  # scvi-tools' habit: a total over all phases
            max_epochs = arguments.positive_int("max_epochs", trainer_kwargs.pop("max_epochs"))
            max_epochs_per_phase = max(1, max_epochs // len(phases))
        if refine_epi_decoder:
            phases.append(Phase(students=("epi",), decoder_only=True))
        arguments.check_training(
            max_epochs_per_phase,
            n_cycles,
            beta1,
            beta2,
            lr,
            batch_size,
            patience,
            train_size,
            validation_size,
        )
        datasplitter_kwargs = dict(datasplitter_kwargs or {})
        datasplitter_kwargs.setdefault(
            "distributed_sampler", is_ddp(trainer_kwargs.get("strategy"))
        )
        datasplitter_kwargs.setdefault(
            "load_sparse_tensor", sparse_minibatches_supported(self.adata_manager)
        )
        splitter = self._data_splitter_cls(
            self.adata_manager,
            train_size=train_size,
            validation_size=validation_size,
            batch_size=batch_size,
            **datasplitter_kwargs,
        )
        trainer_kwargs.setdefault("check_val_every_n_epoch", 1)
        # the plan logs once per epoch; Lightning's step logging must not outnumber the steps
        trainer_kwargs.setdefault(
            "log_every_n_steps", max(1, min(50, -(-splitter.n_train // batch_size)))
        )
        if splitter.n_val == 0:  # every cell trains: the plan monitors the training loss
            trainer_kwargs.setdefault("limit_val_batches", 0)
        trainer_kwargs.setdefault("early_stopping", False)
        trainer_kwargs.setdefault("num_sanity_val_steps", 0)
        validates = (
            trainer_kwargs["check_val_every_n_epoch"] <= max_epochs_per_phase
            and trainer_kwargs.get("limit_val_batches", 1) != 0
        )
        monitor = MONITOR if validates else MONITOR_TRAIN
        callbacks = list(trainer_kwargs.pop("callbacks", None) or [])
        epochs: list[dict] = []
        ran: list[dict] = []
        trained = {m: [0, 0] for m in MODALITIES}  # epochs and steps each VAE has trained
        sigint_handler = signal.getsignal(signal.SIGINT)
        try:
            for index, phase in enumerate(phases):
                best = BestWeights(monitor, phase.students)
                stopping = EarlyStopping(monitor=monitor, patience=2 * patience, mode="min")
                plan = self._training_plan_cls(
                    self.module,
                    phase=phase,
                    phase_index=index,
                    lr=lr,
                    lr_patience=patience,
                    monitor=monitor,
                    **phase_plan_kwargs(plan_kwargs, *min(trained[m] for m in phase.students)),
                )
                split = "validation" if validates else "train"
                try:
                    # scvi-tools leaves a trained module in evaluation mode; Lightning keeps
                    # each submodule's mode, so training mode (sampling, dropout) is set here
                    self.module.train()
                    with quiet_third_party(), only_students_learn(self.module, phase):
                        self._train_runner_cls(
                            self,
                            training_plan=plan,
                            data_splitter=splitter,
                            max_epochs=max_epochs_per_phase,
                            accelerator=accelerator,
                            devices=devices,
                            callbacks=[
                                best,
                                stopping,
                                EpochHistory(epochs, index, phase.name, split),
                                *callbacks,
                            ],
                            **trainer_kwargs,
                        )()
                finally:
                    if any(row["phase"] == index for row in epochs):
                        ran.append(phase_record(index, phase, best, epochs))
                for modality in phase.students:
                    trained[modality][0] += ran[-1]["epochs"]
                    trained[modality][1] += plan.global_step
                ran[-1]["completed"] = True
                reason = (
                    f"{monitor} did not improve for {stopping.patience} epochs"
                    if stopping.stopped_epoch
                    else f"max_epochs_per_phase={max_epochs_per_phase} reached"
                )
                rank_zero_info(
                    f"DCCA phase {index + 1}/{len(phases)} ({phase.name}) ended after "
                    f"{ran[-1]['epochs']} epochs ({reason}); the weights of epoch "
                    f"{best.best_epoch} are kept."
                )
        except BaseException as interruption:
            # the best weights are back (BestWeights.on_exception); Lightning turns a
            # KeyboardInterrupt into SystemExit(1) and ignores further Ctrl+C
            self._keep_split(splitter)
            if not is_interruption(interruption):
                if epochs:  # diverged after learning: the best weights stay usable
                    self.module.eval()
                    self.is_trained_ = True
                    self._fit_after_training()
                raise
            restore_sigint(sigint_handler)
            if not epochs:
                raise KeyboardInterrupt(
                    "Training was interrupted before its first epoch ended: the model is untrained"
                ) from interruption
            logger.warning("Training interrupted: keeping the best weights reached so far.")
            self.module.eval()
            self.is_trained_ = True
        finally:
            self._record_history(epochs, ran, schedule)
        self._keep_split(splitter)
        self._fit_after_training()

    def _keep_split(self, splitter) -> None:
        """Take the cells of each split from ``splitter``, however its last fit ended.

        scvi-tools' ``TrainRunner`` sets ``train_indices`` and ``validation_indices`` only
        when a fit returns; after Ctrl+C or a divergence the fits after training still need
        them. Nothing is changed before the splitter has made its split.
        """
        if getattr(splitter, "train_idx", None) is None:
            return
        self.train_indices = splitter.train_idx
        self.validation_indices = getattr(splitter, "val_idx", None)
        self.test_indices = getattr(splitter, "test_idx", None)

    def _fit_after_training(self) -> None:
        """Fit the joint latent's epigenome weight and what generating an epigenome needs.

        :func:`~scdcca.model._joint.fit_joint_weight` on the paired validation cells. For a
        binary epigenome also :func:`~scdcca.model._generation.fit_depth` over the paired
        cells and :func:`~scdcca.model._generation.fit_region_prior` with the paired training
        cells' region frequencies, the decoder's mean profile over at most 2,000 of them, and
        the weight fitted on at most 500 paired validation cells.
        """
        paired = self._observed_cells("epi", "rna")
        every = np.arange(self.adata.n_obs) if paired is None else paired

        def cells(split) -> np.ndarray:
            split = np.asarray([] if split is None else split, dtype=int)
            return np.intersect1d(every, split)

        training = cells(getattr(self, "train_indices", None))
        validation = cells(getattr(self, "validation_indices", None))
        joint.fit_joint_weight(
            self.module, self._minibatches(None, validation, None) if len(validation) else None
        )
        if self.module.epi.likelihood != "bernoulli":
            return
        if len(validation) > 500:
            validation = np.sort(np.random.default_rng(0).choice(validation, 500, replace=False))
        if len(training) == 0:  # trained elsewhere or interrupted before the split existed
            training = every
        sample = training
        if len(sample) > 2000:
            sample = np.sort(np.random.default_rng(0).choice(sample, 2000, replace=False))
        generation.fit_depth(self.module, self._minibatches(None, every, None))
        generation.fit_region_prior(
            self.module,
            self._minibatches(None, training, None),
            self._minibatches(None, sample, None),
            self._minibatches(None, validation, None) if len(validation) else None,
        )

    def save(
        self,
        dir_path: str,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        save_kwargs: dict | None = None,
        **anndata_write_kwargs,
    ) -> None:
        """Save the model; in distributed training rank 0 only.

        The files are those of :meth:`scvi.model.base.BaseModelClass.save` (``model.pt`` and,
        with ``save_anndata``, ``mdata.h5mu``), written into a temporary folder first and then
        moved into ``dir_path``: a save that fails (full disk, crash) leaves an earlier save
        there loadable. Saving without data over a save with data removes the old data file,
        and the two files of one save carry a shared token, so :meth:`load` never pairs these
        weights with another save's cells. With unpaired cells, ``save_anndata`` writes the
        MuData the model was set up with (not the padded copy it trains on).

        Parameters
        ----------
        dir_path
            Directory to save into.
        prefix
            Prefix of the file names.
        overwrite
            Replace a model already saved in ``dir_path`` (with the same ``prefix``).
        save_anndata
            Also save the MuData the model was set up with.
        save_kwargs
            Passed to :func:`torch.save`.
        **anndata_write_kwargs
            Passed to :meth:`mudata.MuData.write`.

        Raises
        ------
        OSError
            When the disk fills up while writing (``errno.ENOSPC``); an earlier save in
            ``dir_path`` is left as it was.
        """
        if not is_rank_zero():
            return
        self.save_token_ = saving.new_token()
        source = self._unpaired_source

        def write(folder) -> None:
            BaseModelClass.save(
                self,
                str(folder),
                prefix=prefix,
                overwrite=True,
                save_anndata=save_anndata and source is None,
                save_kwargs=save_kwargs,
                **anndata_write_kwargs,
            )
            if save_anndata and source is not None:
                source.write(folder / f"{prefix or ''}{saving.DATA_FILE}", **anndata_write_kwargs)

        saving.write_atomically(dir_path, prefix, overwrite, write, self.save_token_)

    @classmethod
    def load(
        cls,
        dir_path: str,
        adata: MuData | None = None,
        accelerator: str = "auto",
        device: int | str = "auto",
        prefix: str | None = None,
        **kwargs,
    ) -> DCCA:
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        dir_path
            Directory the model was saved into.
        adata
            MuData to attach the model to (the same features; set up again with the saved
            settings). ``None``: the MuData saved with the model (``save_anndata=True``).
        accelerator, device
            Where to put the model (see :meth:`scvi.model.base.BaseModelClass.load`).
        prefix
            Prefix of the saved file names.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.load`.

        Raises
        ------
        ValueError
            When no data were saved and none is passed, when the saved data file belongs to
            another save, or when a newer scdcca release saved the model.
        """
        attributes = saving.saved_attributes(dir_path, prefix)
        if attributes:
            saving.check_saved_version(attributes.get("scdcca_version_"), __version__)
            # the saved data are read only when no MuData is passed: only then must they match
            has_data = adata is not None or saving.check_saved_data(dir_path, prefix, attributes)
            if not has_data and not kwargs.get("backup_url"):
                raise ValueError(
                    f"The model in {dir_path} was saved without its data "
                    "(save_anndata=False): pass the MuData it was trained on, "
                    "`DCCA.load(dir_path, adata=mdata)`."
                )
        return super().load(
            dir_path, adata=adata, accelerator=accelerator, device=device, prefix=prefix, **kwargs
        )

    def _record_history(self, epochs: list[dict], phases: list[dict], schedule: str) -> None:
        """Keep the epoch and phase tables of this training in ``history`` and ``schedule_``."""
        history = dict(getattr(self, "history_", None) or {})
        history["epochs"] = pd.DataFrame(epochs)
        history["phases"] = pd.DataFrame(phases)
        self.history_ = history
        names = ("students", "teacher", "weights", "decoder_only")
        self.schedule_ = [
            {"schedule": schedule, **{k: p[k] for k in names}, "name": p["name"]} for p in phases
        ]

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def get_latent_representation(
        self,
        mdata: MuData | None = None,
        modality: Literal["rna", "epi", "joint"] = "joint",
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        epi_weight: float | None = None,
    ) -> np.ndarray:
        """Posterior means of the latents.

        Parameters
        ----------
        mdata
            Cells to encode: ``None`` for the MuData the model was set up with, or new cells
            (projection, no retraining): a MuData, or for ``modality="rna"``/``"epi"`` an
            AnnData of that modality alone. New data may hold the model's features in another
            order or more features; missing ones are an error.
        modality
            ``"rna"`` (``z_rna``), ``"epi"`` (``z_epi``) or ``"joint"`` (both side by side,
            ``[z_rna, epi_weight * z_epi]``, ``2 * n_latent`` columns, RNA first).
        indices
            Cells to encode (all by default).
        batch_size
            Minibatch size (scvi's default if ``None``).
        epi_weight
            Factor of the epigenome half of the joint latent: ``None`` for
            :attr:`joint_epi_weight`, which training fits on the validation cells; ``1.0``
            for the plain concatenation. Ignored for ``"rna"`` and ``"epi"``.

        Returns
        -------
        Array of shape ``(n_cells, n_latent)`` or ``(n_cells, 2 * n_latent)`` for ``"joint"``.
        """
        wanted = MODALITIES if modality == "joint" else (modality,)
        if modality not in ("rna", "epi", "joint"):
            raise ValueError(f"modality must be 'rna', 'epi' or 'joint', got {modality!r}.")
        if epi_weight is not None and not 0.0 <= float(epi_weight) < float("inf"):
            raise ValueError(
                f"epi_weight must be a finite number >= 0, got {epi_weight!r}: it multiplies the "
                "epigenome half of the joint latent (None: the fitted joint_epi_weight, 1.0: "
                "the plain concatenation)."
            )
        if isinstance(mdata, AnnData) and modality == "joint":
            raise ValueError(
                "An AnnData holds one modality: ask for modality='rna' or 'epi', or pass a "
                "MuData with both for the joint latent."
            )
        parts = [
            torch.cat([self.module.latent_or_predicted(m, t) for m in wanted], dim=1).cpu()
            for t in self._minibatches(mdata, indices, batch_size, modalities=wanted)
        ]
        latent = torch.cat(parts).numpy()
        if modality != "joint":
            return latent
        weight = self.joint_epi_weight if epi_weight is None else float(epi_weight)
        return joint.weigh_joint(latent, self.module.n_latent, weight)

    @property
    def joint_epi_weight(self) -> float:
        """Factor of the epigenome half in the joint latent, in ``[0, 1]``.

        Training sets it to the fraction of the RNA latent's variance that the epigenome
        latent predicts in the validation cells (R², clipped): near 1 where the regions place
        unseen cells as their RNA does, 0 where the epigenome latent of unseen cells predicts
        the RNA latent no better than its mean, so that it adds no noise to the joint
        latent's distances. 1 (the plain concatenation) without validation cells
        (``train_size=1.0``) and for models saved before the weight existed.
        """
        return float(self.module.joint_epi_weight)

    def _cell_and_feature_names(self, mdata, modality: Modality, indices) -> tuple:
        return self._cell_names(mdata, indices), self.model_features(modality)

    def get_normalized_expression(
        self,
        mdata: MuData | None = None,
        indices: Sequence[int] | None = None,
        library_size: float | Literal["observed"] = 1.0,
        batch_size: int | None = None,
        return_numpy: bool = False,
        transform_batch: BatchChoice = None,
    ) -> pd.DataFrame | np.ndarray:
        """Denoised RNA expression from the RNA VAE.

        Parameters
        ----------
        library_size
            Scale of each cell's expression: ``1.0`` gives proportions, ``1e4`` counts per
            10k, ``"observed"`` the NB mean at each cell's own library size. Ignored with
            ``rna_likelihood="gaussian"`` (values stay on the data's scale).
        return_numpy
            Return an array instead of a cells x genes DataFrame.
        transform_batch
            Batch to decode in, as in scvi-tools: ``None`` uses each cell's own batch; a batch
            name (a category of the setup's ``batch_key``) decodes every cell as if measured
            in that batch; a list of names averages the decoded values over those batches
            (all of them give values free of the batch shifts).
        """
        library_size = arguments.library_size(library_size, allow_observed=True)
        observed = library_size == "observed"
        blocks = list(
            self._denoised_batches("rna", mdata, indices, batch_size, observed, transform_batch)
        )
        scaled = not observed and self.module.rna.likelihood != "gaussian"
        values = np.concatenate(blocks) * (float(library_size) if scaled else 1.0)
        if return_numpy:
            return values
        cells, genes = self._cell_and_feature_names(mdata, "rna", indices)
        return pd.DataFrame(values, index=cells, columns=genes)

    def get_normalized_accessibility(
        self,
        mdata: MuData | None = None,
        indices: Sequence[int] | None = None,
        threshold: float | None = None,
        batch_size: int | None = None,
        return_numpy: bool = False,
        transform_batch: BatchChoice = None,
    ) -> pd.DataFrame | np.ndarray | sparse.csr_matrix:
        """Denoised epigenome from the epigenome VAE, at the mean sequencing depth.

        Parameters
        ----------
        threshold
            If given, return a sparse CSR matrix keeping only probabilities ``>= threshold``;
            batches are sparsified as they are produced, so no dense cells x regions matrix is
            held.
        return_numpy
            Return an array instead of a cells x regions DataFrame (ignored with ``threshold``).
        transform_batch
            Batch to decode in, as in scvi-tools: ``None`` uses each cell's own batch; a batch
            name (a category of the setup's ``batch_key``) decodes every cell as if measured
            in that batch; a list of names averages the decoded values over those batches
            (all of them give values free of the batch shifts).

        Returns
        -------
        Open probabilities (Bernoulli) or means (Gaussian).
        """
        threshold = arguments.threshold(threshold)
        blocks = self._denoised_batches(
            "epi", mdata, indices, batch_size, transform_batch=transform_batch
        )
        if threshold is not None:
            return sparse_above(blocks, threshold)
        values = np.concatenate(list(blocks))
        if return_numpy:
            return values
        cells, regions = self._cell_and_feature_names(mdata, "epi", indices)
        return pd.DataFrame(values, index=cells, columns=regions)

    def write_results(
        self,
        mdata: MuData | None = None,
        overwrite: bool = False,
        epi_threshold: float | None = None,
        rna_library_size: float = 1e4,
        batch_size: int | None = None,
        denoised: bool = True,
        transform_batch: BatchChoice = None,
    ) -> MuData:
        """Write latents, denoised layers and settings of the model into ``mdata``.

        Keys written (see :mod:`scdcca._constants`):

        - ``mdata.obsm["X_dcca"]``: joint latent, ``[z_rna, joint_epi_weight * z_epi]`` side
          by side (:attr:`joint_epi_weight`).
        - ``mdata[rna].obsm["X_dcca"]`` and ``mdata[epi].obsm["X_dcca"]``: each modality's latent.
        - ``mdata[rna].layers["dcca_denoised"]``: denoised expression, each cell scaled to
          ``rna_library_size`` counts (ready for ``sc.pp.log1p``).
        - ``mdata[epi].layers["dcca_denoised"]``: open probabilities at mean depth (sparse CSR
          keeping values ``>= epi_threshold`` if that is given).
        - ``mdata.uns["dcca"]``: the model settings and the schedule that produced them.

        Every value is computed first and written under its own cell and feature: modalities may
        list the model's features in another order (the layers follow the modality's order). A
        modality with features the model lacks, or without some of its features, is refused
        before anything is written, and so is an untrained model. Either all keys are written or,
        if writing fails, the MuData is left as it was; with ``overwrite=True`` every result key
        of an earlier model is removed, so results of two models never mix.

        Parameters
        ----------
        mdata
            MuData with the model's cells and features (the training MuData or one set up like
            it); ``None`` for the MuData the model was set up with.
        overwrite
            Replace results already present. Without it, existing keys raise an error and
            nothing is written.
        epi_threshold
            Keep the denoised epigenome sparse (see :meth:`get_normalized_accessibility`).
        rna_library_size
            Total counts each denoised RNA profile is scaled to.
        batch_size
            Minibatch size for the getters.
        denoised
            Write the two denoised layers. They are dense cells x features float32 matrices
            (4 bytes per cell and feature, unless ``epi_threshold`` keeps the epigenome sparse);
            with ``False`` only the latents and
            settings are written, and the getters (:meth:`get_normalized_expression`,
            :meth:`get_normalized_accessibility`) give the denoised values when needed.
        transform_batch
            Batches the denoised layers are decoded in (see
            :meth:`get_normalized_accessibility`); ``None`` keeps each cell's own batch. With
            batches, ``mdata.obs[batch_key].cat.categories`` gives layers without the batch
            shifts, which suits scores compared across cells of several batches
            (:func:`scdcca.tl.motif_activity`).

        Returns
        -------
        The same ``mdata``, for chaining. In distributed training only rank 0 writes; other
        ranks return ``mdata`` untouched.

        Warns
        -----
        UserWarning
            When ``mdata`` is backed by a file (``mudata.read_h5mu(path, backed=...)``): the
            results are written in memory only; ``mdata.write()`` stores them in the file.
        """
        if mdata is None:
            mdata = self.adata if self._unpaired_source is None else self._unpaired_source
        if not is_rank_zero():
            return mdata
        return results.write(
            self,
            mdata,
            overwrite=overwrite,
            epi_threshold=epi_threshold,
            rna_library_size=rna_library_size,
            batch_size=batch_size,
            denoised=denoised,
            transform_batch=transform_batch,
        )
