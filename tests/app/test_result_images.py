"""What the page shows as a result is the result itself, at its generated size: the image Gradio serves (and the
gallery's and each image's download button gives) is not enlarged; the page's CSS shows it large with sharp pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest

gr = pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'blipdiff_plugins[ui]')")

from blipdiff_plugins.app import tab_attention, tab_edit, tab_inpaint, tab_style  # noqa: E402
from blipdiff_plugins.app.display import PAGE_CSS, RESULT  # noqa: E402
from blipdiff_plugins.app.edit_task import EditResult  # noqa: E402
from blipdiff_plugins.app.inpaint_task import InpaintResult  # noqa: E402
from blipdiff_plugins.app.service import GenerateResult, ModelService  # noqa: E402


def small(seed: int, size=(24, 16)) -> PIL.Image.Image:
    """A toy model's result: a few dozen pixels, each its own colour."""
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


PHOTO, RESULT_IMAGE, REGION, GRID = small(0), small(1), small(2), small(3, (48, 40))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return ModelService(model="builtin:random-tiny", output_dir=tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def demo(service):
    from blipdiff_plugins.app.builder import build_app

    return build_app(service)


def served_images(demo, api_name) -> dict[str, list[PIL.Image.Image]]:
    """The tab's handler called as Gradio calls it, then its image outputs as Gradio serves them: elem_id -> images."""
    function = next(fn for fn in demo.fns.values() if fn.api_name == api_name)
    values = function.fn(*[None] * len(function.inputs))
    served = {}
    for component, value in zip(function.outputs, values):
        if isinstance(component, (gr.Image, gr.Gallery)):
            assert RESULT in component.elem_classes, component.elem_id  # shown large with sharp pixels by PAGE_CSS
            data = component.postprocess(value.get("value") if isinstance(value, dict) else value)
            files = [item.image for item in data.root] if isinstance(component, gr.Gallery) else [data]
            served[component.elem_id] = [PIL.Image.open(Path(file.path)).convert("RGB") for file in files]
    return served


def assert_same(served: PIL.Image.Image, made: PIL.Image.Image, what: str):
    assert served.size == made.size, f"{what}: served at {served.size}, made at {made.size}"
    np.testing.assert_array_equal(np.asarray(served), np.asarray(made), err_msg=what)


def test_the_page_css_shows_results_with_sharp_pixels_filling_their_box():
    assert f".{RESULT} img {{ image-rendering: pixelated; }}" in PAGE_CSS
    assert f".{RESULT} .image-frame img {{ object-fit: contain; }}" in PAGE_CSS


def test_the_gallery_serves_each_generated_image_as_generated(demo, service, monkeypatch):
    images = [small(4), small(5, (32, 32))]
    monkeypatch.setattr(service, "generate", lambda **kwargs: GenerateResult(images, [], "subject images", [], ["on grass", "on sand"]))
    served = served_images(demo, "generate")["gen-gallery"]
    assert len(served) == 2
    for got, image in zip(served, images):
        assert_same(got, image, "gallery")


@pytest.mark.parametrize(
    "module, task, api_name, made, expected",
    [
        (tab_edit, "edit", "edit", EditResult(PHOTO, RESULT_IMAGE, REGION, "source", []),
         {"edit-source-image": PHOTO, "edit-edited": RESULT_IMAGE, "edit-mask": REGION}),
        (tab_inpaint, "inpaint", "inpaint", InpaintResult(PHOTO, RESULT_IMAGE, REGION, []),
         {"inpaint-photo": PHOTO, "inpaint-result": RESULT_IMAGE, "inpaint-region": REGION}),
        (tab_style, "style", "style", (RESULT_IMAGE, REGION), {"style-control": REGION, "style-result": RESULT_IMAGE}),
        (tab_attention, "attention", "attention", (RESULT_IMAGE, GRID), {"attn-image": RESULT_IMAGE, "attn-grid": GRID}),
    ],
    ids=["edit", "inpaint", "style", "attention"],
)
def test_every_other_tab_serves_its_results_as_made(demo, monkeypatch, module, task, api_name, made, expected):
    monkeypatch.setattr(module, task, lambda *args, **kwargs: made)
    served = served_images(demo, api_name)
    assert sorted(served) == sorted(expected)
    for elem_id, image in expected.items():
        assert len(served[elem_id]) == 1
        assert_same(served[elem_id][0], image, elem_id)
