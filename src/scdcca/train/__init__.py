"""DCCA's training: the schedule as data, one Lightning plan per phase, and the fits after it.

:func:`~scdcca.train.build_schedule` lists the phases (:class:`~scdcca.train.Phase`: students,
frozen teacher, attention weights); :class:`~scdcca.train.DCCATrainingPlan` trains one phase;
the callbacks keep each phase's best weights and its epoch history; the fits after training
set the joint latent's epigenome weight and what generating an epigenome needs.
"""

from ._data import SparseDataSplitter
from ._runner import PhaseRunner
from ._schedule import Phase, ScheduleName, build_schedule
from ._training_plan import DCCATrainingPlan, TrainingDivergedError

__all__ = [
    "DCCATrainingPlan",
    "Phase",
    "PhaseRunner",
    "ScheduleName",
    "SparseDataSplitter",
    "TrainingDivergedError",
    "build_schedule",
]
