"""The package's import graph has no cycles and keeps its layers: training never imports the
registry, the registry never imports training, and what they share (``stockcast.modeling``)
imports neither. Every import counts, including those inside functions and under
``TYPE_CHECKING``, and importing ``a.b.c`` counts as importing the packages ``a.b`` and ``a``
too, since their ``__init__`` runs first."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "stockcast"

# (what may not import, what it may not import): each side a package and everything under it.
FORBIDDEN = [
    ("stockcast.training", "stockcast.registry"),
    ("stockcast.registry", "stockcast.training"),
    ("stockcast.modeling", "stockcast.training"),
    ("stockcast.modeling", "stockcast.registry"),
    ("stockcast.modeling", "stockcast.lifecycle"),
    ("stockcast.training", "stockcast.lifecycle"),
    ("stockcast.registry", "stockcast.lifecycle"),
]

Graph = dict[str, dict[str, int]]  # module -> imported module -> first line of such an import


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root``, by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """Each dotted name an import statement anywhere in the tree may load, with its line."""
    here = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            yield source, node.lineno
            for alias in node.names:  # ``from a import b`` loads the submodule a.b when there is one
                yield f"{source}.{alias.name}", node.lineno


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def import_graph(root: Path, package: str = PACKAGE) -> Graph:
    modules = module_files(root, package)
    graph: Graph = {name: {} for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        already_running = {name, *_ancestors(name)}  # this module's own packages are initialised first
        for dotted, line in _imported_names(tree, name, path.name == "__init__.py"):
            imported = dotted
            while imported and imported not in modules:  # an attribute, not a module: its module
                imported = imported.rpartition(".")[0]
            if not imported:
                continue  # outside the package
            for target in [*_ancestors(imported), imported]:
                if target in modules and target not in already_running:
                    graph[name].setdefault(target, line)
    return graph


def find_cycles(graph: Graph) -> list[list[str]]:
    """The shortest cycle through each module that is on one (first module repeated at the end),
    each cycle once."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles: dict[frozenset[tuple[str, str]], list[str]] = {}
    for group in groups:
        for start in group:
            cycle = _shortest_cycle(graph, set(group), start)
            cycles.setdefault(frozenset(itertools.pairwise(cycle)), cycle)
    return list(cycles.values())


def _shortest_cycle(graph: Graph, members: set[str], start: str) -> list[str]:
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    return [*paths[node], start]
                if target in members and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{sorted(members)} is not strongly connected")


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer_violations(graph: Graph, modules: dict[str, Path]) -> list[str]:
    found = []
    for importer, imported in FORBIDDEN:
        for name in sorted(graph):
            if not _under(name, importer):
                continue
            targets = [target for target in graph[name] if _under(target, imported)]
            for target in sorted(targets):
                line = graph[name][target]
                if any(other.startswith(target + ".") and graph[name][other] == line for other in targets):
                    continue  # the package of a module imported on the same line: name the module
                where = modules[name].relative_to(SOURCE.parent)
                found.append(
                    f"{where}:{line}: {name} imports {target} ({importer} may not import {imported})"
                )
    return found


def _describe(graph: Graph, modules: dict[str, Path], cycle: list[str]) -> str:
    steps = [
        f"  {modules[source].relative_to(SOURCE.parent)}:{graph[source][target]} imports {target}"
        for source, target in itertools.pairwise(cycle)
    ]
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_the_package_has_no_import_cycle():
    graph = import_graph(SOURCE)
    modules = module_files(SOURCE, PACKAGE)
    cycles = find_cycles(graph)
    assert not cycles, "import cycles among stockcast modules:\n" + "\n".join(
        _describe(graph, modules, cycle) for cycle in cycles
    )


def test_training_and_the_registry_do_not_import_each_other():
    graph = import_graph(SOURCE)
    violations = layer_violations(graph, module_files(SOURCE, PACKAGE))
    assert not violations, "layer rules broken:\n" + "\n".join(violations)


def test_every_layer_named_in_the_rules_exists():
    """A renamed package would make its rules pass by matching nothing."""
    modules = module_files(SOURCE, PACKAGE)
    for importer, imported in FORBIDDEN:
        assert importer in modules and imported in modules


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_through_a_function_level_or_type_checking_import_is_found(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
            "pkg/b.py": "def make():\n    from . import c\n    return c\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "import os\nfrom pkg import a\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_a_package_init_counts_as_imported_with_its_submodules(tmp_path):
    """``from pkg.low import x`` runs ``pkg/low/__init__.py``: a cycle through it is a cycle."""
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low/__init__.py": "from pkg.high import run\n",
            "pkg/low/types.py": "",
            "pkg/high.py": "from pkg.low.types import Spec\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert find_cycles(graph) == [["pkg.high", "pkg.low", "pkg.high"]]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pkg/x.py": "from .y import z\n", "pkg/y.py": ""}, {"pkg.y"}),
        ({"pkg/x.py": "from . import y\n", "pkg/y.py": ""}, {"pkg.y"}),
        ({"pkg/sub/x.py": "from ..y import thing\n", "pkg/sub/__init__.py": "", "pkg/y.py": ""}, {"pkg.y"}),
        ({"pkg/x.py": "import numpy\nfrom os import path\n"}, set()),
    ],
)
def test_relative_and_outside_imports_resolve(tmp_path, files, expected):
    _write(tmp_path, {"pkg/__init__.py": "", **files})
    importer = "pkg.sub.x" if "pkg/sub/x.py" in files else "pkg.x"
    assert set(import_graph(tmp_path, "pkg")[importer]) == expected
