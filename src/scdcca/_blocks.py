"""Row blocks: the one loop every streamed pass over a cells x features matrix uses."""

from __future__ import annotations

from collections.abc import Iterator


def row_slices(n_rows: int, step: int) -> Iterator[slice]:
    """Consecutive row slices of at most ``step`` rows covering ``n_rows`` rows."""
    step = max(int(step), 1)
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))
