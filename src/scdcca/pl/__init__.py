"""Plots of DCCA results (matplotlib, scanpy style: they return axes and take ``save=``)."""

from ._plots import latents, training

__all__ = ["latents", "training"]
