"""Saving a model so that a failed save never damages the previous one.

Every file of a save is first written into a temporary folder beside the target and only
then moved into place with :func:`os.replace`. The model file and the data file of one save
carry the same random token (in the model's attributes and as an attribute of the HDF5 root),
so a model file is never paired with a data file written by another save.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import torch
from packaging.version import InvalidVersion, Version

#: File names scvi-tools uses inside a save folder (after the optional prefix).
MODEL_FILE = "model.pt"
DATA_FILE = "mdata.h5mu"
#: Root attribute of a saved data file holding the token of its save.
TOKEN_ATTRIBUTE = "scdcca_save_token"
#: Error numbers of a full disk or quota (``EDQUOT`` is not defined everywhere).
_FULL_DISK_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: Parts of the messages of writes that failed on a full disk.
_FULL_DISK_SIGNS = (
    "No space left on device",
    "Disk quota exceeded",
    "unexpected pos",
    "file write failed",
)


def new_token() -> str:
    """A random token identifying one save."""
    return uuid.uuid4().hex


def write_atomically(
    dir_path: str | os.PathLike,
    prefix: str | None,
    overwrite: bool,
    write: Callable[[Path], None],
    token: str,
) -> None:
    """Run ``write(tmp)`` into a temporary folder, then move its files into ``dir_path``.

    Parameters
    ----------
    dir_path
        The save folder. It must not exist unless ``overwrite``.
    prefix
        Prefix of the file names (as in :meth:`scvi.model.base.BaseModelClass.save`).
    overwrite
        Replace the files of an earlier save with the same prefix.
    write
        Writes the model file (and the data file, if any) into the folder it is given.
    token
        Token of this save; written into the data file's root attributes.
    """
    target = Path(dir_path)
    if target.exists() and not overwrite:
        raise ValueError(
            f"{target} already exists: pass overwrite=True to replace the model saved there, "
            "or choose another directory."
        )
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} is a file; a model is saved into a directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    names = [f"{prefix or ''}{name}" for name in (MODEL_FILE, DATA_FILE)]
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
    try:
        data = staging / names[1]
        try:
            write(staging)
            if data.exists():
                with h5py.File(data, "r+") as handle:
                    handle.attrs[TOKEN_ATTRIBUTE] = token
        except (OSError, RuntimeError) as error:
            if not is_full_disk(error):
                raise
            free = shutil.disk_usage(staging).free
            raise OSError(
                errno.ENOSPC,
                f"No space left on the disk to save the model into {target} ({free / 1e6:.1f} "
                f"MB free there; writing stopped with: {error}). Nothing in {target} was "
                "changed. Free some space, or save into a directory on another disk.",
            ) from error
        target.mkdir(exist_ok=True)
        # the old data file goes first: a model file is never left beside older data
        stale = target / names[1]
        if data.exists():
            os.replace(data, stale)
        elif stale.exists():
            stale.unlink()
        os.replace(staging / names[0], target / names[0])
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def is_full_disk(error: BaseException) -> bool:
    """Whether ``error`` says a file could not be written because the disk is full.

    Python and HDF5 report ``ENOSPC`` (or a full quota); torch's zip writer only says that
    the file is shorter than written (``unexpected pos``) or that a write failed.
    """
    if isinstance(error, OSError) and error.errno in _FULL_DISK_ERRNOS:
        return True
    text = str(error)
    return any(sign in text for sign in _FULL_DISK_SIGNS)


def saved_attributes(dir_path: str | os.PathLike, prefix: str | None) -> dict:
    """The attributes stored in a saved model file (``{}`` if there is none)."""
    path = Path(dir_path) / f"{prefix or ''}{MODEL_FILE}"
    if not path.exists():
        return {}
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return saved.get("attr_dict", {})


def check_saved_data(dir_path: str | os.PathLike, prefix: str | None, attributes: dict) -> bool:
    """Whether the save holds its data; refuse data written by another save.

    Returns
    -------
    ``True`` when a data file of the same save is present, ``False`` when there is none.
    """
    path = Path(dir_path) / f"{prefix or ''}{DATA_FILE}"
    if not path.exists():
        return False
    with h5py.File(path, "r") as handle:
        token = handle.attrs.get(TOKEN_ATTRIBUTE)
    if isinstance(token, bytes):
        token = token.decode()
    expected = attributes.get("save_token_")
    if token is not None and expected is not None and token != expected:
        raise ValueError(
            f"{path} was written by another save than the model file beside it; the two do "
            "not belong together. Save the model again, or load it with "
            "`DCCA.load(dir_path, adata=mdata)`."
        )
    return True


def check_saved_version(saved: str | None, installed: str) -> None:
    """Refuse a model saved by a newer scdcca release; warn for older or unknown ones."""
    if saved is None:
        warnings.warn(
            "This model was saved by a scdcca release that did not record its version; it is "
            f"loaded as if it were compatible with scdcca {installed}.",
            UserWarning,
            stacklevel=3,
        )
        return
    if _release(saved) > _release(installed):
        raise ValueError(
            f"This model was saved by scdcca {saved}, newer than the installed {installed}: "
            "upgrade scdcca (`pip install -U scdcca`) to load it."
        )
    if _release(saved) != _release(installed):
        warnings.warn(
            f"This model was saved by scdcca {saved} and is loaded by {installed}; if loading "
            "or results look wrong, retrain it or load it with the release that saved it.",
            UserWarning,
            stacklevel=3,
        )


def _release(version: str) -> tuple[int, ...]:
    """``(major, minor)`` of a version string; ``(0, 0)`` for one that is not a version."""
    try:
        release = Version(str(version)).release
    except InvalidVersion:
        return (0, 0)
    return (*release, 0)[:2]


@contextlib.contextmanager
def quiet_scvi_load() -> Iterator[None]:
    """Hide what scvi-tools' loader says about itself rather than about the user's save.

    Its note that the model file was "already downloaded" (it checks for a backup URL) and
    mudata's deprecation notice for ``mod_names``, which the loader reads.
    """
    download = logging.getLogger("scvi.data._download")
    level = download.level
    download.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*mod_names.*")
            yield
    finally:
        download.setLevel(level)
