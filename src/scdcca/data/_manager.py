"""The :class:`scvi.data.AnnDataManager` DCCA registers MuData with."""

from __future__ import annotations

import weakref

from mudata import MuData
from scipy import sparse
from scvi.data import AnnDataManager


class DCCAManager(AnnDataManager):
    """An AnnDataManager that serves SciPy sparse arrays as sparse matrices.

    AnnData accepts ``csr_array`` and ``csc_array`` as well as ``csr_matrix`` and
    ``csc_matrix``, but scvi-tools' loaders turn sparse minibatches into tensors only for the
    matrix classes. A sparse array is therefore served as a matrix over the same buffers:
    nothing is copied and the user's object is not changed.

    For a MuData with unpaired cells the manager registers the padded twin DCCA trains on
    (``manager.adata``) and remembers, by weak reference, the user's MuData it stands for.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._source: weakref.ref | None = None

    def remember_source(self, mdata: MuData) -> None:
        """Record that the registered MuData is the padded twin of the user's ``mdata``."""
        self._source = weakref.ref(mdata)

    def is_twin_of(self, mdata: MuData) -> bool:
        """Whether the registered MuData is the padded twin of ``mdata``."""
        return self._source is not None and self._source() is mdata

    def get_from_registry(self, registry_key: str):
        """The registered data of ``registry_key`` (sparse arrays as matrix views)."""
        data = super().get_from_registry(registry_key)
        if isinstance(data, sparse.sparray) and data.format in ("csr", "csc"):
            as_matrix = sparse.csr_matrix if data.format == "csr" else sparse.csc_matrix
            return as_matrix(data, copy=False)
        return data
