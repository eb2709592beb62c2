"""The scvi-tools field of each modality's matrix, checked as it is registered or transferred.

scvi-tools calls a field's ``register_field`` when :meth:`~scdcca.DCCA.setup_mudata`
registers a MuData and its ``transfer_field`` when a model reads a MuData it was not set up
with (or is loaded onto one). :class:`ModalityLayerField` checks there, with DCCA's messages, that
the matrix exists and holds real numbers, that its features are the model's (transfer), and
scans its values once: non-finite values are refused, empty cells and features and a CSC
layout give an :class:`~scdcca.data.InputWarning`, and what the scan found is kept in the
field's state registry, where the model reads the checks that depend on its likelihoods and
the epigenome's mean depth.
"""

from __future__ import annotations

from scvi.data.fields import LayerField, MuDataWrapper

from scdcca._constants import Modality

from ._checks import check_features_match, check_finite, check_matrix_type, get_matrix, warn_input
from ._scan import MatrixSummary, scan_matrix

#: Column of a modality's ``.obs`` in a padded twin (unpaired cells) flagging measured cells.
MEASURED_COLUMN = "_dcca_measured"
#: Key of the scan's findings in the field's state registry.
SCAN_KEY = "scan"
#: Frames between the field's warning and the user's call of ``setup_mudata``.
_SETUP_STACKLEVEL = 6


class ModalityLayerField(LayerField):
    """The matrix one modality is read from (``X`` or a layer), with DCCA's checks.

    Parameters
    ----------
    registry_key
        Key of the matrix in the registry.
    layer
        Layer of the modality (``None``: ``X``).
    role
        ``"rna"`` or ``"epi"``: NaN is allowed in the epigenome only, where it marks an entry
        that was not measured.
    modality
        Name of the modality in the MuData, for messages.
    """

    def __init__(self, registry_key: str, layer: str | None, *, role: Modality, modality: str):
        super().__init__(registry_key, layer, is_count_data=False, correct_data_format=False)
        self.role = role
        self.modality = modality

    def _matrix(self, adata):
        return get_matrix(adata, self.modality, self.attr_key, f"{self.role}_layer")

    def validate_field(self, adata) -> None:
        """The matrix exists and is a container of real numbers DCCA reads by rows."""
        check_matrix_type(self._matrix(adata), self.modality, self.attr_key)

    def register_field(self, adata) -> dict:
        """Register the matrix (read as it is, never converted) after one scan of its values.

        The state registry holds the scan's findings under ``"scan"`` (counts of problem
        values and the mean number of non-zero values per measured cell).
        """
        state = super().register_field(adata)
        matrix = self._matrix(adata)
        summary = scan_matrix(matrix)
        check_finite(summary, self.modality, self.attr_key, nan_is_missing=self.role == "epi")
        if MEASURED_COLUMN in adata.obs:  # a padded twin: its empty rows are not cells
            summary = summary.of_cells(adata.obs[MEASURED_COLUMN].to_numpy() > 0)
        warn_input(matrix, summary, self.modality, self.attr_key, _SETUP_STACKLEVEL)
        state[SCAN_KEY] = summary.findings()
        return state

    def transfer_field(self, state_registry: dict, adata_target, **kwargs) -> dict:
        """Register new data after checking they hold the model's features in its order."""
        check_features_match(
            adata_target.var_names,
            state_registry[self.COLUMN_NAMES_KEY],
            self.modality,
            self.role,
            self.registry_key,
        )
        return super().transfer_field(state_registry, adata_target, **kwargs)


#: :class:`ModalityLayerField` of one modality of a MuData (``mod_key``).
MuDataModalityLayerField = MuDataWrapper(ModalityLayerField)


def scan_findings(manager, registry_key: str) -> MatrixSummary:
    """What the registration scan of ``registry_key``'s matrix found (no per-cell counts)."""
    return MatrixSummary.from_findings(manager.get_state_registry(registry_key)[SCAN_KEY])
