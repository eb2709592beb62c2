"""Names shared across the package: registry keys and the keys results are written under."""

from __future__ import annotations

from types import MappingProxyType
from typing import Literal

#: Registry key of the RNA count matrix.
RNA_KEY = "rna"
#: Registry key of the epigenome matrix (ATAC, histone marks or methylation calls).
EPI_KEY = "epi"
#: Registry key of the batch covariate (scvi-tools' own name).
BATCH_KEY = "batch"

#: Registry key of each modality role's matrix.
TENSOR_KEYS = MappingProxyType({"rna": RNA_KEY, "epi": EPI_KEY})

#: The two modality roles DCCA knows, in the order the joint latent concatenates them.
MODALITIES = ("rna", "epi")
#: A modality role: ``"rna"`` or ``"epi"`` (the epigenome).
Modality = Literal["rna", "epi"]

#: Key under ``.obsm`` (of the MuData and of each modality) where latents are written.
LATENT_OBSM_KEY = "X_dcca"
#: Layer name of the denoised matrices written into each modality.
DENOISED_LAYER_KEY = "dcca_denoised"
#: Key under ``mdata.uns`` holding the settings of the model that wrote the results.
UNS_KEY = "dcca"

#: Registry keys of the per-cell flags "this modality was measured" (unpaired cells only).
OBSERVED_KEYS = MappingProxyType({"rna": "observed_rna", "epi": "observed_epi"})
#: Key under ``mdata.obsm``: which half of the joint latent was measured (True) or predicted.
OBSERVED_OBSM_KEY = "dcca_observed"
