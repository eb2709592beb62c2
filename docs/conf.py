"""Sphinx configuration for scdcca.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``. Without network
access, set ``SCDCCA_DOCS_OFFLINE=1``: links to other projects' documentation
(intersphinx) are then left out instead of failing to download.
"""

import importlib
import inspect
import os
import re
from importlib.metadata import version as _version
from pathlib import Path

from sphinx.pycode import ModuleAnalyzer, PycodeError
from sphinx.util import logging

project = "scdcca"
author = "scdcca developers"
release = _version("scdcca")
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx_autodoc_typehints",
]
templates_path = ["_templates"]
autosummary_generate = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence", "dollarmath"]
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "mudata": ("https://mudata.readthedocs.io/en/latest/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
    "scvi": ("https://docs.scvi-tools.org/en/stable/", None),
}
if os.environ.get("SCDCCA_DOCS_OFFLINE", "") not in ("", "0"):
    intersphinx_mapping = {}
html_theme = "sphinx_book_theme"
html_title = "scdcca"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# --------------------------------------------------------------------------- API pages
# The public API: every name in ``__all__`` of scdcca and of its subpackages.
_PACKAGES = (
    "scdcca",
    "scdcca.model",
    "scdcca.module",
    "scdcca.train",
    "scdcca.data",
    "scdcca.datasets",
    "scdcca.tl",
    "scdcca.pl",
)


def _public_objects() -> dict[str, object]:
    """``{"scdcca.tl.read_gtf": obj, ...}`` for every public function and class."""
    objects = {}
    for package in _PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                objects[f"{package}.{name}"] = obj
    return objects


def _documented_attributes(cls: type) -> set[str]:
    """Instance attributes documented in the source of ``cls`` itself (``#:`` comments)."""
    try:
        analyzer = ModuleAnalyzer.for_module(cls.__module__)
        analyzer.analyze()
    except PycodeError:
        return set()
    return {name for scope, name in analyzer.attr_docs if scope == cls.__qualname__}


def _defined_in(cls: type, name: str) -> str:
    """Module of the class in ``cls``'s MRO that defines (or documents) member ``name``."""
    for base in cls.__mro__:
        if name in vars(base) or name in inspect.get_annotations(base):
            return base.__module__
    for base in cls.__mro__:
        if name in _documented_attributes(base):
            return base.__module__
    return ""


def _documented_members(cls: type) -> list[str]:
    """Public members of ``cls`` its API page documents.

    Members defined in scdcca (the class itself and its mixins) are documented. A model
    (a subclass of scvi-tools' ``BaseModelClass``) also documents the members it inherits from
    it (``history``, ``is_trained``, ``to_device``, ...), as scvi-tools does for its own
    models. Members inherited from ``torch.nn.Module``, ``lightning.LightningModule`` and
    scvi-tools' module and training-plan classes are documented by those projects. Fields of
    a dataclass are documented by its docstring; members without a docstring are left out,
    as autodoc does.
    """
    from scvi.model.base import BaseModelClass

    sources = ("scdcca.", "scvi.model.base.") if issubclass(cls, BaseModelClass) else ("scdcca.",)
    names = set(dir(cls)).union(*(_documented_attributes(base) for base in cls.__mro__))
    fields = {field.name for field in getattr(cls, "__dataclass_fields__", {}).values()}
    return sorted(
        name
        for name in names
        if not name.startswith("_")
        and name not in fields
        and _defined_in(cls, name).startswith(sources)
        and _has_docstring(cls, name)
    )


def _has_docstring(cls: type, name: str) -> bool:
    """Whether member ``name`` of ``cls`` (or the member it overrides) has a docstring."""
    try:
        member = inspect.getattr_static(cls, name)
    except AttributeError:  # an instance attribute, found through its documentation
        return True
    if isinstance(member, classmethod | staticmethod):
        member = member.__func__
    return bool(inspect.getdoc(member))


_PUBLIC = _public_objects()
# read by docs/_templates/autosummary/class.rst
autosummary_context = {
    "documented_members": {
        name: _documented_members(obj) for name, obj in _PUBLIC.items() if inspect.isclass(obj)
    }
}


def _check_api_listing(app) -> None:
    """Warn about public functions and classes that docs/api.md does not list."""
    api = (Path(app.srcdir) / "api.md").read_text()
    listed = {f"scdcca.{name}" for name in re.findall(r"^ {3}([\w.]+)$", api, re.MULTILINE)}
    listed_objects = [obj for name, obj in _PUBLIC.items() if name in listed]
    for name, obj in _PUBLIC.items():
        if not any(obj is other for other in listed_objects):
            logging.getLogger(__name__).warning(
                "%s is public (in __all__) but not listed in docs/api.md", name
            )


def _drop_private_bases(app, name, obj, options, bases) -> None:
    """Leave scdcca's private mixins out of "Bases:"; their members are on the class page."""
    bases[:] = [
        base
        for base in bases
        if not (base.__module__.startswith("scdcca.") and "._" in base.__module__)
    ]


def setup(app) -> None:
    """Connect the API checks to the build."""
    app.connect("builder-inited", _check_api_listing)
    app.connect("autodoc-process-bases", _drop_private_bases)
