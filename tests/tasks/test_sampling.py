"""The task requests share their sampling fields through `tasks/sampling.py`: declared once, same names and defaults
as before, keyword-only, and a task's own default (the edit's 50 steps) still wins."""

import dataclasses

import pytest

from blipdiff_plugins.tasks.attention import AttentionRequest
from blipdiff_plugins.tasks.edit import EditRequest
from blipdiff_plugins.tasks.generate import GenerateRequest
from blipdiff_plugins.tasks.img2img import Img2ImgRequest
from blipdiff_plugins.tasks.inpaint import InpaintRequest
from blipdiff_plugins.tasks.interpolate import InterpolateRequest
from blipdiff_plugins.tasks.sampling import ImageSamplingRequest, SamplingRequest
from blipdiff_plugins.tasks.style import StyleRequest

SAMPLING = {"seed": 0, "steps": 25, "guidance": 7.5}
IMAGE_SAMPLING = {**SAMPLING, "negative_prompt": "", "num_images": 1, "height": None, "width": None}


@pytest.mark.parametrize(
    ("request_class", "shared", "own_defaults"),
    [
        (GenerateRequest, IMAGE_SAMPLING, {}),
        (EditRequest, IMAGE_SAMPLING, {"steps": 50}),
        (StyleRequest, IMAGE_SAMPLING, {}),
        (InpaintRequest, IMAGE_SAMPLING, {}),
        (Img2ImgRequest, IMAGE_SAMPLING, {}),
        (AttentionRequest, SAMPLING, {}),
        (InterpolateRequest, SAMPLING, {}),
    ],
)
def test_each_request_takes_the_shared_sampling_fields_keyword_only(request_class, shared, own_defaults):
    base = ImageSamplingRequest if shared is IMAGE_SAMPLING else SamplingRequest
    assert issubclass(request_class, base)
    fields = {field.name: field for field in dataclasses.fields(request_class)}
    assert {name: fields[name].default for name in shared} == {**shared, **own_defaults}
    assert all(fields[name].kw_only for name in shared)
    if base is SamplingRequest:  # no image-batch field a task would silently ignore
        assert not set(IMAGE_SAMPLING) - set(SAMPLING) & set(fields)
    # the task's own required fields still come first and positionally
    own_required = [field.name for field in dataclasses.fields(request_class) if not field.kw_only and field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING]
    assert own_required and all(name not in shared for name in own_required)


def test_a_request_is_built_by_keyword_and_rejects_a_positional_sampling_value():
    request = EditRequest(["on a beach"], ["dog.png"], "cat", "dog", seed=3, guidance=5.0)
    assert (request.seed, request.steps, request.guidance, request.num_images) == (3, 50, 5.0, 1)
    with pytest.raises(TypeError):
        AttentionRequest(["dog.png"], "dog", "on a beach", None, (), None, 6, None, 7)  # seed is keyword-only
