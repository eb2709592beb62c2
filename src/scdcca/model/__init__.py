"""The DCCA model, its module, training plan and schedules."""

from ._model import DCCA
from ._module import DCCAModule
from ._schedule import Phase, build_schedule
from ._training_plan import DCCATrainingPlan, TrainingDivergedError
from ._validation import InputWarning

__all__ = [
    "DCCA",
    "DCCAModule",
    "DCCATrainingPlan",
    "InputWarning",
    "Phase",
    "TrainingDivergedError",
    "build_schedule",
]
