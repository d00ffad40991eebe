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


def test_unregister_removes_the_entry_and_its_cached_target():
    registry = Registry("thing")
    registry.register("temporary", "collections:OrderedDict")
    registry.get("temporary")
    assert registry.unregister("temporary").target == "collections:OrderedDict"
    assert "temporary" not in registry and registry.names() == []
    with pytest.raises(KeyError, match="Unknown thing 'temporary'"):
        registry.unregister("temporary")


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


# --------------------------------------------------------------------------- methods (issue 24 item 2)
def test_methods_resolve_by_name_and_alias():
    from blipdiff_plugins.methods import METHODS, get_method, method_names

    assert method_names() == ["blip_diffusion", "umm_diffusion"] == METHODS.names()
    assert get_method("blip") is get_method("blip_diffusion") and get_method("blip").title == "BLIP-Diffusion"
    assert get_method("umm") is get_method("umm_diffusion") and get_method("umm").subject_word_argument == "subject_word"
    with pytest.raises(KeyError, match=r"Unknown method 'ummm'\. Did you mean 'umm'.*Known: blip, blip_diffusion, umm, umm_diffusion"):
        get_method("ummm")


def test_each_method_binds_parts_that_exist_and_agree():
    import inspect

    from blipdiff_plugins.methods import get_method, import_target, methods_for_pipeline

    blip, umm = get_method("blip"), get_method("umm")
    assert blip.tasks == {"generate", "finetune", "edit", "style", "attention", "interpolate"} and umm.tasks == {"generate"}
    assert [(o.name, o.kind, o.default, o.minimum) for o in blip.options] == [("prompt_reps", int, None, 1), ("prompt_strength", float, 1.0, None)]
    assert [(o.name, o.default, o.minimum, o.maximum, o.flag) for o in umm.options] == [("fusion_weight", 0.5, 0.0, 1.0, "--fusion-weight")]
    assert umm.prompt_names_subject and not blip.prompt_names_subject
    for method in (blip, umm):
        pipeline = method.pipeline_class()
        assert pipeline.method_name == method.name and methods_for_pipeline(pipeline) == [method]
        assert method.subject_word_argument in inspect.signature(pipeline.__call__).parameters
        assert all(option.name in inspect.signature(pipeline.__call__).parameters for option in method.options)
        assert SUBJECT_ENCODERS.get(method.subject_encoder).__name__ and all(name in PROMPT_INJECTORS for name in method.prompt_injectors)
        assert all(callable(import_target(target)) for target in (method.guidance, method.trainer, method.builtin))
    assert import_target(umm.trainer).__name__ == "train_umm"


def test_injectors_meet_exactly_the_protocol_their_pipeline_calls_without_stubs():
    from blipdiff_plugins.adapters.interfaces import PromptInjector, SubjectWordInjector, TemplateInjector

    infix, hidden, pseudo = (PROMPT_INJECTORS.get(name) for name in ("infix", "hidden_state", "pseudo_word"))
    assert isinstance(infix(), TemplateInjector) and isinstance(infix(), PromptInjector)
    for umm_injector in (hidden(), pseudo()):
        assert isinstance(umm_injector, SubjectWordInjector) and not isinstance(umm_injector, TemplateInjector)
        assert not hasattr(umm_injector, "build_prompts") and not hasattr(umm_injector, "encode_prompts")
        assert type(umm_injector).from_pipeline_config({"subject_position": 2}).__class__ is type(umm_injector)


def test_the_attention_processor_registry_is_read_by_the_pipelines_region_processor():
    import inspect

    from blipdiff_plugins import BlipDiffusionControlNetPipeline, BlipDiffusionPipeline
    from blipdiff_plugins.adapters.region_attention import RegionAttentionProcessor
    from blipdiff_plugins.registry import ATTENTION_PROCESSORS

    assert ATTENTION_PROCESSORS.names() == ["region"] and ATTENTION_PROCESSORS.get("region") is RegionAttentionProcessor
    for pipeline in (BlipDiffusionPipeline, BlipDiffusionControlNetPipeline):
        assert inspect.signature(pipeline.__call__).parameters["region_processor"].default == "region"


def test_encode_subject_has_one_signature_on_every_pipeline():
    import inspect

    from blipdiff_plugins import BlipDiffusionPipeline, UMMDiffusionPipeline

    blip, umm = (inspect.signature(cls.encode_subject) for cls in (BlipDiffusionPipeline, UMMDiffusionPipeline))
    assert list(blip.parameters) == list(umm.parameters) == ["self", "images", "subject", "weights"]
    assert [p.kind for p in blip.parameters.values()] == [p.kind for p in umm.parameters.values()]
    assert blip.parameters["subject"].default is None is umm.parameters["subject"].default
