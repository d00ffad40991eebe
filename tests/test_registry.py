import sys

import pytest

from blipdiff_plugins.registry import PROMPT_INJECTORS, SUBJECT_ENCODERS, Registry


def test_lazy_get_imports_target():
    registry = Registry("thing")
    registry.register("ordered_dict", "collections:OrderedDict")
    from collections import OrderedDict

    assert registry.get("ordered_dict") is OrderedDict
    assert registry.names() == ["ordered_dict"]


def test_builtin_entries_resolve():
    from blipdiff_plugins.adapters.blip2_qformer import Blip2SubjectEncoder
    from blipdiff_plugins.adapters.infix_prompt_injector import InfixPromptInjector

    assert SUBJECT_ENCODERS.get("blip2_qformer") is Blip2SubjectEncoder
    assert PROMPT_INJECTORS.get("infix") is InfixPromptInjector


def test_duplicate_name_refused():
    registry = Registry("thing")
    registry.register("a_name", "collections:OrderedDict")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a_name", "collections:deque")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="blip2_qformer"):
        SUBJECT_ENCODERS.get("blip2_qformr")


def test_bad_names_and_targets_refused():
    registry = Registry("thing")
    with pytest.raises(ValueError, match="lower_snake"):
        registry.register("Bad Name", "collections:deque")
    with pytest.raises(ValueError, match="module:ClassName"):
        registry.register("good", "collections.deque")


def test_missing_dependency_names_install_line():
    registry = Registry("thing")
    registry.register("needs_extra", "a_package_that_is_not_installed_xyz:Thing", extra="controlnet")
    with pytest.raises(ImportError, match=r"pip install 'blipdiff_plugins\[controlnet\]'"):
        registry.get("needs_extra")


def test_defaults_are_immutable_and_copied():
    registry = Registry("thing")
    registry.register("with_defaults", "collections:deque", defaults={"low": 30})
    copy = registry.defaults("with_defaults")
    copy["low"] = 99
    assert registry.defaults("with_defaults") == {"low": 30}
    with pytest.raises(TypeError):
        registry.entry("with_defaults").defaults["low"] = 1


def test_entry_points_are_scanned(monkeypatch):
    from importlib import metadata

    point = metadata.EntryPoint(name="third_party", value="collections:Counter", group="blipdiff_plugins.things")

    def fake_entry_points(group=None):
        return [point] if group == "blipdiff_plugins.things" else []

    monkeypatch.setattr(metadata, "entry_points", fake_entry_points)
    registry = Registry("thing")
    from collections import Counter

    assert registry.get("third_party") is Counter


def test_import_is_light():
    import subprocess

    code = (
        "import sys, blipdiff_plugins; import blipdiff_plugins.registry; "
        "heavy = [m for m in ('controlnet_aux', 'timm', 'evaluate', 'torchvision') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
