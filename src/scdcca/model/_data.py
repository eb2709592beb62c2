"""Data splitting that keeps sparse minibatches sparse all the way to the module."""

from __future__ import annotations

from scvi.dataloaders import DataSplitter


class SparseDataSplitter(DataSplitter):
    """:class:`scvi.dataloaders.DataSplitter` whose minibatches stay sparse.

    Rows of sparse layers arrive as CSR (or CSC) tensors: only the non-zero entries are
    copied per minibatch, and the module's first layers and likelihoods work on them as they
    are (see :mod:`scdcca.model._sparse`). Dense layers arrive as dense tensors.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("load_sparse_tensor", True)
        super().__init__(*args, **kwargs)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        """Leave sparse tensors sparse (scvi's splitter densifies them here)."""
        return batch
