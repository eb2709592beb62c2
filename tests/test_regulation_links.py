"""Peak names, gene tables and GTF files, correlations and peak-gene links."""

from __future__ import annotations

import gzip

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import scdcca
from scdcca.tl._correlation import PairData, correlations
from scdcca.tl._genome import gene_table
from scdcca.tl._links import candidate_pairs

from .conftest import DATA, read


def test_peak_name_formats():
    peaks = scdcca.tl.parse_peaks(["chr1-100-200", "chr2:5-15", "3-7-9", "chrX_10_20"])
    assert list(peaks["chrom_key"]) == ["1", "2", "3", "X"]
    assert list(peaks["start"]) == [100, 5, 7, 10]
    assert list(peaks["mid"]) == [150, 10, 8, 15]
    with pytest.raises(ValueError, match="chr1-100-200"):
        scdcca.tl.parse_peaks(["chr1-100-200", "Gata2"])


def test_read_gtf(tmp_path):
    rows = [
        '1\tHAVANA\tgene\t100\t900\t.\t+\t.\tgene_id "G1"; gene_name "Aaa";',
        '1\tHAVANA\ttranscript\t100\t900\t.\t+\t.\tgene_id "G1"; gene_name "Aaa";',
        '2\tHAVANA\tgene\t50\t400\t.\t-\t.\tgene_id "G2"; gene_name "Bbb";',
        'chrX\tENSEMBL\tgene\t7\t9\t.\t-\t.\tgene_id "G3";',
    ]
    path = tmp_path / "toy.gtf.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("#!genome-build toy\n" + "\n".join(rows) + "\n")
    genes = scdcca.tl.read_gtf(path)
    assert list(genes["gene"]) == ["Aaa", "Bbb", "G3"]
    assert list(genes["tss"]) == [100, 400, 9]
    table = gene_table(path)
    assert list(table["chrom_key"]) == ["1", "2", "X"]
    with pytest.raises(ValueError, match="lacks columns"):
        gene_table(pd.DataFrame({"name": ["a"]}))


def test_candidate_pairs_equal_brute_force():
    rng = np.random.default_rng(0)
    genes = pd.DataFrame(
        {
            "gene": [f"g{i}" for i in range(30)],
            "chrom": rng.choice(["chr1", "chr2"], 30),
            "tss": rng.integers(0, 100_000, 30),
            "strand": rng.choice(["+", "-"], 30),
        }
    )
    starts = rng.integers(0, 100_000, 200)
    names = [
        f"{c}-{s}-{s + 300}" for c, s in zip(rng.choice(["1", "2", "3"], 200), starts, strict=True)
    ]
    table = gene_table(genes)
    peaks = scdcca.tl.parse_peaks(names)
    g, p, d = candidate_pairs(table, peaks, window=5_000)
    got = set(zip(g.tolist(), p.tolist(), d.tolist(), strict=True))
    want = set()
    for i, gene in enumerate(table.itertuples()):
        for j, peak in enumerate(peaks.itertuples()):
            if peak.chrom_key == gene.chrom_key and abs(peak.mid - gene.tss) <= 5_000:
                sign = -1 if gene.strand == "-" else 1
                want.add((i, j, (peak.mid - gene.tss) * sign))
    assert got == want
    assert len(want) > 0


@pytest.mark.parametrize("as_sparse", [True, False])
def test_correlations_equal_numpy(as_sparse):
    rng = np.random.default_rng(1)
    counts = rng.poisson(2.0, size=(50, 8)).astype(np.float32)
    acc = (rng.random((50, 6)) < 0.4).astype(np.float32)
    acc[:, 5] = 1  # constant peak: correlation undefined
    data = PairData(
        sparse.csr_matrix(counts) if as_sparse else counts,
        sparse.csr_matrix(acc) if as_sparse else acc,
        normalize_rna=True,
    )
    genes, peaks = np.array([0, 3, 3, 7, 2]), np.array([1, 1, 4, 0, 5])
    r, r_extra = correlations(data, genes, peaks, extra_peaks=np.array([2, 0]), block_size=7)
    c64 = counts.astype(np.float64)
    expr = np.log1p(c64 / c64.sum(1, keepdims=True) * 1e4)
    for k, (g, p) in enumerate(zip(genes, peaks, strict=True)):
        if p == 5:
            assert np.isnan(r[k])
        else:
            np.testing.assert_allclose(r[k], np.corrcoef(expr[:, g], acc[:, p])[0, 1], atol=1e-10)
    for i, g in enumerate(np.unique(genes)):
        for j, p in enumerate([2, 0]):
            want = np.corrcoef(expr[:, g], acc[:, p])[0, 1]
            np.testing.assert_allclose(r_extra[i, j], want, atol=1e-10)


def _planted_mudata(seed=0, n_cells=400):
    """Genes on chr1 with nearby peaks; half the genes drive one nearby peak."""
    rng = np.random.default_rng(seed)
    n_genes = 20
    genes = pd.DataFrame(
        {
            "gene": [f"G{i}" for i in range(n_genes)],
            "chrom": "chr1",
            "tss": 1_000_000 * (np.arange(n_genes) + 1),
            "strand": "+",
        }
    )
    rate = rng.gamma(2.0, 1.0, size=(n_cells, n_genes))
    counts = rng.poisson(rate * 5).astype(np.float32)
    names, columns, planted = [], [], set()
    for i in range(n_genes):
        for offset in (-20_000, 3_000, 40_000):
            start = 1_000_000 * (i + 1) + offset
            names.append(f"1-{start}-{start + 400}")  # no chr prefix, as in A549
            if offset == 3_000 and i % 2 == 0:
                p = 1 / (1 + np.exp(-(rate[:, i] - 2.0) * 2))
                planted.add((f"G{i}", names[-1]))
            else:
                p = np.full(n_cells, 0.3)
            columns.append(rng.random(n_cells) < p)
    for c in range(2, 6):  # trans peaks for the background
        for k in range(60):
            names.append(f"{c}-{k * 10_000}-{k * 10_000 + 300}")
            columns.append(rng.random(n_cells) < rng.uniform(0.1, 0.6))
    acc = np.column_stack(columns).astype(np.float32)
    cells = [f"c{i}" for i in range(n_cells)]
    rna = ad.AnnData(sparse.csr_matrix(counts), obs=pd.DataFrame(index=cells))
    rna.var_names = genes["gene"]
    atac = ad.AnnData(sparse.csr_matrix(acc), obs=pd.DataFrame(index=cells))
    atac.var_names = names
    return mudata.MuData({"rna": rna, "atac": atac}), genes, planted


def test_links_recover_planted_pairs():
    mdata, genes, planted = _planted_mudata()
    links = scdcca.tl.peak_gene_links(mdata, genes, window=50_000, n_background=40, n_bins=3)
    found = set(zip(links["gene"], links["peak"], strict=True))
    print(
        f"\nplanted links found: {len(found & planted)}/{len(planted)}; "
        f"other links: {len(found - planted)} of {3 * 20 - len(planted)} other pairs"
    )
    assert planted <= found
    assert len(found - planted) <= 3
    assert (links["qvalue"] <= 0.05).all()
    assert (links["distance"].abs() <= 50_000).all()
    everything = scdcca.tl.peak_gene_links(mdata, genes, window=50_000, fdr=None)
    assert len(everything) == 60
    assert everything["pvalue"].between(0, 1).all()


def test_links_on_real_data_and_errors(kidney):
    genes = DATA / "genes_mm10.tsv.gz"
    links = scdcca.tl.peak_gene_links(kidney, genes, window=200_000, fdr=None)
    assert len(links) > 0
    assert links["distance"].abs().max() <= 200_000
    peaks = scdcca.tl.parse_peaks(links["peak"])
    table = gene_table(genes)
    assert (peaks["chrom"].to_numpy() == table.loc[links["gene"], "chrom"].to_numpy()).all()
    assert links["qvalue"].between(0, 1).all()
    with pytest.raises(KeyError, match="write_results"):
        scdcca.tl.peak_gene_links(kidney, genes, layer="dcca_denoised")
    elsewhere = table.assign(chrom="scaffold_1")
    with pytest.raises(ValueError, match="same genome"):
        scdcca.tl.peak_gene_links(kidney, elsewhere)
    with pytest.raises(ValueError, match="None of the 5000 genes"):
        scdcca.tl.peak_gene_links(kidney, table.assign(gene="human_" + table["gene"]))
    with pytest.raises(TypeError, match="MuData"):
        scdcca.tl.peak_gene_links(kidney["atac"], genes)


def test_a549_peaks_without_chr_prefix_link_to_hg19_genes():
    mdata = read("scicar_a549")
    links = scdcca.tl.peak_gene_links(mdata, DATA / "genes_hg19.tsv.gz", window=100_000, fdr=None)
    assert len(links) > 100
    assert links["peak"].str.match(r"^\d+|^[XY]").all()
    assert links["chrom"].str.startswith("chr").all()
