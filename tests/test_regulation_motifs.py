"""Motif scanning against brute force on a small synthetic genome with planted motifs."""

from __future__ import annotations

import gzip
import itertools

import anndata as ad
import numpy as np
import pytest

import scdcca
from scdcca.tl._pwm import load_motifs, log_odds, reverse_complement, score_threshold
from scdcca.tl._scan import hits_numpy, numba_available
from scdcca.tl._sequence import encode, peak_sequences

BASES = "ACGT"
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def _random_motif(rng, length):
    counts = rng.integers(0, 4, size=(4, length)).astype(float)
    counts[rng.integers(0, 4, size=length), np.arange(length)] += 40
    return counts


def _consensus(counts):
    return "".join(BASES[i] for i in counts.argmax(0))


def _brute_best(sequence, weights):
    """Best score over all windows and both strands, by explicit loops."""
    length = weights.shape[1]
    best = None
    for strand in (sequence, sequence.translate(COMPLEMENT)[::-1]):
        for i in range(len(strand) - length + 1):
            window = strand[i : i + length]
            if any(b not in BASES for b in window):
                continue
            score = sum(int(weights[BASES.index(b), j]) for j, b in enumerate(window))
            best = score if best is None else max(best, score)
    return best


@pytest.fixture(scope="module")
def genome():
    rng = np.random.default_rng(7)
    motifs = {"PLANT": _random_motif(rng, 8), "OTHER": _random_motif(rng, 7)}
    chroms = {c: list(rng.choice(list(BASES), size=6000)) for c in ("chr1", "chr2")}
    chroms["chr2"][100:110] = list("NNNNNNNNNN")
    peaks, planted = [], []
    for k in range(40):
        chrom = "chr1" if k % 2 == 0 else "chr2"
        start = 120 * (k // 2) + 40
        end = start + 90
        if k % 3 == 0:  # plant PLANT (forward or reverse strand) in a third of the peaks
            site = _consensus(motifs["PLANT"])
            if k % 2:
                site = site.translate(COMPLEMENT)[::-1]
            chroms[chrom][start + 30 : start + 38] = list(site)
            planted.append(k)
        peaks.append(f"{chrom}-{start}-{end}" if k % 4 else f"{chrom}:{start}-{end}")
    return {c: "".join(s) for c, s in chroms.items()}, peaks, motifs, planted


def _write_fasta(path, chroms, width=60):
    lines = []
    for name, seq in chroms.items():
        lines.append(f">{name} synthetic")
        lines.extend(seq[i : i + width] for i in range(0, len(seq), width))
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")


def test_score_threshold_matches_enumeration_of_all_sequences():
    rng = np.random.default_rng(0)
    background = np.array([0.3, 0.2, 0.2, 0.3])
    weights = log_odds(_random_motif(rng, 6), background)
    scores = np.zeros(4**6, dtype=np.int64)
    probs = np.ones(4**6)
    for n, seq in enumerate(itertools.product(range(4), repeat=6)):
        scores[n] = weights[list(seq), np.arange(6)].sum()
        probs[n] = np.prod(background[list(seq)])
    for p_value in (1e-2, 1e-3, 3e-4):
        t = score_threshold(weights, background, p_value)
        assert probs[scores >= t].sum() <= p_value
        assert probs[scores >= t - 1].sum() > p_value
    # a p-value below that of the best sequence: nothing can match
    assert score_threshold(weights, background, 1e-12) > weights.max(0).sum()


@pytest.mark.parametrize("p_value", [1e-2, 1e-3])
def test_score_threshold_false_positive_rate_on_random_sequences(p_value):
    rng = np.random.default_rng(11)
    background = np.array([0.3, 0.2, 0.2, 0.3])
    counts = _random_motif(rng, 8)
    weights = log_odds(counts, background)
    t = score_threshold(weights, background, p_value)
    n = 400_000
    sequences = rng.choice(4, size=(n, 8), p=background)
    hits = int((weights[sequences, np.arange(8)].sum(1) >= t).sum())
    # a binomial count with mean at most p_value * n; 8 standard deviations of slack
    assert hits <= p_value * n + 8 * np.sqrt(p_value * n)
    planted = weights[counts.argmax(0), np.arange(8)].sum()
    assert planted >= t


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_motif_matches_equal_brute_force_scan(genome, tmp_path, engine):
    if engine == "numba" and not numba_available():
        pytest.skip("numba is not installed")
    chroms, peaks, motifs, planted = genome
    fasta = tmp_path / "toy.fa.gz"
    _write_fasta(fasta, chroms)
    adata = ad.AnnData(np.zeros((3, len(peaks)), dtype=np.float32))
    adata.var_names = peaks
    scdcca.tl.motif_matches(adata, fasta, motifs=motifs, p_value=1e-4, engine=engine)
    matches = adata.varm["motif_matches"].toarray()
    info = adata.uns["motif_matches"]
    assert list(info["names"]) == ["PLANT", "OTHER"]
    parsed = scdcca.tl.parse_peaks(peaks)
    background = info["background"]
    for j, counts in enumerate(motifs.values()):
        weights = log_odds(counts, background)
        threshold = score_threshold(weights, background, 1e-4)
        for i, row in enumerate(parsed.itertuples()):
            sequence = chroms[row.chrom][row.start : row.end]
            best = _brute_best(sequence, weights)
            assert matches[i, j] == (best is not None and best >= threshold), (peaks[i], j)
    assert matches[planted, 0].all()
    print(
        f"\nplanted PLANT recovered in {matches[planted, 0].sum()}/{len(planted)} peaks; "
        f"{matches[:, 0].sum() - len(planted)} further peaks match by chance"
    )
    gc = [
        np.mean([b in "GC" for b in chroms[r.chrom][r.start : r.end] if b in BASES])
        for r in parsed.itertuples()
    ]
    np.testing.assert_allclose(adata.var["gc_content"], gc)


def test_numpy_scan_equals_brute_force_on_random_sequence():
    rng = np.random.default_rng(3)
    weights = log_odds(_random_motif(rng, 5), np.full(4, 0.25))
    pieces = [
        "".join(rng.choice(list("ACGTN"), size=n, p=[0.24] * 4 + [0.04]))
        for n in (3, 5, 30, 41, 12)
    ]
    codes = np.concatenate([np.append(encode(p), 4) for p in pieces]).astype(np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(p) + 1 for p in pieces])])
    for threshold in (-200, 0, 300, 600):
        hit = hits_numpy(codes, offsets, weights, reverse_complement(weights), threshold)
        expected = [(_brute_best(p, weights) or -(10**9)) >= threshold for p in pieces]
        assert list(hit) == expected


def test_chromosomes_match_without_chr_prefix():
    peaks = scdcca.tl.parse_peaks(["1-2-6", "chrM:0-3"])
    codes, offsets = peak_sequences(peaks, {"chr1": "AACCGGTT", "MT": "GGGA"})
    assert codes[offsets[0] : offsets[1] - 1].tolist() == [1, 1, 2, 2]
    assert codes[offsets[1] : offsets[2] - 1].tolist() == [2, 2, 2]


def test_bad_inputs_name_the_fix(tmp_path, kidney):
    atac = kidney["atac"]
    with pytest.raises(TypeError, match=r"mdata\['atac'\]"):
        scdcca.tl.motif_matches(kidney, {"chr1": "A"}, motifs={"m": np.ones((4, 3))})
    with pytest.raises(FileNotFoundError, match="FASTA"):
        scdcca.tl.motif_matches(atac, tmp_path / "none.fa", motifs={"m": np.ones((4, 3))})
    with pytest.raises(ValueError, match="None of the peaks' chromosomes"):
        scdcca.tl.motif_matches(atac, {"chrZ": "ACGT"}, motifs={"m": np.ones((4, 3))})
    with pytest.raises(ValueError, match="4 x length"):
        load_motifs({"m": np.ones((3, 5))})
    assert "motif_matches" not in atac.varm


def test_jaspar_release_loads_lazily():
    pytest.importorskip("pyjaspar")
    motifs = load_motifs("JASPAR2024", {"collection": "CORE", "tax_group": ["vertebrates"]})
    assert len(motifs) > 500
    names = {m.name.upper() for m in motifs}
    assert {"GATA2", "JUN", "CTCF"} <= names
    assert all(m.counts.shape[0] == 4 for m in motifs)
