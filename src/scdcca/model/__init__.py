"""The DCCA model users work with; module, plan and schedule are re-exported from their homes."""

from scdcca.data import InputWarning
from scdcca.module import DCCAModule
from scdcca.train import DCCATrainingPlan, Phase, TrainingDivergedError, build_schedule

from ._model import DCCA

__all__ = [
    "DCCA",
    "DCCAModule",
    "DCCATrainingPlan",
    "InputWarning",
    "Phase",
    "TrainingDivergedError",
    "build_schedule",
]
