"""The CLI commands of the task layer are argparse and printing only: they load no model, build no scheduler and
write no result file themselves (issue 24: tasks/ does, for both front doors)."""

import ast

from tests.helpers import REPO_ROOT

COMMANDS = REPO_ROOT / "blipdiff_plugins" / "commands"
# The commands over the task layer (bench, toyworld, prepare-data, pretrain and ui have their own owners and layers).
THIN = ("generate", "edit", "style", "attention", "interpolate", "finetune", "train_umm", "convert", "common", "inpaint", "img2img",
        "inpaint_bench")
HEAVY_CALLS = {"from_pretrained", "from_config", "save_pretrained", "write_json", "write_png", "write_text", "write_bytes",
               "write_atomically", "save_gif", "ResultWriter", "pipe", "style_transfer", "subject_attention_maps", "render_interpolation"}
HEAVY_MODULES = ("blipdiff_plugins.utils.atomic", "blipdiff_plugins.pipelines", "blipdiff_plugins.recipes", "blipdiff_plugins.training",
                 "diffusers", "torch")


def _calls_and_imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls, imports = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            calls.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
        elif isinstance(node, ast.ImportFrom):
            level_prefix = "blipdiff_plugins." if node.level == 2 else ("blipdiff_plugins.commands." if node.level == 1 else "")
            imports.add(level_prefix + (node.module or ""))
        elif isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
    return calls, imports


def test_task_commands_only_parse_and_print():
    for name in THIN:
        calls, imports = _calls_and_imports(COMMANDS / f"{name}.py")
        assert not calls & HEAVY_CALLS, f"commands/{name}.py calls {sorted(calls & HEAVY_CALLS)}; move it into tasks/"
        heavy = sorted(module for module in imports if module.startswith(HEAVY_MODULES))
        assert not heavy, f"commands/{name}.py imports {heavy}; go through tasks/"
