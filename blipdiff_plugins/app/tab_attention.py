"""The Attention tab: what each subject token (and chosen words) attends to, as a grid over the image."""

from __future__ import annotations

import gradio as gr

from .display import RESULT
from .errors import readable_errors
from .attention_task import attention
from .service import ModelService
from .suggestions import Suggestions


def build(service: ModelService, suggestions: Suggestions) -> None:
    """Lay out the tab inside the current ``gr.Tab``."""
    with gr.Row():
        with gr.Column():
            images = gr.File(label="Subject images", file_count="multiple", file_types=["image"], elem_id="attn-images")
            subject = gr.Textbox(label="Subject word", placeholder=suggestions.subject, elem_id="attn-subject")
            prompt = gr.Textbox(label="Scene prompt", placeholder=suggestions.scene, elem_id="attn-prompt")
            words = gr.Textbox(label="Also map these prompt words", placeholder=suggestions.scene_word, elem_id="attn-words")
            with gr.Row():
                steps = gr.Slider(1, service.limits.max_steps, value=25, step=1, label="Steps", elem_id="attn-steps")
                guidance = gr.Slider(0, 20, value=7.5, step=0.5, label="Guidance")
                seed = gr.Number(0, precision=0, label="Seed")
            run = gr.Button("Show attention", variant="primary", elem_id="attn-run")
        with gr.Column():
            image = gr.Image(label="Image", interactive=False, height=256, format="png", elem_id="attn-image", elem_classes=RESULT)
            grid = gr.Image(label="Subject-token attention", interactive=False, height=420, format="png", elem_id="attn-grid", elem_classes=RESULT)

    @readable_errors
    def run_attention(images, subject, prompt, words, steps, guidance, seed):
        image, grid = attention(service, subject_images=images, subject=subject, prompt=prompt, words=words, steps=steps, guidance=guidance, seed=seed)
        return image, grid

    run.click(run_attention, [images, subject, prompt, words, steps, guidance, seed], [image, grid], api_name="attention", concurrency_id="model")
