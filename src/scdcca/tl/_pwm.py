"""Motifs as count matrices, log-odds scoring matrices and p-value score thresholds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Log-odds scores are rounded to 1 / SCALE bits, so score distributions are exact integers.
SCALE = 100


@dataclass
class Motif:
    """A motif: name, identifier and a 4 x length count matrix (rows A, C, G, T)."""

    name: str
    motif_id: str
    counts: np.ndarray


def _as_matrix(name: str, values) -> np.ndarray:
    """A 4 x L float matrix from a 4 x L or L x 4 array-like or an A/C/G/T mapping."""
    if isinstance(values, Mapping) or hasattr(values, "keys"):
        try:
            values = [list(values[b]) for b in "ACGT"]
        except (KeyError, TypeError) as err:
            raise ValueError(f"Motif {name!r}: a mapping needs keys A, C, G and T.") from err
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or 4 not in matrix.shape:
        raise ValueError(
            f"Motif {name!r} has shape {matrix.shape}; give a 4 x length (rows A, C, G, T) or "
            "length x 4 matrix of counts or frequencies."
        )
    if matrix.shape[0] != 4:
        matrix = matrix.T
    if matrix.shape[1] == 0 or not np.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError(f"Motif {name!r} must be non-empty with finite, non-negative entries.")
    if np.any(matrix.sum(0) == 0):
        raise ValueError(f"Motif {name!r} has a position with no counts.")
    return matrix


def _jaspar(release: str, jaspar_kwargs: Mapping | None) -> list[Motif]:
    try:
        from pyjaspar import jaspardb
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"motifs={release!r} reads the JASPAR database shipped with the `pyjaspar` "
            "package: `pip install 'scdcca[motifs]'`, or pass your own count matrices."
        ) from err
    db = jaspardb(release=release)
    kwargs = {"collection": "CORE", "tax_group": ["vertebrates"]}
    kwargs.update(jaspar_kwargs or {})
    records = db.fetch_motifs(**kwargs)
    if not records:
        raise ValueError(f"No {release} motifs match {kwargs}.")
    return [
        Motif(str(m.name), str(m.matrix_id), _as_matrix(str(m.name), m.counts)) for m in records
    ]


def load_motifs(
    motifs: str | Mapping[str, object] | Sequence[object],
    jaspar_kwargs: Mapping | None = None,
) -> list[Motif]:
    """Motifs from a JASPAR release name, a name -> matrix mapping or motif objects.

    Parameters
    ----------
    motifs
        ``"JASPAR2024"`` (any release :mod:`pyjaspar` ships; CORE vertebrates unless
        ``jaspar_kwargs`` says otherwise), a mapping name -> count or frequency matrix
        (4 x length with rows A, C, G, T, or length x 4), or a sequence of Biopython /
        pyjaspar motif objects (with ``.counts`` and ``.name``).
    jaspar_kwargs
        Passed to :meth:`pyjaspar.jaspardb.fetch_motifs`.
    """
    if isinstance(motifs, str):
        if not motifs.upper().startswith("JASPAR"):
            raise ValueError(
                f"motifs={motifs!r}: a string must name a JASPAR release such as 'JASPAR2024'; "
                "otherwise pass a mapping name -> count matrix."
            )
        return _jaspar(motifs.upper(), jaspar_kwargs)
    if isinstance(motifs, Mapping):
        out = [Motif(str(k), str(k), _as_matrix(str(k), v)) for k, v in motifs.items()]
    else:
        out = []
        for m in motifs:
            if not hasattr(m, "counts"):
                raise TypeError(
                    f"Motif objects need a `.counts` matrix (Biopython motifs); got "
                    f"{type(m).__name__}. Pass a mapping name -> matrix instead."
                )
            name = str(getattr(m, "name", None) or getattr(m, "matrix_id", "motif"))
            out.append(Motif(name, str(getattr(m, "matrix_id", name)), _as_matrix(name, m.counts)))
    if not out:
        raise ValueError("No motifs given.")
    return out


def log_odds(counts: np.ndarray, background: np.ndarray, pseudocount: float = 0.8) -> np.ndarray:
    """Integer log-odds matrix (4 x L, units of 1 / SCALE bits) of a count matrix.

    Columns that sum to about 1 are frequencies and are scaled to 100 sites first. The
    pseudocount is split over the bases in proportion to ``background``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(0)
    if np.allclose(totals, 1.0, atol=0.02):
        counts = counts * 100.0
        totals = counts.sum(0)
    bg = np.asarray(background, dtype=np.float64)[:, None]
    probs = (counts + pseudocount * bg) / (totals + pseudocount)
    return np.round(SCALE * np.log2(probs / bg)).astype(np.int64)


def score_distribution(weights: np.ndarray, background: np.ndarray) -> tuple[int, np.ndarray]:
    """Exact distribution of the integer score of a random background sequence.

    Returns the smallest possible score and the probabilities of that score, that score
    plus 1, and so on up to the largest possible score.
    """
    low = weights.min(0)
    span = weights - low
    dist = np.ones(1)
    for j in range(weights.shape[1]):
        new = np.zeros(len(dist) + int(span[:, j].max()))
        for b in range(4):
            shift = int(span[b, j])
            new[shift : shift + len(dist)] += background[b] * dist
        dist = new
    return int(low.sum()), dist


def score_threshold(weights: np.ndarray, background: np.ndarray, p_value: float) -> int:
    """Smallest integer score ``t`` with P(score >= t) <= ``p_value`` for background sequence.

    If even the best score is more likely than ``p_value``, the motif cannot reach it and the
    threshold is one above the best score (no position matches).
    """
    low, dist = score_distribution(weights, background)
    tail = np.cumsum(dist[::-1])[::-1]  # tail[k] = P(score >= low + k)
    ok = np.flatnonzero(tail <= p_value * (1 + 1e-9))
    return low + (int(ok[0]) if len(ok) else len(dist))


def reverse_complement(weights: np.ndarray) -> np.ndarray:
    """Scoring matrix of the opposite strand (A<->T, C<->G, positions reversed)."""
    return weights[::-1, ::-1].copy()
