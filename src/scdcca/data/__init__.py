"""How DCCA registers a MuData: checks of the input, the manager, and pairing by cell name."""

from ._checks import InputWarning

__all__ = ["InputWarning"]
