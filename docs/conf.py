"""Sphinx configuration for scdcca."""

from importlib.metadata import version as _version

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
html_theme = "sphinx_book_theme"
html_title = "scdcca"
exclude_patterns = ["_build"]
