"""The package's layout (docs/ARCHITECTURE.md is drawn from `LAYERS`): every module in one layer, imports only sideways
or down, no import cycle, small files, every module importable on its own.

The import graph is built with `ast` from the source, so it sees imports that a run would only reach on some paths.
Every import counts, the ones inside functions included, for both the layering and the cycles: a lazy import
upward is still an upward dependency, and a lazy circle is still a circle a reader has to untangle.

Lazy exports (a package ``__init__``'s ``_EXPORTS`` table, PEP 562 ``__getattr__``) are not imports of that
``__init__``: a table entry runs only when someone reads the attribute. So ``from blipdiff_plugins import
BlipDiffusionPipeline`` is an arrow from the *reader* to ``pipelines.pipeline_blip_diffusion``, and the package's
public facade (``blipdiff_plugins/__init__.py``, whose table names modules of every library layer) sits in the
bottom layer without an exemption: its own imports are the bottom layer's (``utils.lazy_exports``). Its table may
name any library module but never a front door (`test_facade_exports_no_front_door`).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

PACKAGE_NAME = "blipdiff_plugins"
PACKAGE = REPO_ROOT / PACKAGE_NAME
MAX_LINES = 450

# Top to bottom. A module may import modules of its own layer or of a layer below, never above. Entries are path
# prefixes inside the package: a folder ("commands/") holds everything below it (future subfolders such as
# `benchmark/dreambench/` or `training/umm/` included), a file ("cli.py") only itself.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli.py", "commands/"),  # L0 the command line: argparse and printing
    ("app/",),  # L1 the web app: Gradio widgets and messages
    ("tasks/",),  # L2 the task layer under both front doors
    ("benchmark/", "recipes/"),  # L3 DreamBench and toy-world benchmarks; pipelines composed into a task
    ("training/",),  # L4 the training core and the trainers on it
    ("pipelines/",),  # L5 DiffusionPipeline subclasses and their shared helpers
    ("loaders/", "conversion/", "builtin/"),  # L6 saved formats, original checkpoints, the built-in models
    ("adapters/", "data/", "toyworld/"),  # L7 encoders, injectors, strategies, processors; stage-2 data; the toy world
    ("methods/", "utils/", "registry.py", "__init__.py"),  # L8 method records, small helpers, registries, the facade
)
FRONT_DOORS = ("cli.py", "commands/", "app/")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def relative_path(module: str) -> str:
    """The module's file inside the package, e.g. ``"commands/generate.py"`` or ``"__init__.py"``."""
    return MODULES[module].relative_to(PACKAGE).as_posix()


def layer_of(path: str) -> int | None:
    """The layer index of a package-relative file path (longest matching prefix wins), or None when no layer holds it."""
    best, best_length = None, -1
    for index, entries in enumerate(LAYERS):
        for entry in entries:
            matches = path.startswith(entry) if entry.endswith("/") else path == entry
            if matches and len(entry) > best_length:
                best, best_length = index, len(entry)
    return best


def _lazy_table(path: Path) -> dict[str, str]:
    """A package ``__init__``'s ``_EXPORTS = {"name": "module"}`` literal (empty when it has none)."""
    if path.name != "__init__.py":
        return {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            table = ast.literal_eval(node.value)
            package = module_name(path)
            return {name: target if target in MODULES else f"{package}.{target}" for name, target in table.items()}
    return {}


LAZY_TABLES = {module: _lazy_table(path) for module, path in MODULES.items()}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """Absolute module names an ``ImportFrom`` refers to: submodules it names, the module a lazily exported name
    comes from, or the module itself."""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    lazy = LAZY_TABLES.get(target, {})
    found = []
    for alias in node.names:
        if f"{target}.{alias.name}" in MODULES:
            found.append(f"{target}.{alias.name}")
        elif alias.name in lazy:
            found.append(lazy[alias.name])
    return found or [target]


def _imports(module: str, path: Path) -> set[str]:
    """Every package module ``module`` imports, at module level or inside functions and classes."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found.update(_resolve(module, path, node))
    return {name for name in found if name.split(".")[0] == PACKAGE_NAME}


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (importing ``a.b.c`` also runs ``a`` and ``a.b``)."""
    graph = {}
    for module, path in MODULES.items():
        targets = set()
        for name in _imports(module, path):
            parts = name.split(".")
            targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in MODULES)
        targets.discard(module)
        # A module's own parent packages have run before it; they are not its imports.
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


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other in a circle (Tarjan's components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every arrow from a module to one in a higher layer, as ``"a (L5) -> b (L6)"`` lines."""
    arrows = []
    for module in sorted(graph):
        source = layer_of(relative_path(module))
        for target in sorted(graph[module]):
            destination = layer_of(relative_path(target))
            if source is not None and destination is not None and destination < source:
                arrows.append(f"{module} (L{source}) -> {target} (L{destination})")
    return arrows


# --------------------------------------------------------------------------- the checker itself
def test_find_cycle_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c", "e"}, "e": set()}) == [["a", "b"], ["c", "d"]]


def test_layer_of_matches_folders_by_prefix_files_exactly_and_says_none_otherwise():
    assert layer_of("cli.py") == 0 and layer_of("commands/generate.py") == 0
    assert layer_of("benchmark/dreambench/runner.py") == 3 and layer_of("training/umm/trainer.py") == 4
    assert layer_of("pipelines/loading.py") == 5 and layer_of("builtin/loader.py") == 6
    assert layer_of("toyworld/world.py") == 7 and layer_of("methods/spec.py") == 8
    assert layer_of("__init__.py") == 8 and layer_of("registry.py") == 8
    assert layer_of("builtin/__init__.py") == 6  # a folder's __init__ is the folder's, not the facade's
    assert layer_of("newfolder/thing.py") is None and layer_of("stray.py") is None


def test_graph_sees_relative_function_level_and_lazy_imports():
    graph = import_graph()
    # utils/grids.py imports `.atomic` relatively; pipelines/loading.py imports `..builtin.loader` inside a function.
    assert "blipdiff_plugins.utils.atomic" in graph["blipdiff_plugins.utils.grids"]
    assert "blipdiff_plugins.builtin.loader" in graph["blipdiff_plugins.pipelines.loading"]
    # A lazily exported name is an arrow to the module it comes from, not to the package that lists it.
    assert LAZY_TABLES["blipdiff_plugins"]["BlipDiffusionPipeline"] == "blipdiff_plugins.pipelines.pipeline_blip_diffusion"
    assert graph["blipdiff_plugins"] == {"blipdiff_plugins.utils", "blipdiff_plugins.utils.lazy_exports"}


def test_upward_imports_lists_each_arrow_against_the_table():
    fake = {"blipdiff_plugins.utils.atomic": {"blipdiff_plugins.pipelines.loading"}, "blipdiff_plugins.pipelines.loading": set()}
    assert upward_imports(fake) == ["blipdiff_plugins.utils.atomic (L8) -> blipdiff_plugins.pipelines.loading (L5)"]


# --------------------------------------------------------------------------- the rules
def test_every_module_is_in_a_layer():
    unplaced = sorted(relative_path(module) for module in MODULES if layer_of(relative_path(module)) is None)
    assert unplaced == [], f"modules in no layer of LAYERS (add their folder to the table and to docs/ARCHITECTURE.md): {unplaced}"


def test_no_import_goes_up_a_layer():
    arrows = upward_imports(import_graph())
    assert arrows == [], "imports that go up a layer (move the helper down, or the caller up):\n" + "\n".join(arrows)


def test_no_import_cycle_counting_imports_inside_functions():
    graph = import_graph()
    circles = [" -> ".join(find_cycle({m: graph[m] & set(group) for m in group})) for group in strongly_connected(graph)]
    assert circles == [], "import cycles (one circle per group of modules that import each other):\n" + "\n".join(circles)


def test_lazy_tables_of_folders_point_sideways_or_down():
    """A folder's ``__init__`` may re-export lazily only what its layer may import (the facade is checked below)."""
    arrows = [
        f"{package} (L{layer_of(relative_path(package))}) lazily exports {name} from {target}"
        for package, table in sorted(LAZY_TABLES.items())
        if package != PACKAGE_NAME
        for name, target in sorted(table.items())
        if layer_of(relative_path(target)) < layer_of(relative_path(package))
    ]
    assert arrows == []


def test_facade_exports_no_front_door():
    front = {module for module in MODULES if relative_path(module).startswith(FRONT_DOORS)}
    assert sorted(set(LAZY_TABLES["blipdiff_plugins"].values()) & front) == []
    assert all(target in MODULES for target in LAZY_TABLES["blipdiff_plugins"].values())


# The front doors reach pipelines, trainers and built-in models only through the task layer (issue 24): they load no
# model and run no trainer themselves.
BEHIND_THE_TASK_LAYER = ("training/", "pipelines/", "builtin/")


def front_door_arrows_past_the_task_layer(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """front-door module -> the modules of `BEHIND_THE_TASK_LAYER` it imports (imports inside functions included)."""
    arrows = {}
    for module in sorted(graph):
        if relative_path(module).startswith(FRONT_DOORS):
            past = {target for target in graph[module] if relative_path(target).startswith(BEHIND_THE_TASK_LAYER)}
            if past:
                arrows[module] = past
    return arrows


def test_front_doors_reach_pipelines_trainers_and_builtin_models_only_through_the_task_layer():
    arrows = front_door_arrows_past_the_task_layer(import_graph())
    assert arrows == {}, f"cli.py, commands/ and app/ import these modules of training/, pipelines/ or builtin/ (go through tasks/): {arrows}"


def test_the_front_door_rule_sees_imports_inside_functions():
    fake = {"blipdiff_plugins.app.edit_task": {"blipdiff_plugins.pipelines.pipeline_blip_diffusion_edit", "blipdiff_plugins.tasks.edit"},
            "blipdiff_plugins.tasks.edit": {"blipdiff_plugins.pipelines.pipeline_blip_diffusion_edit"}}
    assert front_door_arrows_past_the_task_layer(fake) == {"blipdiff_plugins.app.edit_task": {"blipdiff_plugins.pipelines.pipeline_blip_diffusion_edit"}}
    assert "blipdiff_plugins.pipelines" in import_graph()["blipdiff_plugins.tasks.edit"]  # a submodule's package counts too
    # the import graph records a function-level import (cli.py asks the task layer for a run's checkpoints in one)
    assert "blipdiff_plugins.tasks.finetune" in import_graph()["blipdiff_plugins.cli"]


def test_no_module_over_the_line_limit():
    long = {relative_path(module): n for module, path in MODULES.items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: split them by idea"


def test_package_top_level_holds_only_entry_points_and_folders():
    files = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert files == ["__init__.py", "cli.py", "registry.py"]


def test_architecture_doc_draws_the_same_layers():
    """docs/ARCHITECTURE.md's diagram lists the table's layers in order: ``L<n>  entry, entry  ...``."""
    text = (REPO_ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    drawn = {}
    for match in re.finditer(r"^L(\d)\s+(.+?)(?:\s{2,}.*)?$", text, flags=re.MULTILINE):
        drawn[int(match.group(1))] = tuple(entry.strip().strip("`") for entry in match.group(2).split(","))
    assert drawn == dict(enumerate(LAYERS))


# Run first in the same fresh interpreter, before the rest of the package is imported: what an import must not pull in.
# Building the built-in components imports no pipeline module (`XPipeline.from_pretrained("builtin...")` assembles them,
# issue 24 item 1); the package, the ControlNet pipeline, the preprocessor names and the style recipe import neither
# controlnet_aux nor timm (optional extras, imported by the preprocessor that needs them).
IMPORTS_PULL_IN_NOTHING_EXTRA = """
import json, sys
from blipdiff_plugins.builtin.loader import builtin_components
from blipdiff_plugins.methods import get_method
blip = builtin_components('builtin:random-tiny', method=get_method('blip'))
umm = builtin_components('builtin:random-tiny', method=get_method('umm'))
pipelines = sorted(m for m in sys.modules if m.startswith('blipdiff_plugins.pipelines'))
import blipdiff_plugins
blipdiff_plugins.BlipDiffusionControlNetPipeline; blipdiff_plugins.PREPROCESSORS.names()
import blipdiff_plugins.recipes.style_transfer
extras = sorted({'controlnet_aux', 'timm'} & set(sys.modules))
print('imports:', json.dumps({'blip': sorted(blip), 'umm': sorted(umm), 'pipelines': pipelines, 'extras': extras}))
"""


@pytest.mark.slow  # a fresh interpreter importing every module
def test_every_module_imports_in_a_fresh_interpreter():
    """All modules, one after another, in a new interpreter (so nothing the test session imported helps), after the
    checks of `IMPORTS_PULL_IN_NOTHING_EXTRA`.

    One interpreter, not one per module (nor one per check): importing torch and diffusers 200 times would take minutes
    on the 2-core test machines; cycles, which would make an import order-dependent, are caught above.
    """
    import json

    script = IMPORTS_PULL_IN_NOTHING_EXTRA + "import importlib\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", script, *sorted(MODULES)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("imports: "))[len("imports: "):])
    assert found["blip"] == ["scheduler", "subject_encoder", "subject_image_processor", "subject_tokenizer", "text_encoder", "tokenizer", "unet", "vae"]
    assert found["umm"] == ["prompt_injector_name", "scheduler", "subject_encoder", "subject_image_processor", "text_encoder", "tokenizer", "unet", "vae"]
    assert found["pipelines"] == []  # `builtin/` builds components and never imports a pipeline
    assert found["extras"] == []  # importing the package, its ControlNet pipeline or the style recipe needs no extra
