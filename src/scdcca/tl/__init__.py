"""Tools that work on the MuData DCCA wrote: clustering scores and more."""

from ._clustering import clustering_scores

__all__ = ["clustering_scores"]
