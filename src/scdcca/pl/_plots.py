"""UMAPs of both latents side by side and the training phases."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import scanpy as sc
from anndata import AnnData
from mudata import MuData

from scdcca._constants import LATENT_OBSM_KEY, UNS_KEY

if TYPE_CHECKING:
    from scdcca.model import DCCA


def _finish(fig, save: str | None):
    if save:
        fig.savefig(save, dpi=150, bbox_inches="tight")
    return fig.axes


def latents(
    mdata: MuData,
    color: str,
    use_rep: str = LATENT_OBSM_KEY,
    n_neighbors: int = 15,
    save: str | None = None,
    random_state: int = 0,
    transformer: str | None = "sklearn",
) -> list:
    """UMAPs of the RNA and the epigenome latent side by side, coloured by an obs column.

    Works on a MuData after :meth:`scdcca.DCCA.write_results`. The UMAPs are computed on
    throw-away AnnData objects, so ``mdata`` is not changed.

    Parameters
    ----------
    mdata
        MuData with ``mdata[mod].obsm[use_rep]`` for both modalities named in
        ``mdata.uns["dcca"]``.
    color
        Column of ``mdata.obs`` to colour by.
    use_rep
        obsm key of the latents.
    n_neighbors
        Neighbours for the UMAP graph.
    save
        File to save the figure to.
    random_state
        UMAP seed.
    transformer
        Passed to :func:`scanpy.pp.neighbors`. ``"sklearn"`` (default): exact neighbours,
        fast on latents of a few dozen dimensions and independent of pynndescent, which
        scanpy uses for 8,192 cells or more when this is ``None``.

    Returns
    -------
    The two axes.
    """
    if UNS_KEY not in mdata.uns:
        raise KeyError("No DCCA results in this MuData: run `model.write_results(mdata)` first.")
    if color not in mdata.obs:
        raise KeyError(f"{color!r} is not a column of mdata.obs; columns: {list(mdata.obs)}.")
    names = [mdata.uns[UNS_KEY]["rna_modality"], mdata.uns[UNS_KEY]["epi_modality"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, name in zip(axes, names, strict=True):
        view = AnnData(
            np.zeros((mdata.n_obs, 0), dtype=np.float32),
            obs=mdata.obs[[color]].copy(),
            obsm={"latent": np.asarray(mdata.mod[name].obsm[use_rep])},
        )
        sc.pp.neighbors(view, use_rep="latent", n_neighbors=n_neighbors, transformer=transformer)
        sc.tl.umap(view, random_state=random_state)
        legend = "right margin" if ax is axes[-1] else None
        sc.pl.umap(
            view,
            color=color,
            ax=ax,
            show=False,
            title=f"{name} latent",
            legend_loc=legend,
            frameon=False,
        )
    fig.tight_layout()
    return _finish(fig, save)


def training(model: DCCA, save: str | None = None) -> list:
    """Validation loss and attention distance per epoch, phases shaded.

    Parameters
    ----------
    model
        A trained :class:`~scdcca.DCCA`.
    save
        File to save the figure to.

    Returns
    -------
    The two axes.
    """
    epochs = model.history["epochs"]
    fig, (ax_loss, ax_dist) = plt.subplots(1, 2, figsize=(11, 3.8))
    loss = epochs["validation_loss"].where(epochs["validation_loss"].notna(), epochs["train_loss"])
    for phase, rows in epochs.groupby("phase", sort=True):
        label = f"{phase}: {rows['phase_name'].iloc[0]}"
        ax_loss.plot(rows["epoch"], loss[rows.index], label=label)
        ax_dist.plot(rows["epoch"], rows["attention_distance"], label=label)
    ax_loss.set(xlabel="epoch", ylabel="student loss", title="loss per phase", yscale="log")
    ax_dist.set(xlabel="epoch", ylabel="mean ||z_rna - z_epi||^2", title="attention distance")
    ax_dist.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _finish(fig, save)
