"""The data sets shipped inside the package load offline, with the documented shapes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import scdcca


@pytest.mark.parametrize(
    ("loader", "shapes", "label", "n_labels"),
    [
        ("scicar_kidney", {"rna": 5000, "atac": None}, "cell_type", 14),
        ("snare_cortex", {"rna": 1677, "atac": 25734}, "subclass", 15),
        ("scmt_mesc", {"rna": 5000, "methylation": 15000}, "condition", 2),
    ],
)
def test_bundled_mudata_loads_with_its_labels(loader, shapes, label, n_labels):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no mudata deprecation notice on load
        mdata = getattr(scdcca.datasets, loader)()
    assert list(mdata.mod) == list(shapes)
    for name, n_vars in shapes.items():
        assert n_vars is None or mdata[name].n_vars == n_vars
    assert mdata.obs[label].nunique() == n_labels
    assert "source" in mdata.uns


def test_snare_cortex_has_its_libraries_as_a_batch_column():
    mdata = scdcca.datasets.snare_cortex()
    assert mdata.n_obs == 10309
    assert mdata.obs["sample"].nunique() == 12
    atac = mdata["atac"].X
    assert atac.max() > 1  # raw counts: binarize_epi=True at setup


def test_kidney_gene_table_covers_the_kidney_genes():
    genes = scdcca.datasets.scicar_kidney_genes()
    assert list(genes.columns) == ["gene", "chrom", "tss", "strand", "start", "end"]
    assert len(genes) == 4934
    assert genes["gene"].is_unique
    assert set(genes["gene"]) <= set(scdcca.datasets.scicar_kidney()["rna"].var_names)
    plus = genes["strand"] == "+"
    assert np.array_equal(genes.loc[plus, "tss"], genes.loc[plus, "start"])
    assert np.array_equal(genes.loc[~plus, "tss"], genes.loc[~plus, "end"])


def test_kidney_gene_table_keeps_the_genes_asked_for():
    genes = scdcca.datasets.scicar_kidney_genes(["Nphs1", "Umod", "not_a_gene"])
    assert sorted(genes["gene"]) == ["Nphs1", "Umod"]
