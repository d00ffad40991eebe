"""The page as built: the Generate tab from the method registry (one field per method setting, shown with its method);
the Inpaint tab shows and offers its result losslessly, with a brush sized to the model's images."""

from __future__ import annotations

import json

import pytest

from blipdiff_plugins.app.method_models import serves
from blipdiff_plugins.methods import get_method


def test_which_method_a_model_serves(tmp_path):
    blip, umm = get_method("blip"), get_method("umm")
    assert serves(blip, "builtin") and serves(umm, "builtin:random-tiny")  # both have built-in models
    assert serves(blip, "Salesforce/blipdiffusion") and not serves(umm, "Salesforce/blipdiffusion")
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "UMMDiffusionPipeline"}))
    assert serves(umm, str(tmp_path)) and not serves(blip, str(tmp_path))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'blipdiff_plugins[ui]')")
    from blipdiff_plugins.app.builder import build_app
    from blipdiff_plugins.app.service import ModelService

    return build_app(ModelService(model="builtin:random-tiny", output_dir=tmp_path_factory.mktemp("app")))


def block(demo, elem_id):
    return next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == elem_id)


def test_generate_tab_has_a_field_per_method_setting_shown_with_its_method(demo):
    fields = {block.elem_id: block for block in demo.blocks.values() if str(getattr(block, "elem_id", "")).startswith("gen-option-")}
    assert sorted(fields) == ["gen-option-fusion_weight", "gen-option-prompt_reps", "gen-option-prompt_strength"]
    fusion = fields["gen-option-fusion_weight"]
    assert (fusion.label, fusion.visible, fusion.minimum, fusion.maximum, fusion.value) == ("Fusion weight (UMM-Diffusion)", False, 0.0, 1.0, 0.5)
    assert fields["gen-option-prompt_strength"].visible is True  # BLIP-Diffusion, the first method, is chosen
    assert fields["gen-option-prompt_reps"].value == ""  # empty: the model's own default
    assert block(demo, "gen-prompts").placeholder == "on grass at the left, large"  # the toy world's, for a built-in model


def test_inpaint_tab_shows_png_offers_the_files_and_sizes_the_brush_to_the_model(demo):
    # Gradio's default WebP is lossy: the result shown would not keep the photo's pixels outside the region
    assert [block(demo, f"inpaint-{name}").format for name in ("photo", "result", "region")] == ["png"] * 3
    assert block(demo, "inpaint-files").file_count == "multiple"
    editor = block(demo, "inpaint-editor")
    assert editor.brush.default_size == editor.eraser.default_size == 2  # the random-tiny model's 32 px images / 16


def test_every_image_the_page_shows_as_a_result_is_lossless(demo):
    import gradio as gr

    shown = [b for b in demo.blocks.values() if isinstance(b, (gr.Image, gr.Gallery)) and not getattr(b, "interactive", None)]
    outputs = {b.elem_id: b.format for b in shown if isinstance(b, gr.Gallery) or b.interactive is False}
    assert len(outputs) >= 11  # gallery, inpaint 3, edit 3, style 2, attention 2
    assert {elem_id: fmt for elem_id, fmt in outputs.items() if fmt != "png"} == {}
