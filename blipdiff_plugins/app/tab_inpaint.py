"""The Inpaint tab: upload your photo, paint the region (or type a box), give your subject; the result beside the photo."""

from __future__ import annotations

import gradio as gr

from .display import RESULT
from .errors import readable_errors
from .inpaint_task import FIELDS, inpaint
from .service import ModelService
from .suggestions import Suggestions


def build(service: ModelService, suggestions: Suggestions) -> None:
    """Lay out the tab inside the current ``gr.Tab``."""
    with gr.Row():
        with gr.Column():
            # Gradio's "auto" brush is 25 photo pixels wide whatever the photo: one dab would cover most of the built-in
            # model's 64 px photo, so the brush scales with the model's image side (our choice: 1/16 of it)
            brush_radius = max(2, service.default_size // 16)
            editor = gr.ImageMask(label=f"{FIELDS['image']}: upload it, then paint the region to repaint", type="pil",
                                  brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=brush_radius),
                                  eraser=gr.Eraser(default_size=brush_radius), elem_id="inpaint-editor")
            with gr.Row():
                left = gr.Number(None, precision=0, label="Box left", elem_id="inpaint-box-left")
                top = gr.Number(None, precision=0, label="Box top", elem_id="inpaint-box-top")
                right = gr.Number(None, precision=0, label="Box right", elem_id="inpaint-box-right")
                bottom = gr.Number(None, precision=0, label="Box bottom", elem_id="inpaint-box-bottom")
            images = gr.File(label="Subject images", file_count="multiple", file_types=["image"], elem_id="inpaint-images")
            subject = gr.Textbox(label="Subject word", placeholder=suggestions.subject, elem_id="inpaint-subject")
            prompt = gr.Textbox(label="Prompts", placeholder=suggestions.scene, elem_id="inpaint-prompt")
            with gr.Accordion("Settings", open=False):
                with gr.Row():
                    strength = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label=FIELDS["strength"])
                    steps = gr.Slider(1, service.limits.max_steps, value=25, step=1, label="Steps", elem_id="inpaint-steps")
                    guidance = gr.Slider(0, 20, value=7.5, step=0.5, label="Guidance")
                    seed = gr.Number(0, precision=0, label="Seed")
            run = gr.Button("Inpaint", variant="primary", elem_id="inpaint-run")
        with gr.Column():
            # PNG, not Gradio's default WebP (lossy): the result shown and downloaded keeps the photo's pixels outside the region
            with gr.Row():
                photo = gr.Image(label="Photo", interactive=False, height=256, format="png", elem_id="inpaint-photo", elem_classes=RESULT)
                result = gr.Image(label="With your subject", interactive=False, height=256, format="png", elem_id="inpaint-result", elem_classes=RESULT)
            region = gr.Image(label="Region repainted", interactive=False, height=160, format="png", elem_id="inpaint-region", elem_classes=RESULT)
            files = gr.File(label="Download: the result at the photo's size, with its JSON sidecar", file_count="multiple", interactive=False,
                            elem_id="inpaint-files")

    @readable_errors
    def run_inpaint(editor, left, top, right, bottom, images, subject, prompt, strength, steps, guidance, seed):
        output = inpaint(service, editor=editor, box=(left, top, right, bottom), subject_images=images, subject=subject, prompt=prompt,
                         strength=strength, steps=steps, guidance=guidance, seed=seed)
        return output.photo, output.result, output.region, [str(path) for path in output.files]

    run.click(
        run_inpaint, [editor, left, top, right, bottom, images, subject, prompt, strength, steps, guidance, seed],
        [photo, result, region, files], api_name="inpaint", concurrency_id="model",
    )
