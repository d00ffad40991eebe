"""The package's layout rules (docs/ARCHITECTURE.md): importable modules, no import cycles, the CLI on top, small files.

The import graph is built with `ast` from the source, so it sees imports that a run would only
reach on some paths. Two graphs are used on purpose:

- for **cycles**, only module-level imports count. A function-level import runs when the function is
  called, after both modules have finished importing, so it cannot fail the way a module-level cycle
  does (and diffusers' own lazy imports rely on this);
- for **layering** (nothing below the CLI imports `commands/` or `cli`), every import counts,
  function-level ones included: a lazy import upward is still an upward dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "blipdiff_plugins"
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """Absolute module names an ``ImportFrom`` refers to (``from . import x`` may name submodules)."""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    candidates = [f"{target}.{alias.name}" for alias in node.names]
    return [name for name in candidates if name in MODULES] or [target]


def _imports(module: str, path: Path, *, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else ast.walk(tree)
    if module_level_only:
        # Module-level imports may sit inside `if`/`try` blocks; they still run at import time.
        nodes = [node for statement in tree.body for node in ast.walk(statement) if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        nodes += [node for statement in tree.body if isinstance(statement, ast.ClassDef) for node in statement.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            found.update(_resolve(module, path, node))
    return {name for name in found if name.split(".")[0] == "blipdiff_plugins"}


def import_graph(*, module_level_only: bool) -> dict[str, set[str]]:
    """module -> the package modules it imports (importing ``a.b.c`` also runs ``a`` and ``a.b``)."""
    graph = {}
    for module, path in MODULES.items():
        targets = set()
        for name in _imports(module, path, module_level_only=module_level_only):
            parts = name.split(".")
            targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in MODULES)
        targets.discard(module)
        # A package's __init__ is not an import of its own submodules' parents.
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_graph_sees_relative_and_function_level_imports():
    graph = import_graph(module_level_only=False)
    # utils/grids.py imports `.atomic` relatively; commands/generate.py imports `..builtin` inside a function.
    assert "blipdiff_plugins.utils.atomic" in graph["blipdiff_plugins.utils.grids"]
    assert "blipdiff_plugins.commands.common" in graph["blipdiff_plugins.commands.generate"]


def test_no_import_cycle_between_package_modules():
    cycle = find_cycle(import_graph(module_level_only=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_library_never_imports_the_command_line():
    graph = import_graph(module_level_only=False)
    cli = {name for name in MODULES if name == "blipdiff_plugins.cli" or name.startswith("blipdiff_plugins.commands")}
    offenders = {module: sorted(graph[module] & cli) for module in MODULES if module not in cli and graph[module] & cli}
    assert offenders == {}


def test_no_module_over_the_line_limit():
    long = {module for module, path in MODULES.items() if len(path.read_text(encoding="utf-8").splitlines()) > MAX_LINES}
    assert long == set()


def test_package_top_level_holds_only_entry_points_and_folders():
    files = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert files == ["__init__.py", "cli.py", "registry.py"]


@pytest.mark.slow  # a fresh interpreter importing every module
def test_every_module_imports_in_a_fresh_interpreter():
    """All modules, one after another, in a new interpreter (so nothing the test session imported helps).

    One interpreter, not one per module: importing torch and diffusers 70 times would take minutes on
    the 2-core test machines; module-level cycles, which would make an import order-dependent, are
    caught by `test_no_import_cycle_between_package_modules`.
    """
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", script, *sorted(MODULES)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
