"""Checks on the settings of :class:`~scdcca.DCCA`, its ``train`` and its getters.

Each check refuses a value that cannot work, before anything is built or trained, with a
message naming the argument, what was passed and what is accepted.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np


def positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an ``int`` of at least ``minimum`` (``bool`` and fractions refused)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def finite_number(
    name: str,
    value,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = True,
) -> float:
    """``value`` as a finite ``float`` inside the given range."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    value = float(value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (math.isfinite(value) and above and below):
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(
            f"{name} must be a finite number in {left}{low}, {high}{right}, got {value}."
        )
    return value


def check_architecture(n_latent, n_hidden, n_layers, dropout_rate, rna_input_dropout) -> None:
    """Refuse network settings that cannot learn."""
    positive_int("n_latent", n_latent)
    positive_int("n_hidden", n_hidden)
    positive_int("n_layers", n_layers)
    finite_number("dropout_rate", dropout_rate, 0.0, 1.0)
    finite_number("rna_input_dropout", rna_input_dropout, 0.0, 1.0)


def check_training(
    max_epochs_per_phase,
    n_cycles,
    beta1,
    beta2,
    lr,
    batch_size,
    patience,
    train_size,
    validation_size,
) -> None:
    """Refuse ``train`` settings that cannot train."""
    positive_int("max_epochs_per_phase", max_epochs_per_phase)
    positive_int("n_cycles", n_cycles, minimum=0)
    finite_number("beta1", beta1, 0.0)
    if beta2 is not None:
        finite_number("beta2", beta2, 0.0)
    finite_number("lr", lr, 0.0, low_open=True)
    positive_int("batch_size", batch_size)
    positive_int("patience", patience)
    train_size = finite_number("train_size", train_size, 0.0, 1.0, low_open=True, high_open=False)
    if validation_size is not None:
        validation_size = finite_number("validation_size", validation_size, 0.0, 1.0)
        if train_size + validation_size > 1.0 + 1e-9:
            raise ValueError(
                f"train_size + validation_size must be <= 1, got {train_size} + {validation_size}."
            )


def cell_indices(indices: Sequence[int] | np.ndarray | None, n_cells: int) -> np.ndarray | None:
    """Positions of the chosen cells: ``None`` (all), integer positions or a boolean mask.

    Raises
    ------
    ValueError
        For an empty selection, a mask of the wrong length or positions out of range.
    """
    if indices is None:
        return None
    array = np.asarray(indices)
    if array.ndim != 1:
        raise ValueError(f"indices must be one-dimensional, got shape {array.shape}.")
    if array.dtype == bool:
        if array.size != n_cells:
            raise ValueError(
                f"A boolean mask as indices needs one value per cell ({n_cells}), got "
                f"{array.size}."
            )
        array = np.flatnonzero(array)
    elif array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"indices must be integer positions or a boolean mask, got dtype {array.dtype}."
        )
    if array.size == 0:
        raise ValueError("indices selects no cell; pass at least one cell, or None for all.")
    if array.min() < -n_cells or array.max() >= n_cells:
        raise ValueError(f"indices holds positions outside the {n_cells} cells.")
    return np.where(array < 0, array + n_cells, array).astype(np.int64)


def library_size(value, allow_observed: bool) -> float | str:
    """A positive library size, or ``"observed"`` where that is allowed."""
    if allow_observed and isinstance(value, str) and value == "observed":
        return value
    if isinstance(value, str):
        accepted = "a positive number or 'observed'" if allow_observed else "a positive number"
        raise ValueError(f"library_size must be {accepted}, got {value!r}.")
    return finite_number("library_size", value, 0.0, low_open=True)


def threshold(value) -> float | None:
    """A probability threshold in [0, 1], or ``None``."""
    if value is None:
        return None
    return finite_number("threshold", value, 0.0, 1.0, high_open=False)
