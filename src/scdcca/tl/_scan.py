"""Which peaks hold a motif match: a vectorised numpy scan and a compiled one (numba)."""

from __future__ import annotations

import numpy as np

#: Score of any window that covers an unknown base or crosses into the next peak.
_MASKED = -(10**7)


def _extended(weights: np.ndarray) -> np.ndarray:
    """L x 5 matrix: the scores of A, C, G, T at each position and a masked score for N."""
    out = np.full((weights.shape[1], 5), _MASKED, dtype=np.int64)
    out[:, :4] = weights.T
    return out


def _best_scores_numpy(codes: np.ndarray, offsets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Best window score of each peak on one strand, summing one motif position at a time."""
    table = _extended(weights)
    length = table.shape[0]
    padded = np.concatenate([codes, np.full(length, 4, dtype=np.uint8)])
    n = len(codes)
    scores = np.zeros(n, dtype=np.int64)
    for j in range(length):
        scores += table[j, padded[j : j + n]]
    return np.maximum.reduceat(scores, offsets[:-1])


def hits_numpy(
    codes: np.ndarray,
    offsets: np.ndarray,
    weights: np.ndarray,
    rc_weights: np.ndarray,
    threshold: int,
) -> np.ndarray:
    """Boolean per peak: some window on either strand scores ``>= threshold``."""
    best = np.maximum(
        _best_scores_numpy(codes, offsets, weights),
        _best_scores_numpy(codes, offsets, rc_weights),
    )
    return best >= threshold


def _compile():
    import numba

    @numba.njit(nogil=True)
    def _window(codes, i, table, bound, threshold):  # pragma: no cover
        score = 0
        for j in range(table.shape[0]):
            b = codes[i + j]
            if b > 3:
                return False
            score += table[j, b]
            if score + bound[j] < threshold:
                return False
        return score >= threshold

    @numba.njit(nogil=True)
    def _hits(codes, offsets, fwd, rev, bound_fwd, bound_rev, threshold):  # pragma: no cover
        n_peaks = len(offsets) - 1
        length = fwd.shape[0]
        out = np.zeros(n_peaks, dtype=np.bool_)
        for p in range(n_peaks):
            for i in range(offsets[p], offsets[p + 1] - length):
                if _window(codes, i, fwd, bound_fwd, threshold) or _window(
                    codes, i, rev, bound_rev, threshold
                ):
                    out[p] = True
                    break
        return out

    return _hits


_KERNEL = None


def hits_compiled(
    codes: np.ndarray,
    offsets: np.ndarray,
    weights: np.ndarray,
    rc_weights: np.ndarray,
    threshold: int,
) -> np.ndarray:
    """Same as :func:`hits_numpy`, compiled with numba, abandoning hopeless windows early."""
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _compile()
    fwd, rev = weights.T.copy(), rc_weights.T.copy()
    # bound[j]: the most the positions after j can still add.
    bound_fwd = np.concatenate([np.cumsum(fwd.max(1)[::-1])[::-1][1:], [0]])
    bound_rev = np.concatenate([np.cumsum(rev.max(1)[::-1])[::-1][1:], [0]])
    return _KERNEL(codes, offsets, fwd, rev, bound_fwd, bound_rev, int(threshold))


def numba_available() -> bool:
    """Whether the compiled scan can be used."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True
