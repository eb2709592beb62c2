"""Silence third-party messages that say nothing about the user's model or data."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch

# messages of torch and Lightning that every sparse DCCA fit triggers and no user can act on
_IGNORED_WARNINGS = (
    r"Sparse CSR tensor support is in beta state",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # the epigenome decoder's refinement keeps the frozen encoders in evaluation mode
    r"Found \d+ module\(s\) in eval mode at the start of training",
)


class _DropTips(logging.Filter):
    """Drop Lightning's advertising tips (``"💡 Tip: ..."``); keep every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


@contextmanager
def quiet_third_party() -> Iterator[None]:
    """Hide the third-party noise of a fit, restoring the caller's settings afterwards.

    Torch's sparse-CSR beta notice, Lightning's tips, its internal deprecation notices and its
    notice of modules in evaluation mode (the frozen encoders of a decoder-only phase) are
    hidden; sparse-tensor invariant checks are explicitly left as torch's default (off), which
    silences torch's reminder to choose. Every warning about the user's data or settings, and
    every Lightning message about devices and stopping, is kept.
    """
    tips = _DropTips()
    lightning_logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    lightning_logger.addFilter(tips)
    checks = torch.sparse.check_sparse_tensor_invariants.is_enabled()
    try:
        with warnings.catch_warnings(), torch.sparse.check_sparse_tensor_invariants(checks):
            for message in _IGNORED_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        lightning_logger.removeFilter(tips)
