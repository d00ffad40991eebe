"""A third method, registered in this test module only, runs through the CLI's generate and the web app's service:
adding a method touches no other file (issue 24, "Must show").

The method is BLIP-Diffusion's sampling with another prompt injector (the subject block one token later) and an
option of its own (``brightness``), on a pipeline class defined here. Its `Method` record, its injector and its
built-in builder are registered by the fixture and removed afterwards.
"""

from __future__ import annotations

import json

import PIL.Image
import pytest

from blipdiff_plugins import BlipDiffusionPipeline
from blipdiff_plugins.adapters.infix_prompt_injector import InfixPromptInjector
from blipdiff_plugins.methods import METHODS, Method, MethodOption, get_method
from blipdiff_plugins.registry import PROMPT_INJECTORS

# What the third method's pipeline saw on each call: the option value and the injector that encoded the prompt.
CALLS: list[dict] = []


class LateInfixInjector(InfixPromptInjector):
    """The subject embeddings one token later than BLIP-Diffusion's infix (still a `TemplateInjector`)."""

    @classmethod
    def from_pipeline_config(cls, config):
        return cls(position=config.get("subject_position", 2) + 1)


class ThirdPipeline(BlipDiffusionPipeline):
    """BLIP-Diffusion's sampling for the third method; ``brightness`` is its own option (recorded, then unused)."""

    method_name = "third_method"

    def __call__(self, *args, brightness: float = 0.0, **kwargs):
        CALLS.append({"brightness": brightness, "injector": type(self.prompt_injector).__name__, "position": self.prompt_injector.position})
        return super().__call__(*args, **kwargs)


def third_builtin_components(model, *, torch_dtype=None, argument="`model`"):
    """The built-in models of the third method: BLIP-Diffusion's components with the late injector."""
    from blipdiff_plugins.builtin.models import blip_diffusion_builtin_components

    components = blip_diffusion_builtin_components(model, torch_dtype=torch_dtype, argument=argument)
    return {**components, "prompt_injector_name": "late_infix"}


METHOD = Method(
    name="third_method",
    title="Third-Method",
    aliases=("third",),
    pipeline=f"{__name__}:ThirdPipeline",
    subject_encoder="blip2_qformer",
    prompt_injectors=("late_infix",),
    guidance="blipdiff_plugins.pipelines.denoising:classifier_free_guidance",
    builtin=f"{__name__}:third_builtin_components",
    subject_word_argument="source_subject",
    tasks=frozenset({"generate"}),
    options=(MethodOption("brightness", "a setting only this method has", kind=float, default=0.25, minimum=0.0, maximum=1.0),),
    description="A test method: BLIP-Diffusion with the subject one token later.",
)


@pytest.fixture()
def third_method():
    PROMPT_INJECTORS.register("late_infix", f"{__name__}:LateInfixInjector")
    METHODS.register("third_method", f"{__name__}:METHOD")
    CALLS.clear()
    try:
        yield get_method("third")
    finally:
        METHODS.unregister("third_method")
        PROMPT_INJECTORS.unregister("late_infix")


@pytest.fixture()
def subject_file(tmp_path):
    path = tmp_path / "subject.png"
    PIL.Image.new("RGB", (40, 40), (200, 60, 30)).save(path)
    return path


def test_the_registration_is_the_whole_method(third_method):
    assert third_method is METHOD and get_method("third_method") is METHOD
    pipe = METHOD.pipeline_class().from_pretrained("builtin:random-tiny")
    assert type(pipe) is ThirdPipeline and pipe.config.prompt_injector_name == "late_infix"
    assert type(pipe.prompt_injector) is LateInfixInjector and pipe.prompt_injector.position == 3


def test_cli_generate_runs_the_third_method(third_method, subject_file, tmp_path, capsys):
    from blipdiff_plugins.cli import main

    out = tmp_path / "out"
    code = main(["generate", "--method", "third", "--model", "builtin:random-tiny", "--subject-image", str(subject_file),
                 "--subject", "dog", "--prompt", "on a beach", "--steps", "2", "--brightness", "0.5", "--device", "cpu",
                 "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    assert CALLS == [{"brightness": 0.5, "injector": "LateInfixInjector", "position": 3}]
    sidecars = sorted(out.glob("*.json"))
    assert [p.name for p in sidecars] == ["000-on-a-beach.json"] and (out / "000-on-a-beach.png").is_file()
    recorded = json.loads(sidecars[0].read_text())
    assert recorded["settings"]["method"] in ("third", "third_method") and recorded["settings"]["brightness"] == 0.5
    # The method's option is a flag of `generate`, with the record's bounds.
    with pytest.raises(SystemExit) as refused:
        main(["generate", "--method", "third", "--brightness", "2", "--prompt", "x", "--output", str(tmp_path / "o2")])
    assert refused.value.code == 2 and "--brightness" in capsys.readouterr().err


def test_web_app_service_runs_the_third_method(third_method, tmp_path):
    from blipdiff_plugins.app.service import ModelService

    service = ModelService(model="builtin:random-tiny", output_dir=str(tmp_path / "app"))
    assert "Third-Method" in service.methods()
    result = service.generate(subject_images=[PIL.Image.new("RGB", (40, 40), (30, 60, 200))], subject="dog", target_subject=None,
                              prompts="on a beach", steps=2, method="Third-Method", options={"brightness": 0.75})
    assert CALLS == [{"brightness": 0.75, "injector": "LateInfixInjector", "position": 3}]
    assert len(result.images) == 1 and any(str(path).endswith(".json") for path in result.files)
