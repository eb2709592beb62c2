"""The conda recipe and CITATION.cff agree with the package metadata."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names of packages whose PyPI name differs
CONDA_NAMES = {"torch": "pytorch", "matplotlib": "matplotlib-base", "igraph": "python-igraph"}


def _requirement(text: str) -> tuple[str, str]:
    name, bound = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", text.strip()).groups()
    return name.lower(), bound.replace(" ", "")


def _recipe() -> dict:
    text = (ROOT / "recipe" / "meta.yaml").read_text()
    text = re.sub(r"{%.*?%}", "", text)
    text = re.sub(r"{{\s*(\w+)(\|lower)?\s*}}", r"\1", text)
    return yaml.safe_load(text)


def test_recipe_runs_with_exactly_the_package_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_requirement(r) for r in project["dependencies"])
    wanted = {CONDA_NAMES.get(name, name): bound for name, bound in wanted.items()}
    recipe = _recipe()
    run = dict(_requirement(r) for r in recipe["requirements"]["run"])
    assert run.pop("python") == ">=python_min"
    assert run == wanted
    assert recipe["build"]["noarch"] == "python"
    assert recipe["requirements"]["host"][0] == "python python_min"
    assert recipe["package"]["version"] == "version"  # set from the jinja variable below
    version = re.search(r'set version = "([^"]+)"', (ROOT / "recipe" / "meta.yaml").read_text())
    assert version.group(1) == project["version"]


def test_citation_names_the_dcca_paper_and_the_package_version():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert str(citation["version"]) == project["version"]
    paper = citation["preferred-citation"]
    assert paper["doi"] == "10.1093/bioinformatics/btab403"
    assert (paper["journal"], paper["volume"], paper["start"]) == ("Bioinformatics", 37, 4091)
