"""Training of :class:`~scdcca.DCCA`: the schedule, its phases and the fits after them."""

from __future__ import annotations

import logging
import signal

import numpy as np
import pandas as pd
from scvi.train import TrainRunner

from scdcca._constants import Modality
from scdcca._scvi import use_distributed_sampler
from scdcca.train import (
    DCCATrainingPlan,
    Phase,
    PhaseRunner,
    ScheduleName,
    SparseDataSplitter,
    build_schedule,
)
from scdcca.train import _generation as generation
from scdcca.train import _joint as joint
from scdcca.train._data import sparse_minibatches_supported
from scdcca.train._interrupt import is_interruption, restore_sigint
from scdcca.train._threads import threads_for_training
from scdcca.train._training_plan import MONITOR, MONITOR_TRAIN

from . import _arguments as arguments
from ._access import StreamMixin

logger = logging.getLogger(__name__)


class TrainingMixin(StreamMixin):
    """``train`` for :class:`~scdcca.DCCA`: DCCA's schedule, one Lightning fit per phase."""

    _training_plan_cls = DCCATrainingPlan
    _data_splitter_cls = SparseDataSplitter
    _train_runner_cls = TrainRunner

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
            More arguments of :class:`~scdcca.train.DCCATrainingPlan`.
        datasplitter_kwargs
            More arguments of :class:`scvi.dataloaders.DataSplitter`.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (``strategy``, ``num_nodes``,
            ``callbacks``, ...). For several devices or nodes use ``strategy="ddp"``; each
            process then sees its share of the cells, and Lightning reduces the logged losses
            over all of them.

        Notes
        -----
        Each phase is one Lightning fit of :class:`~scdcca.train.DCCATrainingPlan`: the VAEs
        that are not its students are frozen; the learning rate decays 10x after
        ``patience`` epochs without a relative improvement of 0.1 % of the monitored loss
        (the students' loss with the KL weight at 1, on the held-out cells), the phase stops
        after ``2 * patience`` epochs without improvement (Lightning's
        :class:`~lightning.pytorch.callbacks.EarlyStopping`), and the students' weights of
        the best epoch are kept, also after Ctrl+C or a divergence. The KL weight of each
        VAE rises over its first 10 epochs of training, in whichever phases they fall.
        Training runs on torch's CPU threads less one for each other process running when it
        starts (threads waiting on a busy core slow every step); ``scvi.settings.num_threads``
        or ``OMP_NUM_THREADS`` fixes the number.
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
            "distributed_sampler", use_distributed_sampler(trainer_kwargs.get("strategy"))
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
        trainer_kwargs.update(accelerator=accelerator, devices=devices)
        runner = PhaseRunner(
            self,
            splitter,
            max_epochs=max_epochs_per_phase,
            lr=lr,
            patience=patience,
            monitor=MONITOR if validates else MONITOR_TRAIN,
            plan_kwargs=plan_kwargs,
            trainer_kwargs=trainer_kwargs,
            plan_cls=self._training_plan_cls,
            runner_cls=self._train_runner_cls,
        )
        with threads_for_training():
            sigint_handler = signal.getsignal(signal.SIGINT)
            try:
                runner(phases)
            except BaseException as interruption:
                # the best weights are back (BestWeights.on_exception); Lightning turns a
                # KeyboardInterrupt into SystemExit(1) and ignores further Ctrl+C
                self._keep_split(splitter)
                if not is_interruption(interruption):
                    if runner.epochs:  # diverged after learning: the best weights stay usable
                        self.module.eval()
                        self.is_trained_ = True
                        self._fit_after_training()
                    raise
                restore_sigint(sigint_handler)
                if not runner.epochs:
                    raise KeyboardInterrupt(
                        "Training was interrupted before its first epoch ended: the model is "
                        "untrained"
                    ) from interruption
                logger.warning("Training interrupted: keeping the best weights reached so far.")
                self.module.eval()
                self.is_trained_ = True
            finally:
                self._record_history(runner.epochs, runner.phases, schedule)
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

        :func:`~scdcca.train._joint.fit_joint_weight` on the paired validation cells. For a
        binary epigenome also :func:`~scdcca.train._generation.fit_depth` over the paired
        cells and :func:`~scdcca.train._generation.fit_region_prior` with the paired training
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
