"""Plots of DCCA results (matplotlib, scanpy style: they return axes and take ``save=``)."""

from ._plots import latents, training
from ._regulation import activity_heatmap, tf_network

__all__ = ["activity_heatmap", "latents", "tf_network", "training"]
