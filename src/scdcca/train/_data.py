"""Data splitting that keeps sparse minibatches sparse all the way to the module."""

from __future__ import annotations

from scipy import sparse
from scvi.dataloaders import DataSplitter

from scdcca._constants import EPI_KEY, RNA_KEY
from scdcca.module._sparse import with_int64_indices


def sparse_minibatches_supported(adata_manager) -> bool:
    """Whether both registered matrices can be loaded as sparse tensors by scvi-tools.

    scvi-tools turns row slices into torch sparse tensors only for in-memory
    ``scipy.sparse.csr_matrix``/``csc_matrix``; other inputs (dense arrays, ``csr_array``,
    backed datasets) are loaded as dense minibatches, which the module handles the same way.
    """
    return all(
        isinstance(adata_manager.get_from_registry(key), sparse.csr_matrix | sparse.csc_matrix)
        for key in (RNA_KEY, EPI_KEY)
    )


class SparseDataSplitter(DataSplitter):
    """:class:`scvi.dataloaders.DataSplitter` whose minibatches stay sparse.

    Rows of sparse layers arrive as CSR (or CSC) tensors: only the non-zero entries are
    copied per minibatch, and the module's first layers and likelihoods work on them as they
    are (see :mod:`scdcca.module._sparse`). Dense layers arrive as dense tensors.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("load_sparse_tensor", True)
        super().__init__(*args, **kwargs)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        """Leave sparse tensors sparse (scvi's splitter densifies them here).

        CSR indices become int64 once per minibatch, the type every index operation of the
        module takes, instead of at each use.
        """
        return {key: with_int64_indices(value) for key, value in batch.items()}
