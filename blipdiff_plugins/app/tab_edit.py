"""The Edit tab: put your subject into a generated image or an uploaded photo; source, result and blend mask."""

from __future__ import annotations

import gradio as gr

from .display import RESULT
from .errors import readable_errors
from .edit_task import INVERSIONS, edit
from .service import ModelService
from .suggestions import Suggestions

MODES = {"Generate, then edit": "generate", "Edit my photo": "photo"}


def build(service: ModelService, suggestions: Suggestions) -> None:
    """Lay out the tab inside the current ``gr.Tab``."""
    with gr.Row():
        with gr.Column():
            mode = gr.Radio(list(MODES), value="Generate, then edit", label="Mode", elem_id="edit-mode")
            photo = gr.Image(type="filepath", label="Photo to edit (Edit my photo)", elem_id="edit-photo")
            images = gr.File(label="Images of your subject", file_count="multiple", file_types=["image"], elem_id="edit-images")
            with gr.Row():
                target = gr.Textbox(label="Your subject's word", placeholder=suggestions.subject, elem_id="edit-target")
                source = gr.Textbox(label="Subject word to replace", placeholder=suggestions.other_subject, elem_id="edit-source")
            prompt = gr.Textbox(label="Scene prompt", placeholder=suggestions.scene, elem_id="edit-prompt")
            with gr.Accordion("Settings", open=False):
                with gr.Row():
                    steps = gr.Slider(1, service.limits.max_steps, value=25, step=1, label="Steps", elem_id="edit-steps")
                    guidance = gr.Slider(0, 20, value=7.5, step=0.5, label="Guidance")
                    seed = gr.Number(0, precision=0, label="Seed")
                with gr.Row():
                    threshold = gr.Slider(0, 1, value=0.3, step=0.05, label="Blend threshold")
                    inversion = gr.Dropdown(list(INVERSIONS), value="ddim", label="Inversion (photos)")
            run = gr.Button("Edit", variant="primary", elem_id="edit-run")
        with gr.Column():
            with gr.Row():
                source_image = gr.Image(label="Source / reconstruction", interactive=False, height=220, format="png", elem_id="edit-source-image", elem_classes=RESULT)
                edited = gr.Image(label="Edit", interactive=False, height=220, format="png", elem_id="edit-edited", elem_classes=RESULT)
                mask = gr.Image(label="Blend mask", interactive=False, height=220, format="png", elem_id="edit-mask", elem_classes=RESULT)

    @readable_errors
    def run_edit(mode, photo, images, target, source, prompt, steps, guidance, seed, threshold, inversion):
        result = edit(
            service, mode=MODES.get(mode, mode), photo=photo, subject_images=images, target_subject=target, source_subject=source,
            prompt=prompt, steps=steps, guidance=guidance, seed=seed, blend_threshold=threshold, inversion=inversion,
        )
        return (
            gr.update(value=result.source, label=result.source_label.capitalize()),
            result.edited,
            result.mask,
        )

    run.click(
        run_edit, [mode, photo, images, target, source, prompt, steps, guidance, seed, threshold, inversion],
        [source_image, edited, mask], api_name="edit", concurrency_id="model",
    )
