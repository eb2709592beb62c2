"""Activity heatmap and TF network plots: axes returned, files saved, clear errors."""

from __future__ import annotations

import anndata as ad
import matplotlib
import mudata
import numpy as np
import pandas as pd
import pytest

import scdcca

matplotlib.use("Agg")


def _with_activity(n_cells=60, n_sets=12):
    rng = np.random.default_rng(0)
    cells = [f"c{i}" for i in range(n_cells)]
    group = np.repeat(["a", "b", "c"], n_cells // 3)
    atac = ad.AnnData(np.zeros((n_cells, 2), dtype=np.float32), obs=pd.DataFrame(index=cells))
    z = pd.DataFrame(
        rng.normal(size=(n_cells, n_sets)), index=cells, columns=[f"set{i}" for i in range(n_sets)]
    )
    z.loc[group == "b", "set3"] += 5
    atac.obsm["chromvar_z"] = z
    rna = ad.AnnData(np.zeros((n_cells, 2), dtype=np.float32), obs=pd.DataFrame(index=cells))
    rna.var_names = ["Gata2", "Jun"]
    mdata = mudata.MuData({"rna": rna, "atac": atac})
    mdata.obs["group"] = group
    return mdata


def test_activity_heatmap(tmp_path):
    mdata = _with_activity()
    path = tmp_path / "heat.png"
    axes = scdcca.pl.activity_heatmap(mdata, groupby="group", n_top=5, save=str(path))
    assert path.stat().st_size > 0
    heat = axes[0]
    labels = [t.get_text() for t in heat.get_yticklabels()]
    assert len(labels) == 5
    assert labels[0] == "set3"
    assert [t.get_text() for t in heat.get_xticklabels()] == ["a", "b", "c"]
    values = heat.images[0].get_array()
    assert np.argmax(values[0]) == 1
    with pytest.raises(KeyError, match="motif_activity"):
        scdcca.pl.activity_heatmap(mdata["rna"], groupby="group")
    with pytest.raises(KeyError, match="not a column"):
        scdcca.pl.activity_heatmap(mdata, groupby="nope")
    with pytest.raises(KeyError, match="set99"):
        scdcca.pl.activity_heatmap(mdata, groupby="group", annotations=["set99"])


def test_tf_network_plot(tmp_path):
    net = pd.DataFrame(
        {
            "group": ["x"] * 4 + ["y"],
            "tf": ["Gata2", "Gata2", "Jun", "Jun", "Fos"],
            "target": ["A", "B", "A", "C", "A"],
            "coef": [0.8, -0.4, 0.3, 0.1, 0.5],
            "kept": [True, True, True, False, True],
        }
    )
    path = tmp_path / "net.png"
    ax = scdcca.pl.tf_network(net, group="x", save=str(path))
    assert path.stat().st_size > 0
    labels = {t.get_text() for t in ax.texts}
    assert labels == {"Gata2", "Jun", "A", "B"}  # the edge that was not kept is not drawn
    with pytest.raises(ValueError, match="group="):
        scdcca.pl.tf_network(net)
    with pytest.raises(KeyError, match="No edges"):
        scdcca.pl.tf_network(net, group="z")
    with pytest.raises(ValueError, match="lacks"):
        scdcca.pl.tf_network(net.drop(columns="coef"), group="x")
