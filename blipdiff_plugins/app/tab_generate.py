"""The Generate tab: subject images (or a bundled example) and prompts in, a gallery and PNG + JSON files out.

The Method list and each method's own settings (its `MethodOption`s, one field each, shown while the method is
chosen) come from the method registry, so a newly registered method appears here without a change to this file.
"""

from __future__ import annotations

import gradio as gr

from ..methods import MethodOption
from .display import RESULT
from .errors import readable_errors
from .messages import option_label
from .service import NO_SUBJECT_MODEL, ModelService
from .suggestions import Suggestions


def option_field(option: MethodOption, titles: list[str], *, visible: bool):
    """The field of a method's own setting: a slider when it has both bounds, a number when it has a default, else a
    text field left empty for the model's own default (an empty number field would send 0). The task checks bounds."""
    text = f"{option_label(option.name)} ({', '.join(titles)})"
    common = dict(label=text, info=option.help, visible=visible, elem_id=f"gen-option-{option.name}")
    if option.minimum is not None and option.maximum is not None:
        step = 1 if option.kind is int else (option.maximum - option.minimum) / 20
        return gr.Slider(option.minimum, option.maximum, value=option.default, step=step, **common)
    if option.default is not None:
        return gr.Number(option.default, precision=0 if option.kind is int else None, **common)
    return gr.Textbox(value="", placeholder="(the model's default)", **common)


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
            with gr.Accordion("Two subjects in one image (optional)", open=False):
                second_images = gr.File(label="Second subject images", file_count="multiple", file_types=["image"], elem_id="gen-second-images")
                second_subject = gr.Textbox(label="Second subject word", placeholder="e.g. cat (each prompt names both words)", elem_id="gen-second-subject")
                with gr.Row():
                    box = gr.Textbox(label="Box of the first subject", placeholder="LEFT,TOP,RIGHT,BOTTOM in pixels (optional)", elem_id="gen-box")
                    second_box = gr.Textbox(label="Box of the second subject", placeholder="LEFT,TOP,RIGHT,BOTTOM in pixels (optional)", elem_id="gen-second-box")
            prompts = gr.Textbox(label="Prompts (one per line = a batch)", lines=3, placeholder=suggestions.scene, elem_id="gen-prompts")
            negative = gr.Textbox(label="Negative prompt", placeholder=suggestions.negative, elem_id="gen-negative")
            with gr.Accordion("Settings", open=False):
                with gr.Row():
                    steps = gr.Slider(1, service.limits.max_steps, value=25, step=1, label="Steps", elem_id="gen-steps")
                    guidance = gr.Slider(0, 20, value=7.5, step=0.5, label="Guidance")
                with gr.Row():
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="gen-seed")
                    height = gr.Number(service.default_size, precision=0, label="Height", elem_id="gen-height")
                    width = gr.Number(service.default_size, precision=0, label="Width", elem_id="gen-width")
                    count = gr.Number(1, precision=0, label="Images per prompt")
                with gr.Row():
                    scheduler = gr.Dropdown(service.schedulers(), value="default", label="Scheduler")
                    method = gr.Dropdown(service.methods(), value=service.methods()[0], label="Method", elem_id="gen-method")
                # one field per method setting (a name two methods share is one field), shown with its methods
                methods = service.generate_methods()
                options: dict[str, MethodOption] = {}
                for candidate in methods:
                    for option in candidate.options:
                        options.setdefault(option.name, option)
                owners = {name: [m.title for m in methods if name in {o.name for o in m.options}] for name in options}
                with gr.Row():
                    option_fields = [option_field(option, owners[name], visible=methods[0].title in owners[name]) for name, option in options.items()]
            run = gr.Button("Generate", variant="primary", elem_id="gen-run")
        with gr.Column():
            # two fixed columns, the page's height (no inner scrollbar), whole images: a toy model's 64 px result is shown
            # at a few hundred pixels with sharp pixels (display.PAGE_CSS), never cropped; its download is the result itself
            gallery = gr.Gallery(label="Results", columns=2, fit_columns=False, height="auto", object_fit="contain", elem_id="gen-gallery",
                                 buttons=["download"], format="png", elem_classes=RESULT)
            status = gr.Markdown(elem_id="gen-status")
            files = gr.File(label="Download: each image at its generated size, with its JSON sidecar", file_count="multiple", interactive=False, elem_id="gen-files")

    def pick_example(name):
        if not name:
            raise gr.Error("Pick an example in the list first.", print_exception=False)
        word, paths = examples[name]
        return [str(path) for path in paths], word

    def show_method(title):
        """The chosen method's own settings, and a prompt placeholder that names the subject where it must."""
        chosen = next(m for m in methods if m.title == title)
        example = suggestions.prompt_naming_subject() if chosen.prompt_names_subject else suggestions.scene
        return [gr.update(placeholder=example)] + [gr.update(visible=title in owners[name]) for name in options]

    @readable_errors
    def generate(images, subject, target, subject_model, prompts, negative, steps, guidance, seed, height, width, count, scheduler, method,
                 *rest):
        # the method settings, then the two-subject fields (last, so API callers of one subject keep their positions)
        option_values, (second_images, second_subject, box, second_box) = rest[: len(options)], rest[len(options) :]
        result = service.generate(
            subject_images=images, subject=subject, target_subject=target, prompts=prompts, negative_prompt=negative,
            steps=steps, guidance=guidance, seed=seed, height=height, width=width, num_images=count, scheduler=scheduler,
            method=method, subject_model=subject_model, options=dict(zip(options, option_values)),
            second_subject_images=second_images, second_subject=second_subject, subject_box=box, second_subject_box=second_box,
        )
        for notice in result.notices:
            gr.Warning(notice)
        shown = list(zip(result.images, result.prompts))
        note = " ".join([f"{len(shown)} image(s) from the {result.encoding}.", *result.notices])
        return shown, note, [str(path) for path in result.files]

    use_example.click(pick_example, [example], [images, subject], queue=False)
    refresh.click(lambda: gr.update(choices=[NO_SUBJECT_MODEL] + service.subject_models()), None, [subject_model], queue=False)
    method.change(show_method, [method], [prompts, *option_fields], queue=False)
    run.click(
        generate,
        [images, subject, target, subject_model, prompts, negative, steps, guidance, seed, height, width, count, scheduler, method, *option_fields,
         second_images, second_subject, box, second_box],
        [gallery, status, files],
        api_name="generate",
        concurrency_id="model",
    )
    return {"subject_model": subject_model}
