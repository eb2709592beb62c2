"""DCCA's module: pure torch, no data handling.

Two VAEs, one per modality (:class:`~scdcca.module.RNAVAE`,
:class:`~scdcca.module.EpigenomeVAE`), coupled by attention transfer in
:class:`~scdcca.module.DCCAModule`, with the kernels their likelihoods run on.
"""

from ._components import RNAVAE, EpigenomeVAE, EpiLikelihood, RegionBernoulli, RNALikelihood
from ._module import DCCAModule, attention_distance, other_modality
from ._precision import HeadPrecision

__all__ = [
    "RNAVAE",
    "DCCAModule",
    "EpiLikelihood",
    "EpigenomeVAE",
    "HeadPrecision",
    "RNALikelihood",
    "RegionBernoulli",
    "attention_distance",
    "other_modality",
]
