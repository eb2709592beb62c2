"""Real paired datasets shipped with scdcca."""

from ._datasets import scicar_kidney

__all__ = ["scicar_kidney"]
