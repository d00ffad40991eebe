"""The Style / structure tab: a structure image through a preprocessor drives the ControlNet; the map is shown."""

from __future__ import annotations

import gradio as gr

from .display import RESULT
from .errors import readable_errors
from .service import ModelService
from .style_task import style
from .suggestions import Suggestions


def build(service: ModelService, suggestions: Suggestions) -> None:
    """Lay out the tab inside the current ``gr.Tab``."""
    with gr.Row():
        with gr.Column():
            structure = gr.Image(type="filepath", label="Structure image", elem_id="style-structure")
            style_images = gr.File(label="Style images (the look)", file_count="multiple", file_types=["image"], elem_id="style-images")
            with gr.Row():
                style_subject = gr.Textbox(label="Style subject word", placeholder=suggestions.other_subject, elem_id="style-subject")
                target = gr.Textbox(label="Target subject", placeholder=suggestions.subject, elem_id="style-target")
            prompt = gr.Textbox(label="Scene prompt", placeholder=suggestions.scene, elem_id="style-prompt")
            with gr.Row():
                preprocessor = gr.Dropdown(service.preprocessors(), value="canny", label="Preprocessor", elem_id="style-preprocessor")
                scale = gr.Slider(0, 2, value=1.0, step=0.05, label="ControlNet scale", elem_id="style-scale")
            with gr.Row():
                steps = gr.Slider(1, service.limits.max_steps, value=25, step=1, label="Steps", elem_id="style-steps")
                guidance = gr.Slider(0, 20, value=7.5, step=0.5, label="Guidance")
                seed = gr.Number(0, precision=0, label="Seed")
            run = gr.Button("Render", variant="primary", elem_id="style-run")
        with gr.Column():
            with gr.Row():
                control = gr.Image(label="Control map", interactive=False, height=256, format="png", elem_id="style-control", elem_classes=RESULT)
                image = gr.Image(label="Result", interactive=False, height=256, format="png", elem_id="style-result", elem_classes=RESULT)

    @readable_errors
    def render(structure, style_images, style_subject, target, prompt, preprocessor, scale, steps, guidance, seed):
        result, control_map = style(
            service, style_images=style_images, style_subject=style_subject, structure_image=structure, target_subject=target,
            prompt=prompt, preprocessor=preprocessor, conditioning_scale=scale, steps=steps, guidance=guidance, seed=seed,
        )
        return control_map, result

    run.click(
        render, [structure, style_images, style_subject, target, prompt, preprocessor, scale, steps, guidance, seed],
        [control, image], api_name="style", concurrency_id="model",
    )
