"""The Generate tab: subject images (or a bundled example) and prompts in, a gallery and PNG + JSON files out."""

from __future__ import annotations

import json

import gradio as gr

from .display import for_display
from .errors import readable_errors
from .service import ModelService
from .suggestions import Suggestions

NO_SUBJECT_MODEL = "(none)"


def build(service: ModelService, suggestions: Suggestions, examples: dict) -> dict:
    """Lay out the tab inside the current ``gr.Tab``; ``examples``: name -> (word, PNG paths). Returns the components
    other tabs wire to."""
    with gr.Row():
        with gr.Column():
            images = gr.File(label="Subject images", file_count="multiple", file_types=["image"], elem_id="gen-images")
            with gr.Row():
                example = gr.Dropdown(list(examples), value=None, label="Or a bundled example", elem_id="gen-example", scale=3)
                use_example = gr.Button("Use example", elem_id="gen-use-example", scale=1)
            with gr.Row():
                subject = gr.Textbox(label="Subject word", placeholder=suggestions.subject, elem_id="gen-subject")
                target = gr.Textbox(label="Target subject", placeholder="(the subject word)", elem_id="gen-target")
            with gr.Row():
                subject_model = gr.Dropdown(
                    [NO_SUBJECT_MODEL] + service.subject_models(), value=NO_SUBJECT_MODEL, scale=3,
                    label="Or a fine-tuned subject model (no images needed)", elem_id="gen-subject-model",
                )
                refresh = gr.Button("Refresh", scale=1, elem_id="gen-refresh")
            prompts = gr.Textbox(label="Prompts (one per line = a batch)", lines=3, placeholder=suggestions.scene, elem_id="gen-prompts")
            negative = gr.Textbox(label="Negative prompt", placeholder=suggestions.negative, elem_id="gen-negative")
            with gr.Accordion("Settings", open=False):
                with gr.Row():
                    steps = gr.Slider(1, service.limits.max_steps, value=25, step=1, label="Steps", elem_id="gen-steps")
                    guidance = gr.Slider(0, 20, value=7.5, step=0.5, label="Guidance")
                    strength = gr.Slider(0.1, 3, value=1.0, step=0.1, label="Prompt strength")
                with gr.Row():
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="gen-seed")
                    height = gr.Number(service.default_size, precision=0, label="Height", elem_id="gen-height")
                    width = gr.Number(service.default_size, precision=0, label="Width", elem_id="gen-width")
                    count = gr.Number(1, precision=0, label="Images per prompt")
                with gr.Row():
                    scheduler = gr.Dropdown(service.schedulers(), value="default", label="Scheduler")
                    method = gr.Dropdown(service.methods(), value=service.methods()[0], label="Method", elem_id="gen-method")
                    fusion = gr.Slider(0, 1, value=0.5, step=0.05, label="Fusion weight a (UMM-Diffusion: 0 = text only, 1 = subject image only)",
                                       elem_id="gen-fusion")
            run = gr.Button("Generate", variant="primary", elem_id="gen-run")
        with gr.Column():
            # two fixed columns, the page's height (no inner scrollbar), whole images: a toy model's 64 px result is shown
            # at a few hundred pixels, enlarged by whole factors (for_display), never cropped
            gallery = gr.Gallery(label="Results", columns=2, fit_columns=False, height="auto", object_fit="contain", elem_id="gen-gallery",
                                 buttons=["download"])
            status = gr.Markdown(elem_id="gen-status")
            files = gr.File(label="Download: each image at its generated size, with its JSON sidecar", file_count="multiple", interactive=False, elem_id="gen-files")

    def pick_example(name):
        if not name:
            raise gr.Error("Pick an example in the list first.", print_exception=False)
        word, paths = examples[name]
        return [str(path) for path in paths], word

    @readable_errors
    def generate(images, subject, target, subject_model, prompts, negative, steps, guidance, strength, seed, height, width, count, scheduler, method,
                 fusion):
        result = service.generate(
            subject_images=images, subject=subject, target_subject=target, prompts=prompts, negative_prompt=negative,
            steps=steps, guidance=guidance, prompt_strength=strength, seed=seed, height=height, width=width,
            num_images=count, scheduler=scheduler, method=method, subject_model=subject_model, fusion_weight=fusion,
        )
        captions = [json.loads(path.read_text())["prompt"] for path in result.files if path.suffix == ".json"]
        shown = [(for_display(image), caption) for image, caption in zip(result.images, captions)]
        note = f"{len(shown)} image(s); subject encoding: {result.encoding}."
        return shown, note, [str(path) for path in result.files]

    use_example.click(pick_example, [example], [images, subject], queue=False)
    refresh.click(lambda: gr.update(choices=[NO_SUBJECT_MODEL] + service.subject_models()), None, [subject_model], queue=False)
    run.click(
        generate,
        [images, subject, target, subject_model, prompts, negative, steps, guidance, strength, seed, height, width, count, scheduler, method, fusion],
        [gallery, status, files],
        api_name="generate",
        concurrency_id="model",
    )
    return {"subject_model": subject_model}
