"""Reading MuData the same way on mudata 0.3 and 0.4."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import mudata


@contextlib.contextmanager
def no_pull_on_update() -> Iterator[None]:
    """Read or update MuData without pulling ``obs``/``var`` columns from the modalities.

    That is mudata 0.4's behaviour, asked for explicitly on mudata 0.3 (which avoids its
    ``FutureWarning`` about the change); a release without the option is left as it is.
    mudata's option context logs through :mod:`logging`'s module functions, whose first call
    would install a stderr handler on the root logger and print every later record of any
    library twice: a handler that drops records stands in while the block runs.
    """
    root = logging.getLogger()
    stand_in = None if root.handlers else logging.NullHandler()
    if stand_in is not None:
        root.addHandler(stand_in)
    try:
        try:
            options = mudata.set_options(pull_on_update=False)
        except ValueError:  # no such option in this mudata release
            options = contextlib.nullcontext()
        with options:
            yield
    finally:
        if stand_in is not None:
            root.removeHandler(stand_in)
