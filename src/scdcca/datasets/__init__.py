"""Real paired datasets shipped with scdcca."""

from ._datasets import scicar_kidney, scicar_kidney_genes, scmt_mesc, snare_cortex

__all__ = ["scicar_kidney", "scicar_kidney_genes", "scmt_mesc", "snare_cortex"]
