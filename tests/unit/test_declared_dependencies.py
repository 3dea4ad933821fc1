"""pyproject.toml declares what src/ uses: every third-party module src/ imports (anywhere, also
inside functions) belongs to a declared runtime dependency, and every declared runtime
dependency is imported by src/ or named below as used without an import."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "stockcast"

# Declared, needed at run time, and never imported by our code: loaded by another library.
USED_WITHOUT_IMPORT = {
    "boto3": "MLflow's S3 artifact repository",
    "psycopg": "the PostgreSQL driver SQLAlchemy loads for a postgresql+psycopg:// URL",
    "psycopg-pool": "Feast's PostgreSQL online store",
    "pyarrow": "pandas' and Feast's parquet engine",
    "redis": "Feast's Redis online store",
    "s3fs": "fsspec's s3:// file system",
}


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them: ``PyYAML`` and ``pyyaml`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_runtime() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert found, f"cannot read a name from {requirement!r}"
        names.add(normalized(found.group()))
    return names


def third_party_imports() -> dict[str, list[str]]:
    """Top-level module name -> where src/ imports it (path:line), stdlib and our own left out."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "src" / PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top in {PACKAGE, "__future__"}:
                    continue
                found.setdefault(top, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@cache
def _installed() -> dict[str, list[str]]:
    return packages_distributions()  # scans every installed distribution: once


def distributions_of(module: str) -> set[str]:
    return {normalized(name) for name in _installed().get(module, [])}


def test_every_imported_module_is_declared():
    declared = declared_runtime()
    missing = {
        module: places
        for module, places in third_party_imports().items()
        if not distributions_of(module) & declared
    }
    assert not missing, "imported by src/ but not declared in pyproject's dependencies:\n" + "\n".join(
        f"  {module} (distribution {sorted(distributions_of(module)) or 'not installed'}): {places[0]}"
        for module, places in sorted(missing.items())
    )


def test_every_declared_dependency_is_used():
    imported = set().union(*(distributions_of(module) for module in third_party_imports()))
    unused = declared_runtime() - imported - set(USED_WITHOUT_IMPORT)
    assert not unused, (
        f"declared in pyproject's dependencies but never imported by src/: {sorted(unused)}; "
        "remove them, move them to the dev extra, or add them to USED_WITHOUT_IMPORT with the reason"
    )


def test_the_list_of_dependencies_used_without_import_is_current():
    imported = set().union(*(distributions_of(module) for module in third_party_imports()))
    assert set(USED_WITHOUT_IMPORT) <= declared_runtime(), "listed but no longer declared"
    assert not set(USED_WITHOUT_IMPORT) & imported, "listed but now imported: drop it from the list"
