"""One Lightning fit per phase of a DCCA schedule, through scvi-tools' :class:`TrainRunner`."""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.utilities import rank_zero_info
from scvi.dataloaders import DataSplitter
from scvi.train import TrainRunner

from scdcca._constants import MODALITIES

from ._callbacks import BestWeights, EpochHistory
from ._phases import only_students_learn, phase_plan_kwargs, phase_record
from ._quiet import quiet_third_party
from ._schedule import Phase
from ._training_plan import DCCATrainingPlan


class PhaseRunner:
    """Train a model's module phase by phase, each phase one :class:`scvi.train.TrainRunner`.

    In each phase the VAEs that are not its students are frozen, a
    :class:`~scdcca.train.DCCATrainingPlan` trains the students, Lightning's
    :class:`~lightning.pytorch.callbacks.EarlyStopping` ends the phase after ``2 * patience``
    epochs without improvement of ``monitor``, and :class:`~scdcca.train._callbacks.BestWeights`
    puts the students' weights of the best epoch back (also on an error or Ctrl+C). The KL
    warm-up of each VAE continues over the phases it is a student in.

    Parameters
    ----------
    model
        The scvi-tools model whose ``module`` trains (passed to :class:`scvi.train.TrainRunner`).
    splitter
        The data splitter every phase reads.
    max_epochs
        Upper bound on each phase's epochs.
    lr, patience
        Learning rate at the start of each phase; epochs without improvement before it decays
        (a phase stops after twice as many).
    monitor
        The logged metric that decides stopping, decay and the best epoch.
    plan_kwargs
        More arguments of :class:`~scdcca.train.DCCATrainingPlan`.
    trainer_kwargs
        Arguments of :class:`scvi.train.TrainRunner` and Lightning's trainer (``accelerator``,
        ``devices``, ``callbacks``, ...).

    Attributes
    ----------
    epochs
        One row per epoch trained so far (losses, learning rate, KL weight).
    phases
        One record per phase that trained at least one epoch; ``completed`` tells whether it
        ended on its own.
    """

    def __init__(
        self,
        model,
        splitter: DataSplitter,
        *,
        max_epochs: int,
        lr: float,
        patience: int,
        monitor: str,
        plan_kwargs: dict | None,
        trainer_kwargs: dict,
        plan_cls: type[DCCATrainingPlan] = DCCATrainingPlan,
        runner_cls: type[TrainRunner] = TrainRunner,
    ):
        self.model = model
        self.splitter = splitter
        self.max_epochs = max_epochs
        self.lr = lr
        self.patience = patience
        self.monitor = monitor
        self.plan_kwargs = plan_kwargs
        self.trainer_kwargs = dict(trainer_kwargs)
        self.callbacks: list[Callback] = list(self.trainer_kwargs.pop("callbacks", None) or [])
        self.plan_cls = plan_cls
        self.runner_cls = runner_cls
        self.epochs: list[dict] = []
        self.phases: list[dict] = []

    def __call__(self, phases: Sequence[Phase]) -> None:
        """Train every phase in order; the records grow as they go."""
        module = self.model.module
        trained = {m: [0, 0] for m in MODALITIES}  # epochs and steps each VAE has trained
        split = "validation" if self.monitor.endswith("_validation") else "train"
        for index, phase in enumerate(phases):
            best = BestWeights(self.monitor, phase.students)
            stopping = EarlyStopping(monitor=self.monitor, patience=2 * self.patience, mode="min")
            plan = self.plan_cls(
                module,
                phase=phase,
                phase_index=index,
                lr=self.lr,
                lr_patience=self.patience,
                monitor=self.monitor,
                **phase_plan_kwargs(self.plan_kwargs, *min(trained[m] for m in phase.students)),
            )
            history = EpochHistory(self.epochs, index, phase.name, split)
            try:
                # scvi-tools leaves a trained module in evaluation mode; Lightning keeps
                # each submodule's mode, so training mode (sampling, dropout) is set here
                module.train()
                with quiet_third_party(), only_students_learn(module, phase):
                    self.runner_cls(
                        self.model,
                        training_plan=plan,
                        data_splitter=self.splitter,
                        max_epochs=self.max_epochs,
                        callbacks=[best, stopping, history, *self.callbacks],
                        **self.trainer_kwargs,
                    )()
            finally:
                trained_an_epoch = any(row["phase"] == index for row in self.epochs)
                if trained_an_epoch:
                    self.phases.append(phase_record(index, phase, best, self.epochs))
            if not trained_an_epoch:
                rank_zero_info(
                    f"DCCA phase {index + 1}/{len(phases)} ({phase.name}) was stopped before its "
                    "first epoch ended (by a callback, e.g. a time limit); its VAEs keep the "
                    "weights they had."
                )
                continue
            for modality in phase.students:
                trained[modality][0] += self.phases[-1]["epochs"]
                trained[modality][1] += plan.global_step
            self.phases[-1]["completed"] = True
            if stopping.stopped_epoch:
                reason = f"{self.monitor} did not improve for {stopping.patience} epochs"
            elif self.phases[-1]["epochs"] >= self.max_epochs:
                reason = f"max_epochs_per_phase={self.max_epochs} reached"
            else:
                reason = "stopped by a callback or a time limit"
            rank_zero_info(
                f"DCCA phase {index + 1}/{len(phases)} ({phase.name}) ended after "
                f"{self.phases[-1]['epochs']} epochs ({reason}); the weights of epoch "
                f"{best.best_epoch} are kept."
            )
