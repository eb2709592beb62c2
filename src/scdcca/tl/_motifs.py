"""Motif matches in peaks: scan peak sequences with log-odds scoring matrices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ._checks import check_free, require_anndata
from ._genome import parse_peaks
from ._pwm import SCALE, load_motifs, log_odds, reverse_complement, score_threshold
from ._scan import hits_compiled, hits_numpy, numba_available
from ._sequence import base_frequencies, gc_content, peak_sequences


def _unique_names(names: list[str], ids: list[str]) -> list[str]:
    counts = pd.Series(names).value_counts()
    return [n if counts[n] == 1 else f"{n}_{i}" for n, i in zip(names, ids, strict=True)]


def motif_matches(
    adata: AnnData,
    fasta: str | Path | Mapping[str, str],
    motifs: str | Mapping[str, object] | Sequence[object] = "JASPAR2024",
    p_value: float = 5e-5,
    background: Literal["peaks", "uniform"] | Sequence[float] = "peaks",
    pseudocount: float = 0.8,
    jaspar_kwargs: Mapping | None = None,
    key_added: str = "motif_matches",
    gc_key: str = "gc_content",
    overwrite: bool = False,
    engine: Literal["auto", "numba", "numpy"] = "auto",
) -> None:
    """Which peaks hold a match to each motif (and each peak's GC content).

    Every peak is scanned on both strands with each motif's log-odds scoring matrix; a peak
    matches a motif if some window scores at least the score whose p-value under the
    background base composition is ``p_value`` (computed exactly from the matrix, as
    motifmatchr/MOODS do). Scores are rounded to 0.01 bits.

    Parameters
    ----------
    adata
        Peaks modality, e.g. ``mdata["atac"]``, with peaks named ``chr1-100-200``,
        ``chr1:100-200`` or ``1-100-200`` (0-based starts, as in BED files).
    fasta
        Genome FASTA (plain or gzipped, read one chromosome at a time) or a mapping
        chromosome -> sequence. ``chr1`` and ``1`` are matched to each other.
    motifs
        ``"JASPAR2024"`` or another release shipped by ``pyjaspar``
        (``pip install 'scdcca[motifs]'``; CORE vertebrates unless ``jaspar_kwargs`` says
        otherwise), a mapping name -> count or frequency matrix (4 x length, rows A, C, G, T),
        or Biopython motif objects.
    p_value
        Largest p-value of a window score that counts as a match.
    background
        Base frequencies for log-odds and p-values: those of all peak sequences
        (``"peaks"``), ``"uniform"``, or four numbers for A, C, G, T.
    pseudocount
        Total pseudocount added to each motif position, split by the background.
    jaspar_kwargs
        Selection passed to :meth:`pyjaspar.jaspardb.fetch_motifs`, e.g.
        ``{"tax_group": ["vertebrates"], "collection": "CORE"}``.
    key_added
        Where the matches go (see Returns).
    gc_key
        ``adata.var`` column for the GC content of each peak.
    overwrite
        Replace existing outputs under these keys.
    engine
        ``"numba"`` (compiled, stops at a peak's first match), ``"numpy"`` (vectorised), or
        ``"auto"``: numba when it is installed.

    Returns
    -------
    Nothing; writes

    - ``adata.varm[key_added]``: peaks x motifs sparse boolean matrix (CSR);
    - ``adata.uns[key_added]``: ``names`` (motif names, made unique with the motif id),
      ``ids``, ``thresholds`` (in bits), ``p_value``, ``background``;
    - ``adata.var[gc_key]``: fraction of G/C bases in each peak.
    """
    adata = require_anndata(adata, "motif_matches")
    check_free(adata, {"varm": [key_added], "uns": [key_added], "var": [gc_key]}, overwrite)
    if not 0 < p_value < 1:
        raise ValueError(f"`p_value` must be between 0 and 1, got {p_value}.")
    if engine not in ("auto", "numba", "numpy"):
        raise ValueError(f"`engine` must be 'auto', 'numba' or 'numpy', got {engine!r}.")
    use_numba = engine == "numba" or (engine == "auto" and numba_available())
    motif_list = load_motifs(motifs, jaspar_kwargs)
    peaks = parse_peaks(adata.var_names)
    codes, offsets = peak_sequences(peaks, fasta)
    if isinstance(background, str):
        if background not in ("peaks", "uniform"):
            raise ValueError(
                f"`background` must be 'peaks', 'uniform' or four frequencies, got {background!r}."
            )
        bg = base_frequencies(codes) if background == "peaks" else np.full(4, 0.25)
    else:
        bg = np.asarray(background, dtype=np.float64)
        if bg.shape != (4,) or (bg <= 0).any():
            raise ValueError("`background` needs four positive frequencies for A, C, G, T.")
        bg = bg / bg.sum()
    scan = hits_compiled if use_numba else hits_numpy
    columns, thresholds = [], []
    for motif in motif_list:
        weights = log_odds(motif.counts, bg, pseudocount)
        threshold = score_threshold(weights, bg, p_value)
        hit = scan(codes, offsets, weights, reverse_complement(weights), threshold)
        columns.append(np.flatnonzero(hit))
        thresholds.append(threshold / SCALE)
    indices = np.concatenate(columns) if columns else np.array([], dtype=np.int64)
    motif_index = np.repeat(np.arange(len(columns)), [len(c) for c in columns])
    matches = sparse.csc_matrix(
        (np.ones(len(indices), dtype=bool), (indices, motif_index)),
        shape=(adata.n_vars, len(motif_list)),
    ).tocsr()
    names = [m.name for m in motif_list]
    ids = [m.motif_id for m in motif_list]
    adata.varm[key_added] = matches
    adata.uns[key_added] = {
        "names": np.asarray(_unique_names(names, ids), dtype=object),
        "ids": np.asarray(ids, dtype=object),
        "thresholds": np.asarray(thresholds),
        "p_value": float(p_value),
        "background": bg,
    }
    adata.var[gc_key] = gc_content(codes, offsets)
