"""The conda recipe and CITATION.cff agree with the package metadata."""

from __future__ import annotations

import ast
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


def test_scverse_core_is_bounded_to_the_tested_releases():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds = dict(_requirement(r) for r in project["dependencies"])
    for name in ("scvi-tools", "anndata", "mudata", "scanpy", "muon"):
        assert "<" in bounds[name], f"{name} has no upper bound"


SOURCE = ROOT / "src" / "scdcca"


def _module_names() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(SOURCE.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in SOURCE.rglob("*.py")
    }


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Modules of scdcca that ``path`` imports, ``TYPE_CHECKING`` and local imports included.

    ``from package import submodule`` counts as an import of the submodule only.
    """
    name = ".".join(path.relative_to(SOURCE.parent).with_suffix("").parts)
    package = name.removesuffix(".__init__") if path.name == "__init__.py" else name
    package = package if path.name == "__init__.py" else package.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join([*base, node.module or ""]).strip(".") if node.level else node.module
            for alias in node.names:
                child = f"{module}.{alias.name}"
                found.add(child if child in modules else module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & modules


def _module_graph() -> dict[str, set[str]]:
    files = _module_names()
    return {name: _imports(path, set(files)) - {name} for name, path in files.items()}


def test_the_package_has_no_import_cycle():
    graph = _module_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for child in sorted(graph[node]):
            assert state.get(child) != 1, "import cycle: " + " -> ".join([*path, child])
            if child not in state:
                visit(child, [*path, child])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_source_file_is_over_450_lines():
    long = {
        str(p.relative_to(SOURCE)): n
        for p in SOURCE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 450
    }
    assert not long


def test_private_scvi_tools_api_is_imported_in_one_module():
    private = re.compile(r"^\s*from scvi(\.\w+)*\._\w+|^\s*from scvi[\w.]* import _\w+", re.M)
    users = sorted(
        str(p.relative_to(SOURCE)) for p in SOURCE.rglob("*.py") if private.search(p.read_text())
    )
    assert users == ["_scvi.py"]
