"""Every module imports only what the distribution that ships it declares.

An import that works only because something else pulled the package in (aiohttp through kopf, starlette
through fastapi) breaks the day that other package changes its own dependencies, and an image built
from the declared dependencies alone fails at run time. Imports are read with `ast` (every one, also
those inside functions), the import name is mapped to its distribution through the installed metadata,
and that distribution must be named in the shipping project's dependencies (the service's extras count:
a back end's client is declared with its back end).
"""

from __future__ import annotations

import ast
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]


def _project(pyproject: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads(pyproject.read_text())["project"]
    return project


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _service() -> set[str]:
    project = _project(ROOT / "pyproject.toml")
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    declared = _names(project["dependencies"])  # type: ignore[arg-type]
    for extra, requirements in extras.items():
        if extra != "dev":
            declared |= _names(requirements)
    return declared


def _operator() -> set[str]:
    return _names(_project(ROOT / "operator" / "pyproject.toml")["dependencies"])  # type: ignore[arg-type]


def _dev() -> set[str]:
    """tools/cellcelly_dev runs from a checkout with the dev extra on top of the service."""
    extras = _project(ROOT / "pyproject.toml")["optional-dependencies"]
    assert isinstance(extras, dict)
    return _service() | _operator() | _names(extras["dev"])


# (source tree, its own top-level packages, what it declares)
SHIPPED = {
    "services/cellcelly": ({"cellcelly"}, _service),
    "operator/cellcelly_operator": ({"cellcelly_operator"}, _operator),
    "tools/cellcelly_dev": ({"cellcelly_dev", "cellcelly", "cellcelly_operator"}, _dev),
}


def imports_of(tree: Path) -> dict[str, set[str]]:
    """Top-level names imported (absolute imports only) -> the files importing them."""
    found: dict[str, set[str]] = {}
    for path in sorted(tree.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(tree)))
    return found


@cache
def _distributions() -> dict[str, list[str]]:
    return packages_distributions()


def undeclared(tree: Path, own: set[str], declared: set[str]) -> list[str]:
    problems = []
    for module, files in sorted(imports_of(tree).items()):
        if module in sys.stdlib_module_names or module in own:
            continue
        dists = {canonicalize_name(d) for d in _distributions().get(module, [])}
        if not dists:
            problems.append(f"{module}: not installed here ({', '.join(sorted(files))})")
        elif not dists & declared:
            problems.append(
                f"{module} ({'/'.join(sorted(dists))}): undeclared, in {', '.join(sorted(files))}"
            )
    return problems


@pytest.mark.parametrize("tree", sorted(SHIPPED))
def test_every_import_is_a_declared_dependency(tree: str) -> None:
    own, declared = SHIPPED[tree]
    assert undeclared(ROOT / tree, own, declared()) == []


def test_the_check_sees_an_import_nobody_declared(tmp_path: Path) -> None:
    """aiohttp imported (inside a function, as the operator's kube client once did) and not declared."""
    (tmp_path / "mod.py").write_text(
        "import os\n\ndef f():\n    from aiohttp import web\n    return web, os\n"
    )
    assert undeclared(tmp_path, set(), {"kopf"}) == ["aiohttp (aiohttp): undeclared, in mod.py"]
    assert undeclared(tmp_path, set(), {"aiohttp"}) == []


def test_the_operator_ships_without_the_service_stack() -> None:
    """The operator image installs its own distribution: no FastAPI, SQLAlchemy or argon2 in it."""
    assert not _operator() & {"fastapi", "sqlalchemy", "argon2-cffi", "uvicorn", "alembic"}
    assert not (ROOT / "services" / "cellcelly" / "bench.py").exists()
    assert not list((ROOT / "services").rglob("*bench*.py"))
    assert not list((ROOT / "operator").rglob("*bench*.py"))
