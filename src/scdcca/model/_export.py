"""Write the denoised epigenome straight to disk, one block of cells at a time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from ._access import StreamMixin


class ExportMixin(StreamMixin):
    """On-disk output for :class:`~scdcca.DCCA` when cells x regions does not fit in memory."""

    def write_normalized_accessibility(
        self,
        path: str | Path,
        mdata=None,
        indices: Sequence[int] | None = None,
        dataset: str = "dcca_denoised",
        dtype: str = "float32",
        batch_size: int | None = None,
    ) -> Path:
        """Stream denoised open probabilities into an HDF5 dataset, cells x regions.

        Only one minibatch of probabilities is in memory at a time, so atlases with hundreds
        of thousands of cells and regions can be denoised on a laptop. The file also holds
        ``obs_names`` and ``var_names``; open it with :mod:`h5py` (``f[dataset][rows]``) or
        wrap it as a backed layer.

        Parameters
        ----------
        path
            HDF5 file to create (an existing file is refused).
        mdata
            Cells to denoise (see :meth:`get_normalized_accessibility`).
        indices
            Cells to denoise (all by default).
        dataset
            Name of the dataset inside the file.
        dtype
            Storage type, ``"float32"`` or ``"float16"`` (half the size).
        batch_size
            Cells per minibatch.

        Returns
        -------
        The path written.
        """
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} exists; remove it or choose another path.")
        cells = self._cell_names(mdata, indices)
        regions = self.model_features("epi")
        with h5py.File(path, "w") as handle:
            out = handle.create_dataset(
                dataset,
                shape=(len(cells), len(regions)),
                dtype=np.dtype(dtype),
                chunks=(min(len(cells), 256), min(len(regions), 4096)),
            )
            start = 0
            for block in self._denoised_batches("epi", mdata, indices, batch_size):
                out[start : start + len(block)] = block.astype(dtype, copy=False)
                start += len(block)
            handle.create_dataset("obs_names", data=np.asarray(cells, dtype="S"))
            handle.create_dataset("var_names", data=np.asarray(regions, dtype="S"))
        return path
