"""Small input checks shared by the regulation tools."""

from __future__ import annotations

from anndata import AnnData
from mudata import MuData


def require_anndata(adata, function: str) -> AnnData:
    """``adata`` is an AnnData (a MuData gets a message naming the modality to pass)."""
    if isinstance(adata, MuData):
        raise TypeError(
            f"{function} works on one modality: pass the ATAC AnnData, e.g. "
            f"`{function}(mdata['atac'], ...)`, not the MuData."
        )
    if not isinstance(adata, AnnData):
        raise TypeError(f"{function} needs an AnnData, got {type(adata).__name__}.")
    if not adata.var_names.is_unique:
        raise ValueError(
            "Peak names are not unique; make them unique with `adata.var_names_make_unique()`."
        )
    return adata


def check_free(adata: AnnData, places: dict[str, list[str]], overwrite: bool) -> None:
    """Refuse to overwrite existing outputs unless asked to.

    ``places`` maps an attribute (``"obsm"``, ``"varm"``, ``"var"``, ``"uns"``) to keys.
    """
    if overwrite:
        return
    taken = [
        f"{attr}[{key!r}]"
        for attr, keys in places.items()
        for key in keys
        if key in getattr(adata, attr)
    ]
    if taken:
        raise KeyError(
            f"{', '.join(taken)} already exist(s). Pass overwrite=True to replace, or choose "
            "another key_added."
        )


def modality_names(mdata: MuData, rna: str | None, epi: str | None) -> tuple[str, str]:
    """Names of the RNA and the epigenome modality.

    Defaults: the ones DCCA wrote into ``mdata.uns["dcca"]``, else ``"rna"`` and the only other
    modality.
    """
    if not isinstance(mdata, MuData):
        raise TypeError(
            f"This function needs the paired MuData (RNA and epigenome), got "
            f"{type(mdata).__name__}."
        )
    settings = mdata.uns.get("dcca", {})
    rna = rna or settings.get("rna_modality") or ("rna" if "rna" in mdata.mod else None)
    if epi is None:
        epi = settings.get("epi_modality")
        others = [m for m in mdata.mod if m != rna]
        if epi is None and len(others) == 1:
            epi = others[0]
    for role, name in (("rna", rna), ("epi", epi)):
        if name is None or name not in mdata.mod:
            raise KeyError(
                f"Cannot tell which modality is {role!r} (got {name!r}); the MuData has "
                f"{list(mdata.mod)}. Pass {role}='<modality name>'."
            )
    if rna == epi:
        raise ValueError(f"rna and epi both name modality {rna!r}; they must differ.")
    a, b = mdata.mod[rna], mdata.mod[epi]
    if a.n_obs != b.n_obs or not (a.obs_names == b.obs_names).all():
        raise ValueError(
            f"Modalities {rna!r} and {epi!r} do not hold the same cells in the same order; keep "
            "the paired cells with `muon.pp.intersect_obs(mdata)`."
        )
    return rna, epi
